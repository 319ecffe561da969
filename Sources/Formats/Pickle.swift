import Foundation

/// The few pickle opcodes a state dict needs (protocol 2, no memo).
public struct PickleWriter {
    public private(set) var data = Data()
    public init() {}

    mutating func op(_ c: Character) { data.append(c.asciiValue!) }
    public mutating func proto2() { data.append(contentsOf: [0x80, 2]) }
    public mutating func mark() { op("(") }
    public mutating func stop() { op(".") }
    public mutating func tuple() { op("t") }
    public mutating func emptyTuple() { op(")") }
    public mutating func reduce() { op("R") }
    public mutating func setItems() { op("u") }
    public mutating func persistentID() { op("Q") }
    public mutating func bool(_ v: Bool) { data.append(v ? 0x88 : 0x89) }
    public mutating func global(_ module: String, _ name: String) { op("c"); data.append(Data("\(module)\n\(name)\n".utf8)) }
    public mutating func string(_ s: String) {
        let bytes = Data(s.utf8)
        op("X"); append32(UInt32(bytes.count)); data.append(bytes)
    }
    public mutating func int(_ v: Int) {
        if v >= 0 && v < 256 { op("K"); data.append(UInt8(v)) }
        else if v >= 0 && v < 65_536 { op("M"); data.append(UInt8(v & 0xFF)); data.append(UInt8(v >> 8)) }
        else if v >= Int(Int32.min) && v <= Int(Int32.max) { op("J"); append32(UInt32(bitPattern: Int32(v))) }
        else {
            // LONG1: little-endian two's complement, 8 bytes.
            data.append(0x8A); data.append(8)
            withUnsafeBytes(of: Int64(v).littleEndian) { data.append(contentsOf: $0) }
        }
    }
    public mutating func intTuple(_ values: [Int]) {
        if values.isEmpty { emptyTuple(); return }
        mark(); for v in values { int(v) }; tuple()
    }
    mutating func append32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
}
