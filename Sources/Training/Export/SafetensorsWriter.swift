import Foundation
import NN

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
/// name to dtype, shape and byte offsets (plus `__metadata__`), then the raw little-endian data.
public enum SafetensorsWriter {
    public static func data(entries: [StateEntry], metadata: [String: String]) throws -> Data {
        var header: [String: Any] = ["__metadata__": metadata]
        var body = Data()
        for e in entries {
            let start = body.count
            let dtype: String
            switch e.value {
            case .float32(let t): dtype = "F32"; t.array.withUnsafeBytes { body.append(contentsOf: $0) }
            case .float64(let t): dtype = "F64"; t.values.withUnsafeBytes { body.append(contentsOf: $0) }
            case .int64(let t): dtype = "I64"; t.values.withUnsafeBytes { body.append(contentsOf: $0) }
            }
            header[e.key] = ["dtype": dtype, "shape": e.value.shape, "data_offsets": [start, body.count]]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var size = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &size) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        return out
    }
}

/// NumPy `.npy` (format 1.0) for float32 arrays, as NeMo's feature extractor writes them.
public enum NPYWriter {
    public static func data(_ values: [Float], shape: [Int]) -> Data {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in \n.
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        var length = UInt16(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(Data(header.utf8))
        values.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }
}
