import Foundation

/// Input files must be regular files (links are followed). Opening a FIFO blocks until a writer
/// appears, and a device or a folder is never what a manifest, a config or a model means, so
/// each is refused by name before it is opened.
public enum RegularFile {
    /// `what` names the file's role in the "not found" message ("manifest not found").
    public static func check(_ path: String, what: String? = nil) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw NestError(file: path, what.map { "\($0) not found" } ?? "no such file") }
        let kind: String
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: kind = "a folder"
        case S_IFIFO: kind = "a FIFO (named pipe)"
        case S_IFSOCK: kind = "a socket"
        case S_IFCHR, S_IFBLK: kind = "a device"
        default: kind = "not a regular file"
        }
        throw NestError(file: path, "\(kind), not a regular file; refusing to open it")
    }

    /// The whole file, after `check`.
    public static func contents(_ path: String, what: String? = nil) throws -> Data {
        try check(path, what: what)
        guard let data = FileManager.default.contents(atPath: path) else { throw NestError(file: path, "cannot read") }
        return data
    }
}
