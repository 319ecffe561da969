import Foundation

/// Every file nest-train writes for a user (checkpoints, exports, metrics rewrites, shards,
/// manifests, plots, kernel caches) is written whole or not at all: into a temporary file beside
/// the target, fsync'ed, renamed over the target, and the folder fsync'ed, so a crash or a full
/// disk at any instant leaves either the previous file or the new one, never a part.
public enum AtomicFile {
    /// Writes `data` to `path`.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { temporary in
            guard FileManager.default.createFile(atPath: temporary, contents: data) else {
                throw NestError(file: path, "cannot write (disk full, or no permission in the folder?)")
            }
        }
    }

    /// For writers that stream or that a library drives (HDF5): `fill` creates and writes the
    /// temporary file at the path it is given; then it is made durable and renamed into place.
    /// The temporary file is removed whatever happens.
    public static func write(to path: String, _ fill: (String) throws -> Void) throws {
        let temporary = path + temporaryMarker + "\(hostName)-\(getpid())"
        defer { unlink(temporary) }
        try fill(temporary)
        let fd = open(temporary, O_RDONLY)
        guard fd >= 0 else { throw NestError(file: temporary, "cannot reopen to flush it to disk: \(systemReason(errno))") }
        let synced = fsync(fd)
        let syncError = errno
        close(fd)
        guard synced == 0 else { throw NestError(file: temporary, "flushing to disk failed: \(systemReason(syncError))") }
        guard rename(temporary, path) == 0 else { throw NestError(file: path, "cannot move the finished file into place: \(systemReason(errno))") }
        let folder = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY)
        if folder >= 0 { fsync(folder); close(folder) }
    }

    /// The system's reason for a failed file operation, and what the user can do about it.
    public static func systemReason(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        switch code {
        case ENOSPC, EDQUOT: return "\(text); free space on that disk (or raise the quota) and run the same command again"
        case EACCES, EPERM, EROFS: return "\(text); write into a folder you may write to (exp_manager.exp_dir, --output)"
        case EFBIG: return "\(text); the file is larger than the file size limit (ulimit -f) or the filesystem allows"
        case EIO: return "\(text); the disk or network filesystem reported an error: check it before going on"
        default: return text
        }
    }

    /// A temporary file is named `<target>.tmp-<host>-<pid>`: whoever finds one can tell whether
    /// its writer still lives.
    static let temporaryMarker = ".tmp-"
    static let hostName = ProcessInfo.processInfo.hostName

    /// Removes the temporary files in `folder` left by writers of this host that are no longer
    /// running (a double interrupt or a kill mid-write leaves one, checkpoint-sized), and returns
    /// what it removed. A live writer's file, and any written from another host (whose processes
    /// this host cannot see), are left alone.
    public static func removeStaleTemporaries(in folder: String) -> [(file: String, pid: Int32)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.sorted().compactMap { name -> (String, Int32)? in
            guard let marker = name.range(of: temporaryMarker, options: .backwards) else { return nil }
            let tag = name[marker.upperBound...]
            guard let dash = tag.lastIndex(of: "-"), tag[..<dash] == hostName, let pid = Int32(tag[tag.index(after: dash)...]), pid > 0,
                  kill(pid, 0) != 0, errno == ESRCH else { return nil }
            let file = folder + "/" + name
            return unlink(file) == 0 ? (file, pid) : nil
        }
    }
}
