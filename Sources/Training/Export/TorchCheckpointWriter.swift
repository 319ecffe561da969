import Foundation
import NN

/// `model_weights.ckpt` as `torch.save(state_dict)` writes it (spec §10.2): a ZIP archive
/// (entries STORED) with `archive/data.pkl` (a protocol-2 pickle of an OrderedDict of tensors
/// rebuilt by `torch._utils._rebuild_tensor_v2` from persistent storages), one
/// `archive/data/<n>` file of raw little-endian elements per tensor, `archive/version` and
/// `archive/byteorder`. Loadable with `torch.load(..., weights_only=True)`.
public enum TorchCheckpointWriter {
    public static func data(_ entries: [StateEntry]) throws -> Data {
        var files: [(String, Data)] = [("archive/data.pkl", pickle(entries))]
        for (n, e) in entries.enumerated() {
            var bytes = Data()
            switch e.value {
            case .float32(let t): t.array.withUnsafeBytes { bytes.append(contentsOf: $0) }
            case .float64(let t): t.values.withUnsafeBytes { bytes.append(contentsOf: $0) }
            case .int64(let t): t.values.withUnsafeBytes { bytes.append(contentsOf: $0) }
            }
            files.append(("archive/data/\(n)", bytes))
        }
        files.append(("archive/version", Data("3\n".utf8)))
        files.append(("archive/byteorder", Data("little".utf8)))
        return try ZipWriter.stored(files)
    }

    /// The pickle: OrderedDict([(key, tensor), ...]).
    static func pickle(_ entries: [StateEntry]) -> Data {
        var p = PickleWriter()
        p.proto2()
        p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
        p.mark()
        for (n, e) in entries.enumerated() {
            p.string(e.key)
            // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.mark()
            p.mark()
            p.string("storage")
            switch e.value {
            case .float32: p.global("torch", "FloatStorage")
            case .float64: p.global("torch", "DoubleStorage")
            case .int64: p.global("torch", "LongStorage")
            }
            p.string(String(n)); p.string("cpu"); p.int(e.value.count)
            p.tuple()
            p.persistentID()
            p.int(0)
            p.intTuple(e.value.shape)
            p.intTuple(strides(e.value.shape))
            p.bool(false)
            p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
            p.tuple()
            p.reduce()
        }
        p.setItems()
        p.stop()
        return p.data
    }

    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count), acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }
}

/// The few pickle opcodes a state dict needs (protocol 2, no memo).
struct PickleWriter {
    var data = Data()
    mutating func op(_ c: Character) { data.append(c.asciiValue!) }
    mutating func proto2() { data.append(contentsOf: [0x80, 2]) }
    mutating func mark() { op("(") }
    mutating func stop() { op(".") }
    mutating func tuple() { op("t") }
    mutating func emptyTuple() { op(")") }
    mutating func reduce() { op("R") }
    mutating func setItems() { op("u") }
    mutating func persistentID() { op("Q") }
    mutating func bool(_ v: Bool) { data.append(v ? 0x88 : 0x89) }
    mutating func global(_ module: String, _ name: String) { op("c"); data.append(Data("\(module)\n\(name)\n".utf8)) }
    mutating func string(_ s: String) {
        let bytes = Data(s.utf8)
        op("X"); append32(UInt32(bytes.count)); data.append(bytes)
    }
    mutating func int(_ v: Int) {
        if v >= 0 && v < 256 { op("K"); data.append(UInt8(v)) }
        else if v >= 0 && v < 65_536 { op("M"); data.append(UInt8(v & 0xFF)); data.append(UInt8(v >> 8)) }
        else if v >= Int(Int32.min) && v <= Int(Int32.max) { op("J"); append32(UInt32(bitPattern: Int32(v))) }
        else {
            // LONG1: little-endian two's complement, 8 bytes.
            data.append(0x8A); data.append(8)
            withUnsafeBytes(of: Int64(v).littleEndian) { data.append(contentsOf: $0) }
        }
    }
    mutating func intTuple(_ values: [Int]) {
        if values.isEmpty { emptyTuple(); return }
        mark(); for v in values { int(v) }; tuple()
    }
    mutating func append32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
}

/// A ZIP archive with STORED (uncompressed) entries, as PyTorch reads them. Without ZIP64, so
/// the archive must stay under 4 GiB (the XL state dict is 2.5 GB).
enum ZipWriter {
    static func stored(_ files: [(String, Data)]) throws -> Data {
        var out = Data(), central = Data()
        for (name, body) in files {
            let offset = out.count
            let crc = CRC32.checksum(body)
            let nameBytes = Data(name.utf8)
            guard offset < Int(UInt32.max), body.count < Int(UInt32.max) else { throw CheckpointError("archive over 4 GiB: ZIP64 is not supported") }
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
        guard centralOffset < Int(UInt32.max) else { throw CheckpointError("archive over 4 GiB: ZIP64 is not supported") }
        out.append(central)
        out.append(le32(0x0605_4B50)); out.append(le16(0)); out.append(le16(0))
        out.append(le16(UInt16(files.count))); out.append(le16(UInt16(files.count)))
        out.append(le32(UInt32(central.count))); out.append(le32(UInt32(centralOffset))); out.append(le16(0))
        return out
    }

    static func le16(_ v: UInt16) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func le32(_ v: UInt32) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
}

/// CRC-32 (IEEE 802.3, as ZIP uses it).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ data: Data) -> UInt32 {
        var running = Running()
        running.update(data)
        return running.value
    }

    /// A CRC over data that arrives in pieces.
    struct Running {
        private var c: UInt32 = 0xFFFF_FFFF
        mutating func update(_ data: Data) {
            var c = self.c
            data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
            }
            self.c = c
        }
        var value: UInt32 { c ^ 0xFFFF_FFFF }
    }
}

/// An uncompressed POSIX ustar archive (what NeMo writes with tarfile mode "w:").
enum TarWriter {
    static func archive(_ files: [(String, Data)]) -> Data {
        var out = Data()
        for (name, body) in files {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ s: String, at offset: Int, _ length: Int) {
                let b = Array(s.utf8.prefix(length))
                for (i, c) in b.enumerated() { header[offset + i] = c }
            }
            put(name, at: 0, 100)
            put("0000644", at: 100, 8)
            put("0000000", at: 108, 8)
            put("0000000", at: 116, 8)
            put(String(format: "%011o", body.count), at: 124, 12)
            put(String(format: "%011o", Int(Date().timeIntervalSince1970)), at: 136, 12)
            put("        ", at: 148, 8)       // checksum field counts as spaces
            header[156] = UInt8(ascii: "0")  // regular file
            put("ustar", at: 257, 6)
            put("00", at: 263, 2)
            let sum = header.reduce(0) { $0 + Int($1) }
            put(String(format: "%06o", sum), at: 148, 6)
            header[154] = 0
            header[155] = UInt8(ascii: " ")
            out.append(contentsOf: header)
            out.append(body)
            let pad = (512 - body.count % 512) % 512
            out.append(Data(count: pad))
        }
        out.append(Data(count: 1024))   // two zero blocks end the archive
        return out
    }
}
