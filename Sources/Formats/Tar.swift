import Foundation

/// An uncompressed POSIX ustar archive (what NeMo writes with tarfile mode "w:").
public enum TarWriter {
    public static func archive(_ files: [(name: String, body: Data)]) -> Data {
        var out = Data()
        for (name, body) in files { out.append(member(name, body)) }
        out.append(end)
        return out
    }

    /// Two zero blocks end an archive.
    public static let end = Data(count: 1024)

    /// One member: its header block (after a PAX header carrying the name when it is longer
    /// than ustar's 100 bytes, as Python's tarfile writes), the body, zero padding to 512 bytes.
    public static func member(_ name: String, _ body: Data) -> Data {
        var out = Data()
        if name.utf8.count > 100 {
            // "<length> path=<name>\n", the length counting itself.
            let record = { (n: Int) in "\(n) path=\(name)\n" }
            var length = record(0).utf8.count
            while record(length).utf8.count != length { length = record(length).utf8.count }
            let pax = Data(record(length).utf8)
            out.append(block(name: "././@PaxHeader", size: pax.count, type: "x"))
            out.append(pax)
            out.append(Data(count: (512 - pax.count % 512) % 512))
        }
        out.append(block(name: name, size: body.count, type: "0"))
        out.append(body)
        out.append(Data(count: (512 - body.count % 512) % 512))
        return out
    }

    static func block(name: String, size: Int, type: Character) -> Data {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, at offset: Int, _ length: Int) {
            for (i, c) in s.utf8.prefix(length).enumerated() { header[offset + i] = c }
        }
        put(name, at: 0, 100)
        put("0000644", at: 100, 8)
        put("0000000", at: 108, 8)
        put("0000000", at: 116, 8)
        put(String(format: "%011o", size), at: 124, 12)
        put(String(format: "%011o", Int(Date().timeIntervalSince1970)), at: 136, 12)
        put("        ", at: 148, 8)       // the checksum field counts as spaces
        header[156] = type.asciiValue!
        put("ustar", at: 257, 6)
        put("00", at: 263, 2)
        let sum = header.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), at: 148, 6)
        header[154] = 0
        header[155] = UInt8(ascii: " ")
        return Data(header)
    }
}
