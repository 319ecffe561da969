import Basics
import CZlib
import Foundation

/// Reads tar archives as NeMo writes `.nemo` files: ustar members with PAX headers (type x/g,
/// whose `path` and `size` apply), GNU long names (type L), base-256 sizes, `./` prefixes;
/// gzip-compressed archives (NeMo before 1.7) are inflated first. Folders are skipped; links,
/// absolute paths and `..` are refused, as NeMo's own reader skips them.
public struct TarReader {
    public let bytes: Bytes
    /// Regular files by name (without `./`), each a window onto the archive.
    public let members: [(name: String, body: Bytes)]

    /// A member's size at most (an XL `.nemo` is ~2.5 GB).
    static let maxMemberBytes = 1 << 40
    /// Inflated size at most for gzip archives (only old, small models were compressed).
    static let maxInflatedBytes = 16 << 30
    /// Inflated size at most per compressed byte, beyond a small allowance. Float32 weights
    /// barely compress (about 1.1×), so a ratio past this is a decompression bomb, refused
    /// before memory grows beyond a small multiple of the file.
    static let maxInflationRatio = 4
    static let inflationAllowance = 64 << 20

    public init(_ raw: Bytes) throws {
        let bytes = raw.starts(with: [0x1F, 0x8B]) ? try Self.gunzip(raw) : raw
        self.bytes = bytes
        var members: [(String, Bytes)] = []
        var offset = 0
        var paxPath: String?, paxSize: Int?, longName: String?
        while offset + 512 <= bytes.count {
            let header = try bytes.slice(offset, 512, "a tar header").array
            if header.allSatisfy({ $0 == 0 }) { break }   // end of archive
            let stored = header[148..<156]
            // Unsigned, or signed as some old writers summed (Python's tarfile accepts both).
            let sum = header.enumerated().reduce(0) { $0 + ((148..<156).contains($1.offset) ? 32 : Int($1.element)) }
            let signedSum = header.enumerated().reduce(0) { $0 + ((148..<156).contains($1.offset) ? 32 : Int(Int8(bitPattern: $1.element))) }
            guard let expected = Self.octal(stored), expected == sum || expected == signedSum else {
                throw NestError("\(bytes.origin): damaged tar header at byte \(offset) (checksum)")
            }
            guard let size = Self.size(header[124..<136]), size <= Self.maxMemberBytes else {
                throw NestError("\(bytes.origin): tar header at byte \(offset) has an invalid size")
            }
            let type = header[156]
            let bodySize = paxSize ?? size
            let body = try bytes.slice(offset + 512, bodySize, "tar member at byte \(offset)")
            var name = longName ?? paxPath ?? Self.name(header)
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let (path, paxLength) = try Self.pax(body)
                if type == UInt8(ascii: "x") { paxPath = path ?? paxPath; paxSize = paxLength ?? paxSize }
            case UInt8(ascii: "L"):
                longName = String(decoding: body.array.prefix { $0 != 0 }, as: UTF8.self)
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                while name.hasPrefix("./") { name.removeFirst(2) }
                guard !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                    throw NestError("\(bytes.origin): unsafe member name \(name)")
                }
                members.append((name, body.named("\(bytes.origin):\(name)")))
                paxPath = nil; paxSize = nil; longName = nil
            case UInt8(ascii: "5"):
                paxPath = nil; paxSize = nil; longName = nil
            default:
                throw NestError("\(bytes.origin): member \(name) is a link or special file (type \(Character(UnicodeScalar(type))))")
            }
            offset += 512 + (bodySize + 511) / 512 * 512
        }
        // Ending exactly after a member without the end blocks is accepted (Python's tarfile
        // does); a cut padding or a partial header is a truncated archive.
        if offset > bytes.count { throw NestError("\(bytes.origin): truncated tar (ends inside the padding of its last member)") }
        if offset < bytes.count, offset + 512 > bytes.count {
            let rest = try bytes.slice(offset, bytes.count - offset, "the tail")
            if rest.withUnsafeBytes({ $0.contains { $0 != 0 } }) {
                throw NestError("\(bytes.origin): truncated tar (a partial header at byte \(offset))")
            }
        }
        self.members = members
    }

    public func member(_ name: String) -> Bytes? { members.first { $0.name == name }?.body }

    static func name(_ h: [UInt8]) -> String {
        func field(_ r: Range<Int>) -> String { String(decoding: h[r].prefix { $0 != 0 }, as: UTF8.self) }
        let prefix = h[257..<262] == [0x75, 0x73, 0x74, 0x61, 0x72] ? field(345..<500) : ""
        return prefix.isEmpty ? field(0..<100) : prefix + "/" + field(0..<100)
    }

    static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        let text = String(decoding: field.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        return text.isEmpty ? 0 : Int(text, radix: 8)
    }

    /// Octal, or GNU base-256 (high bit of the first byte set) for large sizes.
    static func size(_ field: ArraySlice<UInt8>) -> Int? {
        guard let first = field.first, first & 0x80 != 0 else { return octal(field) }
        var value = 0
        for (i, b) in field.enumerated() {
            let byte = i == 0 ? Int(b & 0x7F) : Int(b)
            guard value <= (Int.max >> 9) else { return nil }
            value = value << 8 | byte
        }
        return value
    }

    /// PAX records "<length> <key>=<value>\n": the path and size, if given.
    static func pax(_ body: Bytes) throws -> (String?, Int?) {
        let text = body.string
        var path: String?, size: Int?
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " "), let eq = line[space...].firstIndex(of: "=") else { continue }
            let key = line[line.index(after: space)..<eq], value = String(line[line.index(after: eq)...])
            if key == "path" { path = value }
            if key == "size" {
                guard let n = Int(value), n >= 0, n <= maxMemberBytes else { throw NestError("\(body.origin): invalid PAX size \(value)") }
                size = n
            }
        }
        return (path, size)
    }

    /// Inflates a gzip stream into memory, refusing more than `maxInflatedBytes` or more than
    /// `maxInflationRatio` times the compressed size (plus `inflationAllowance`).
    static func gunzip(_ bytes: Bytes) throws -> Bytes {
        let limit = min(maxInflatedBytes, inflationAllowance + maxInflationRatio * bytes.count)
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw NestError("\(bytes.origin): cannot start gzip decompression")
        }
        defer { inflateEnd(&stream) }
        var out = Data()
        var exceeded = false
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        let status: Int32 = bytes.withUnsafeBytes { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = uInt(input.count)
            var status = Z_OK
            while status == Z_OK {
                status = chunk.withUnsafeMutableBufferPointer { c in
                    stream.next_out = c.baseAddress
                    stream.avail_out = uInt(c.count)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    out.append(c.baseAddress!, count: c.count - Int(stream.avail_out))
                    return s
                }
                if out.count > limit { exceeded = true; return Z_STREAM_ERROR }
                if status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0 { return Z_DATA_ERROR }
            }
            return status
        }
        if exceeded {
            throw NestError("\(bytes.origin): gzip data inflates past \(limit >> 20) MiB (\(maxInflationRatio)× its \(bytes.count) compressed bytes "
                            + "and \(inflationAllowance >> 20) MiB more), beyond any model checkpoint: refusing it as a decompression bomb "
                            + "(only NeMo < 1.7 wrote compressed .nemo files; extract it with tar and pass the folder)")
        }
        guard status == Z_STREAM_END else { throw NestError("\(bytes.origin): damaged or truncated gzip data (zlib status \(status))") }
        return Bytes(out, origin: bytes.origin)
    }
}
