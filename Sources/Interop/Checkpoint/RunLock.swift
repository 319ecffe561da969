import Basics
import Foundation

/// One run folder, one writer: rank 0 of a training job holds an exclusive `flock` on
/// `nest-train.lock` in the run folder for as long as it trains. A second launch on the same
/// folder (a double submit, a Slurm requeue while the first job still runs) is refused with the
/// holder's host, pid and start time, which the holder wrote into the file.
///
/// The kernel drops the lock when its holder dies however it dies (SIGKILL, OOM killer, a node
/// reboot ends its NFS lease), so a killed run never leaves the folder stuck; the next start
/// finds the dead holder's line still in the file and says that it takes the lock over.
///
/// On a shared filesystem, Linux's NFS client maps `flock` onto NFS byte-range locks, which the
/// server arbitrates between hosts (NFSv4, or NFSv3 with lockd); a mount with `local_lock=flock`
/// or `nolock` makes them local to each host, and then only launches on one host exclude each
/// other (README, Reliability).
public final class RunLock {
    public static let fileName = "nest-train.lock"
    public let path: String
    private var fd: Int32

    /// Takes the lock of `folder` (which must exist) or throws naming the process that holds it.
    /// `log` gets the line about a dead holder's lock being taken over.
    public init(folder: String, log: (String) -> Void) throws {
        path = folder + "/" + Self.fileName
        while true {
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw NestError(file: path, "cannot create the run folder's lock: \(AtomicFile.systemReason(errno))")
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let reason = errno
                let holder = Self.holder(fd)
                close(fd)
                if reason == EWOULDBLOCK {
                    throw NestError("\(folder) is in use by another nest-train process (\(holder ?? "its holder did not say who it is")); "
                        + "a run folder has one writer. Wait for that run to end or stop it, or start a separate run with another "
                        + "exp_manager.exp_dir or name (or --fresh)")
                }
                throw NestError(file: path, "cannot lock the run folder (\(AtomicFile.systemReason(reason))): the filesystem may not support locks "
                    + "(an NFS mount with nolock?); use a run folder on a filesystem that does")
            }
            // The holder before us may have removed the file between our open and our lock:
            // then we hold a lock on a file nobody else will find. Lock the one at the path.
            var held = stat(), current = stat()
            guard fstat(fd, &held) == 0, stat(path, &current) == 0, held.st_ino == current.st_ino, held.st_dev == current.st_dev else {
                close(fd)
                continue
            }
            if let previous = Self.holder(fd) {
                log("taking over the run folder's lock from \(previous), which ended without releasing it")
            }
            let line = "host \(ProcessInfo.processInfo.hostName), pid \(getpid()), started \(ISO8601DateFormatter().string(from: Date()))\n"
            _ = ftruncate(fd, 0)
            _ = line.withCString { pwrite(fd, $0, strlen($0), 0) }
            _ = fsync(fd)
            self.fd = fd
            return
        }
    }

    /// Who wrote the lock file, as they wrote it; nil when it is empty.
    private static func holder(_ fd: Int32) -> String? {
        var bytes = [UInt8](repeating: 0, count: 512)
        let n = pread(fd, &bytes, bytes.count, 0)
        guard n > 0 else { return nil }
        let text = String(decoding: bytes[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    /// Removes the file while still holding the lock (a process that opened it meanwhile finds
    /// it gone and locks the new one), then lets go.
    public func release() {
        guard fd >= 0 else { return }
        unlink(path)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
