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
        let temporary = path + ".tmp-\(getpid())"
        defer { unlink(temporary) }
        try fill(temporary)
        let fd = open(temporary, O_RDONLY)
        guard fd >= 0 else { throw NestError(file: temporary, "cannot reopen for fsync (errno \(errno))") }
        let synced = fsync(fd)
        close(fd)
        guard synced == 0 else { throw NestError(file: temporary, "fsync failed (errno \(errno))") }
        guard rename(temporary, path) == 0 else { throw NestError(file: path, "rename into place failed (errno \(errno))") }
        let folder = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY)
        if folder >= 0 { fsync(folder); close(folder) }
    }
}
