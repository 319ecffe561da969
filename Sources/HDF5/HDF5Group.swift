import Basics
import Formats
import Foundation

/// The numeric datasets of one group of an HDF5 file as named arrays (`/weights` in
/// checkpoints, exports and fixtures; the root in h5py dumps of a state dict).
public struct HDF5Group: TensorSource {
    public let file: HDF5File
    public let group: String
    public let origin: String

    public init(file: HDF5File, group: String, origin: String) {
        self.file = file
        self.group = group
        self.origin = origin
    }

    public func names() throws -> [String] { try file.datasetNames(in: group) }

    public func shape(_ name: String) throws -> [Int] { try file.shape(of: path(name)) }

    public func read(_ name: String) throws -> ArrayData { try file.read(path(name)) }

    func path(_ name: String) -> String { group == "/" ? "/\(name)" : "\(group)/\(name)" }

    /// A state dict in an HDF5 file nest-train did not write (h5py, the fixtures): `/weights`
    /// if present, else the root. libhdf5 is not hardened against hostile files, so before it
    /// parses anything the file must carry HDF5's signature where a superblock may start
    /// (byte 0, 512, 1024, ...); the origin says the file is foreign.
    public static func foreign(path: String) throws -> HDF5Group {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw NestError(file: path, FileManager.default.fileExists(atPath: path) ? "cannot open" : "no such file")
        }
        defer { try? handle.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
        let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        var offset: UInt64 = 0, found = false
        while offset + 8 <= size, !found {
            handle.seek(toFileOffset: offset)
            found = Array(handle.readData(ofLength: 8)) == signature
            offset = offset == 0 ? 512 : offset * 2
        }
        guard found else { throw NestError(file: path, "not an HDF5 file (no HDF5 signature)") }
        let file = try HDF5File(path: path, mode: .readOnly)
        return HDF5Group(file: file, group: file.exists("/weights") ? "/weights" : "/", origin: "foreign HDF5 file \(path) (not sealed by nest-train)")
    }
}
