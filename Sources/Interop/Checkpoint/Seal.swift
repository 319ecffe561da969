import Basics
import Formats
import Foundation
import HDF5

/// The first 512 bytes of every HDF5 file nest-train writes (checkpoints and h5 exports; HDF5's
/// user block, which HDF5 and h5py skip): "NESTCKPT" magic, format version, then the byte length
/// and CRC-32 of the HDF5 data that follows. Verifying it before opening means a truncated,
/// bit-flipped or foreign file is rejected by 30 lines of bounds-checked Swift instead of being
/// parsed by libhdf5.
enum Seal {
    static let size = 512
    static let magic = Array("NESTCKPT".utf8)

    /// Fills the reserved block of a finished HDF5 file.
    static func write(_ path: String) throws {
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw NestError("\(path): cannot reopen to seal") }
        defer { try? handle.close() }
        handle.seek(toFileOffset: UInt64(size))
        var crc = CRC32.Running()
        var length: UInt64 = 0
        while true {
            let chunk = handle.readData(ofLength: 8 << 20)
            if chunk.isEmpty { break }
            crc.update(chunk)
            length += UInt64(chunk.count)
        }
        var header = Data(magic)
        header.append(contentsOf: [1, 0, 0, 0])
        withUnsafeBytes(of: length.littleEndian) { header.append(contentsOf: $0) }
        withUnsafeBytes(of: crc.value.littleEndian) { header.append(contentsOf: $0) }
        handle.seek(toFileOffset: 0)
        handle.write(header)
        try handle.synchronize()
    }

    /// Whether the file starts with the seal's magic (then it must verify; otherwise it is not
    /// one of ours).
    static func isPresent(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return Array(handle.readData(ofLength: magic.count)) == magic
    }

    static func verify(_ path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw NestError(FileManager.default.fileExists(atPath: path) ? "\(path): cannot open" : "\(path): no such file")
        }
        defer { try? handle.close() }
        let header = handle.readData(ofLength: 24)
        guard header.count == 24, Array(header.prefix(8)) == magic else {
            throw NestError("\(path): not a nest-train checkpoint (no NESTCKPT header; truncated or another kind of file?)")
        }
        let version = header.subdata(in: 8..<12).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.littleEndian
        guard version == 1 else { throw NestError("\(path): checkpoint header version \(version) is newer than this nest-train supports (1)") }
        let length = header.subdata(in: 12..<20).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
        let expected = header.subdata(in: 20..<24).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.littleEndian
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
        guard fileSize >= UInt64(size), length == fileSize - UInt64(size) else {
            throw NestError("\(path): truncated or extended checkpoint (header says \(length) bytes of data, the file has \(Int64(fileSize) - Int64(size)))")
        }
        handle.seek(toFileOffset: UInt64(size))
        var crc = CRC32.Running()
        while true {
            let chunk = handle.readData(ofLength: 8 << 20)
            if chunk.isEmpty { break }
            crc.update(chunk)
        }
        guard crc.value == expected else {
            throw NestError("\(path): checksum mismatch (the file is corrupted)")
        }
    }
}

/// nest-train's own HDF5 files: written under a temporary name, sealed, fsync'ed and renamed
/// (a crash at any instant leaves the previous file valid), and opened only after the seal
/// verifies.
enum SealedHDF5 {
    /// `kind` names the file in messages and failpoints ("checkpoint", "export").
    static func write(to path: String, kind: String, _ body: (HDF5File) throws -> Void) throws {
        do {
            try AtomicFile.write(to: path) { temporary in
                let file = try HDF5File(path: temporary, mode: .create, userBlock: Seal.size)
                try body(file)
                try file.close()
                try Seal.write(temporary)
                Failpoint.hit("\(kind)-before-rename")
            }
        } catch let nonFinite as NonFiniteTensor {
            throw nonFinite
        } catch {
            throw NestError("\(path): writing the \(kind) failed, the previous \(kind) is untouched: \(error)")
        }
    }

    static func open(_ path: String) throws -> HDF5File {
        try Seal.verify(path)
        return try HDF5File(path: path, mode: .readOnly)
    }
}
