import Basics
import Foundation

/// What `torch.save(state_dict)` wrote, read without torch: the zip's `data.pkl` through the
/// restricted `Unpickler`, each tensor a view into its `data/<key>` record. Storages are
/// checked against their record sizes and views against their storages before any tensor is
/// read; values are read from the (memory-mapped) archive one tensor at a time, half types
/// widened to float32. A Lightning `.ckpt` (a dict holding `state_dict`) reads the same way.
public struct TorchArchiveReader: TensorSource {
    public let origin: String
    let zip: ZipReader
    public let prefix: String
    /// Tensors in the pickle's order.
    let tensors: [(name: String, ref: Unpickler.TensorRef)]
    private let index: [String: Int]
    /// The `_metadata` attribute (per-module versions), kept for re-export.
    public let metadata: [(key: String, version: Int)]
    /// The records torch writes beside the pickle: `version` (serialization format) and
    /// `.format_version` (absent before torch 2.x).
    public let serializationVersion: String?, formatVersion: String?

    /// The legacy (pre-1.6, not zip) torch format starts with this pickled magic number.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    public init(_ bytes: Bytes, limits: Unpickler.Limits = Unpickler.Limits()) throws {
        origin = bytes.origin
        if bytes.starts(with: Self.legacyMagic) {
            throw NestError("\(origin): torch's legacy (pre-1.6) serialization format is not supported; re-save it with torch ≥ 1.6 (torch.save(torch.load(f), f))")
        }
        guard bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) else { throw NestError("\(origin): not a torch archive (not a ZIP file)") }
        zip = try ZipReader(bytes)
        // Records share the prefix torch took from the file name ("model_weights/", "archive/").
        guard let first = zip.entries.first?.name, let slash = first.firstIndex(of: "/") else { throw NestError("\(origin): empty torch archive") }
        prefix = String(first[...slash])
        if zip.contains(prefix + "byteorder") {
            let order = try zip.entry(prefix + "byteorder").string
            guard order == "little" else { throw NestError("\(origin): byte order \(order) is not supported") }
        }
        guard zip.contains(prefix + "data.pkl") else { throw NestError("\(origin): no \(prefix)data.pkl") }
        let pickleBytes = try zip.entry(prefix + "data.pkl")
        guard pickleBytes.count <= 64 << 20 else { throw NestError("\(origin): data.pkl of \(pickleBytes.count) bytes") }
        var top = try Unpickler.load(pickleBytes, limits: limits)
        // A Lightning checkpoint: the weights are its "state_dict" entry.
        if case .dict(let d) = top, let sd = d.items.first(where: { if case .string("state_dict") = $0.key { return true }; return false }) {
            top = sd.value
        }
        guard case .dict(let dict) = top else { throw NestError("\(origin): the pickle holds no state dict") }
        var tensors: [(String, Unpickler.TensorRef)] = [], index: [String: Int] = [:]
        var storages: [String: Unpickler.StorageRef] = [:]
        for (key, value) in dict.items {
            guard case .string(let name) = key else { throw NestError("\(origin): a state-dict key is not a string") }
            guard case .tensor(let t) = value else { throw NestError("\(origin): \(name) is not a tensor") }
            guard index[name] == nil else { throw NestError("\(origin): \(name) appears twice") }
            if let seen = storages[t.storage.key], seen != t.storage {
                throw NestError("\(origin): storage \(t.storage.key) is used as \(seen.dtype) and as \(t.storage.dtype)")
            }
            storages[t.storage.key] = t.storage
            index[name] = tensors.count
            tensors.append((name, t))
        }
        for s in storages.values {
            let record = prefix + "data/" + s.key
            guard let entry = zip.entries.first(where: { $0.name == record }) else { throw NestError("\(origin): storage \(record) is missing") }
            let (bytes, overflow) = s.count.multipliedReportingOverflow(by: s.dtype.byteCount)
            guard !overflow, entry.size == bytes else {
                throw NestError("\(origin): \(record) holds \(entry.size) bytes, its \(s.count) \(s.dtype) elements need \(s.count * s.dtype.byteCount)")
            }
        }
        // Verify every storage's CRC now, so that reading a tensor later cannot fail halfway
        // through loading a model.
        for key in storages.keys.sorted() { _ = try zip.entry(prefix + "data/" + key) }
        self.tensors = tensors
        self.index = index
        var metadata: [(String, Int)] = []
        for (k, v) in dict.attributes {
            guard case .string("_metadata") = k, case .dict(let m) = v else { continue }
            for (module, info) in m.items {
                guard case .string(let name) = module, case .dict(let i) = info else { continue }
                for (ik, iv) in i.items { if case .string("version") = ik, case .int(let n) = iv { metadata.append((name, n)) } }
            }
        }
        self.metadata = metadata
        let archive = zip, recordPrefix = prefix
        func record(_ name: String) -> String? {
            archive.contains(recordPrefix + name) ? (try? archive.entry(recordPrefix + name))?.string.trimmingCharacters(in: .whitespacesAndNewlines) : nil
        }
        serializationVersion = record("version")
        formatVersion = record(".format_version")
    }

    public func names() throws -> [String] { tensors.map(\.name) }

    public func shape(_ name: String) throws -> [Int] { try ref(name).shape }

    public func dtype(_ name: String) throws -> DType { try ref(name).storage.dtype }

    func ref(_ name: String) throws -> Unpickler.TensorRef {
        guard let i = index[name] else { throw NestError("\(origin): no tensor \(name)") }
        return tensors[i].ref
    }

    public func read(_ name: String) throws -> ArrayData {
        let t = try ref(name)
        let record = try zip.entry(prefix + "data/" + t.storage.key, verify: false)
        let count = t.shape.reduce(1, *)
        return record.withUnsafeBytes { raw in
            // Element offsets of the view in row-major order (a plain run when contiguous).
            let contiguous = Swift.zip(t.shape, Swift.zip(t.strides, ArrayData.rowMajorStrides(t.shape))).allSatisfy { $0 == 1 || $1.0 == $1.1 }
            func gather<T>(_ read: (Int) -> T) -> [T] {
                if contiguous { return (0..<count).map { read(t.offset + $0) } }
                var out: [T] = []
                out.reserveCapacity(count)
                guard count > 0 else { return out }
                var idx = [Int](repeating: 0, count: t.shape.count)
                for _ in 0..<count {
                    out.append(read(t.offset + Swift.zip(idx, t.strides).reduce(0) { $0 + $1.0 * $1.1 }))
                    var d = t.shape.count - 1
                    while d >= 0 {
                        idx[d] += 1
                        if idx[d] < t.shape[d] { break }
                        idx[d] = 0
                        d -= 1
                    }
                }
                return out
            }
            switch t.storage.dtype {
            case .float32: return ArrayData(shape: t.shape, values: .float32(gather { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }))
            case .float64: return ArrayData(shape: t.shape, values: .float64(gather { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) }))
            case .int64: return ArrayData(shape: t.shape, values: .int64(gather { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) }))
            case .bfloat16:
                return ArrayData(shape: t.shape, values: .float32(gather { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16) }))
            case .float16:
                return ArrayData(shape: t.shape, values: .float32(gather { HalfFloat.widen(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }))
            }
        }
    }
}

/// IEEE half precision to single, by hand (Swift's Float16 is missing on Intel macOS).
enum HalfFloat {
    static func widen(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int(h >> 10 & 0x1F), mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2^−24.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }   // inf, NaN
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
    }
}
