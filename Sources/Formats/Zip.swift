import Basics
import Foundation

/// A ZIP archive with STORED (uncompressed) entries, as PyTorch reads them. Without ZIP64, so
/// the archive must stay under 4 GiB (the XL state dict is 2.5 GB).
public enum ZipWriter {
    public static func stored(_ files: [(name: String, body: Data)]) throws -> Data {
        var out = Data(), central = Data()
        for (name, body) in files {
            let offset = out.count
            let crc = CRC32.checksum(body)
            let nameBytes = Data(name.utf8)
            guard offset < Int(UInt32.max), body.count < Int(UInt32.max) else { throw NestError("archive over 4 GiB: ZIP64 is not supported") }
            out.append(le32(0x0403_4B50)); out.append(le16(20)); out.append(le16(0)); out.append(le16(0))
            out.append(le16(0)); out.append(le16(0x21))   // time 00:00, date 1980-01-01
            out.append(le32(crc)); out.append(le32(UInt32(body.count))); out.append(le32(UInt32(body.count)))
            out.append(le16(UInt16(nameBytes.count))); out.append(le16(0))
            out.append(nameBytes); out.append(body)
            central.append(le32(0x0201_4B50)); central.append(le16(20)); central.append(le16(20)); central.append(le16(0)); central.append(le16(0))
            central.append(le16(0)); central.append(le16(0x21))
            central.append(le32(crc)); central.append(le32(UInt32(body.count))); central.append(le32(UInt32(body.count)))
            central.append(le16(UInt16(nameBytes.count))); central.append(le16(0)); central.append(le16(0))
            central.append(le16(0)); central.append(le16(0)); central.append(le32(0)); central.append(le32(UInt32(offset)))
            central.append(nameBytes)
        }
        let centralOffset = out.count
        guard centralOffset < Int(UInt32.max) else { throw NestError("archive over 4 GiB: ZIP64 is not supported") }
        out.append(central)
        out.append(le32(0x0605_4B50)); out.append(le16(0)); out.append(le16(0))
        out.append(le16(UInt16(files.count))); out.append(le16(UInt16(files.count)))
        out.append(le32(UInt32(central.count))); out.append(le32(UInt32(centralOffset))); out.append(le16(0))
        return out
    }

    static func le16(_ v: UInt16) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func le32(_ v: UInt32) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
}
