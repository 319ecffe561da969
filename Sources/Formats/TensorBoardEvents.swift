import Foundation

/// TensorBoard's event files, written without TensorFlow: TFRecord framing (length, masked
/// CRC-32C of the length, data, masked CRC-32C of the data) around `Event` protocol buffers
/// holding scalar `Summary` values. Only the fields scalars need are encoded:
/// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5 }
/// Summary { repeated Value value = 1 }  Value { string tag = 1; float simple_value = 2 }.
public enum TensorBoardEvents {
    /// The first record of every file.
    public static func fileVersion(wallTime: Double) -> Data {
        record(event(wallTime: wallTime, step: 0, body: field(3, string: "brain.Event:2")))
    }

    /// One event with a scalar per tag.
    public static func scalars(_ values: [(tag: String, value: Float)], step: Int, wallTime: Double) -> Data {
        var summary = Data()
        for (tag, value) in values {
            var v = field(1, string: tag)
            v.append(key(2, wire: 5))
            withUnsafeBytes(of: value.bitPattern.littleEndian) { v.append(contentsOf: $0) }
            summary.append(field(1, bytes: v))
        }
        return record(event(wallTime: wallTime, step: step, body: field(5, bytes: summary)))
    }

    static func event(wallTime: Double, step: Int, body: Data) -> Data {
        var e = key(1, wire: 1)
        withUnsafeBytes(of: wallTime.bitPattern.littleEndian) { e.append(contentsOf: $0) }
        e.append(key(2, wire: 0))
        e.append(varint(UInt64(bitPattern: Int64(step))))
        e.append(body)
        return e
    }

    /// TFRecord framing.
    public static func record(_ data: Data) -> Data {
        var out = Data()
        var length = Data()
        withUnsafeBytes(of: UInt64(data.count).littleEndian) { length.append(contentsOf: $0) }
        out.append(length)
        withUnsafeBytes(of: CRC32C.masked(length).littleEndian) { out.append(contentsOf: $0) }
        out.append(data)
        withUnsafeBytes(of: CRC32C.masked(data).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    static func key(_ field: Int, wire: Int) -> Data { varint(UInt64(field << 3 | wire)) }
    static func field(_ n: Int, string: String) -> Data { field(n, bytes: Data(string.utf8)) }
    static func field(_ n: Int, bytes: Data) -> Data { key(n, wire: 2) + varint(UInt64(bytes.count)) + bytes }

    static func varint(_ value: UInt64) -> Data {
        var v = value, out = Data()
        repeat {
            let byte = UInt8(v & 0x7F)
            v >>= 7
            out.append(v == 0 ? byte : byte | 0x80)
        } while v != 0
        return out
    }
}

/// CRC-32C (Castagnoli), as TFRecord uses it, and TFRecord's mask.
public enum CRC32C {
    static let table = CRC32.lookupTable(polynomial: 0x82F6_3B78)

    public static func checksum(_ data: Data) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// ((crc >> 15) | (crc << 17)) + 0xa282ead8.
    public static func masked(_ data: Data) -> UInt32 {
        let c = checksum(data)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}
