import Basics
import CZlib
import Foundation

/// Reads ZIP archives as torch writes them: STORED entries only, sizes and offsets from the
/// central directory (torch's local headers carry zero sizes and a data descriptor), ZIP64
/// end records and extras, the data offset from the local header's own name and extra
/// lengths (torch pads with a local-only extra field), CRC-32 checked.
public struct ZipReader {
    public struct Entry {
        public let name: String
        public let size: Int
        let crc: UInt32
        let localHeaderOffset: Int
    }

    public let bytes: Bytes
    public let entries: [Entry]
    private let byName: [String: Int]

    /// Entries at most; a forged count cannot make the reader allocate more.
    static let maxEntries = 1 << 20

    public init(_ bytes: Bytes) throws {
        self.bytes = bytes
        let origin = bytes.origin
        // End of central directory: 22 bytes plus a comment of up to 65,535, searched backwards.
        var eocd = -1
        var i = bytes.count - 22
        let stop = max(0, bytes.count - 22 - 65_535)
        while i >= stop {
            if try bytes.u32(i, "the end record") == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw NestError("\(origin): not a ZIP archive (no end-of-central-directory record)") }
        var count = try bytes.u16(eocd + 10, "the entry count")
        var directorySize = try bytes.u32(eocd + 12, "the directory size")
        var directoryOffset = try bytes.u32(eocd + 16, "the directory offset")
        // ZIP64: a locator just before the end record points at the ZIP64 end record.
        if eocd >= 20, try bytes.u32(eocd - 20, "the ZIP64 locator") == 0x0706_4B50 {
            let recordOffset = try Self.int(bytes.u64(eocd - 12, "the ZIP64 end offset"), origin)
            guard try bytes.u32(recordOffset, "the ZIP64 end record") == 0x0606_4B50 else {
                throw NestError("\(origin): ZIP64 end record missing at \(recordOffset)")
            }
            count = try Self.int(bytes.u64(recordOffset + 32, "the ZIP64 entry count"), origin)
            directorySize = try Self.int(bytes.u64(recordOffset + 40, "the ZIP64 directory size"), origin)
            directoryOffset = try Self.int(bytes.u64(recordOffset + 48, "the ZIP64 directory offset"), origin)
        }
        guard count <= Self.maxEntries else { throw NestError("\(origin): \(count) entries claimed, more than \(Self.maxEntries)") }
        let directory = try bytes.slice(directoryOffset, directorySize, "the central directory")
        var entries: [Entry] = [], byName: [String: Int] = [:]
        var p = 0
        for n in 0..<count {
            guard try directory.u32(p, "directory entry \(n)") == 0x0201_4B50 else { throw NestError("\(origin): directory entry \(n) is damaged") }
            let method = try directory.u16(p + 10, "entry \(n)'s method")
            let crc = UInt32(try directory.u32(p + 16, "entry \(n)'s CRC"))
            var compressed = try directory.u32(p + 20, "entry \(n)'s size")
            var size = try directory.u32(p + 24, "entry \(n)'s size")
            let nameLength = try directory.u16(p + 28, "entry \(n)'s name length")
            let extraLength = try directory.u16(p + 30, "entry \(n)'s extra length")
            let commentLength = try directory.u16(p + 32, "entry \(n)'s comment length")
            var local = try directory.u32(p + 42, "entry \(n)'s offset")
            let name = try directory.slice(p + 46, nameLength, "entry \(n)'s name").string
            // ZIP64 extra (id 1): the 8-byte values whose 32-bit fields are all ones, in order.
            let extra = try directory.slice(p + 46 + nameLength, extraLength, "\(name)'s extra field")
            var e = 0
            while e + 4 <= extra.count {
                let id = try extra.u16(e, "\(name)'s extra id"), length = try extra.u16(e + 2, "\(name)'s extra length")
                if id == 1 {
                    var q = e + 4
                    for field in [0, 1, 2] {
                        let isSet = [size, compressed, local][field] == 0xFFFF_FFFF
                        guard isSet else { continue }
                        let value = try Self.int(extra.u64(q, "\(name)'s ZIP64 extra"), origin)
                        if field == 0 { size = value } else if field == 1 { compressed = value } else { local = value }
                        q += 8
                    }
                }
                e += 4 + length
            }
            guard method == 0, compressed == size else {
                throw NestError("\(origin): \(name) is compressed (method \(method)); torch archives store entries uncompressed")
            }
            guard byName[name] == nil else { throw NestError("\(origin): \(name) appears twice") }
            byName[name] = entries.count
            entries.append(Entry(name: name, size: size, crc: crc, localHeaderOffset: local))
            p += 46 + nameLength + extraLength + commentLength
        }
        self.entries = entries
        self.byName = byName
    }

    static func int(_ v: UInt64, _ origin: String) throws -> Int {
        guard v <= UInt64(Int.max / 2) else { throw NestError("\(origin): a size or offset of \(v) bytes") }
        return Int(v)
    }

    public func contains(_ name: String) -> Bool { byName[name] != nil }

    /// The stored bytes of `name` (a window onto the archive: no copy), CRC-checked when the
    /// archive records one.
    public func entry(_ name: String, verify: Bool = true) throws -> Bytes {
        guard let index = byName[name] else { throw NestError("\(bytes.origin): no entry \(name)") }
        let e = entries[index]
        guard try bytes.u32(e.localHeaderOffset, "\(name)'s local header") == 0x0403_4B50 else {
            throw NestError("\(bytes.origin): \(name)'s local header is damaged")
        }
        let nameLength = try bytes.u16(e.localHeaderOffset + 26, "\(name)'s local name length")
        let extraLength = try bytes.u16(e.localHeaderOffset + 28, "\(name)'s local extra length")
        let body = try bytes.slice(e.localHeaderOffset + 30 + nameLength + extraLength, e.size, name).named("\(bytes.origin):\(name)")
        if verify, e.crc != 0 {
            let crc = body.withUnsafeBytes { p in
                // zlib's crc32 takes a 32-bit length: feed it in pieces.
                var c = crc32(0, nil, 0), offset = 0
                while offset < p.count {
                    let n = min(p.count - offset, 1 << 30)
                    c = crc32(c, p.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, uInt(n))
                    offset += n
                }
                return UInt32(c)
            }
            guard crc == e.crc else { throw NestError("\(bytes.origin): \(name) fails its CRC-32 (corrupted)") }
        }
        return body
    }
}
