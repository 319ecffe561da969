import Foundation

/// An uncompressed POSIX ustar archive (what NeMo writes with tarfile mode "w:").
public enum TarWriter {
    public static func archive(_ files: [(name: String, body: Data)]) -> Data {
        var out = Data()
        for (name, body) in files {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ s: String, at offset: Int, _ length: Int) {
                for (i, c) in s.utf8.prefix(length).enumerated() { header[offset + i] = c }
            }
            put(name, at: 0, 100)
            put("0000644", at: 100, 8)
            put("0000000", at: 108, 8)
            put("0000000", at: 116, 8)
            put(String(format: "%011o", body.count), at: 124, 12)
            put(String(format: "%011o", Int(Date().timeIntervalSince1970)), at: 136, 12)
            put("        ", at: 148, 8)       // the checksum field counts as spaces
            header[156] = UInt8(ascii: "0")  // regular file
            put("ustar", at: 257, 6)
            put("00", at: 263, 2)
            let sum = header.reduce(0) { $0 + Int($1) }
            put(String(format: "%06o", sum), at: 148, 6)
            header[154] = 0
            header[155] = UInt8(ascii: " ")
            out.append(contentsOf: header)
            out.append(body)
            out.append(Data(count: (512 - body.count % 512) % 512))
        }
        out.append(Data(count: 1024))   // two zero blocks end the archive
        return out
    }
}
