import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each
/// name to dtype, shape and byte offsets (plus `__metadata__`), then the raw little-endian data.
public enum SafetensorsWriter {
    public static func data(_ arrays: [NamedArray], metadata: [String: String]) throws -> Data {
        var header: [String: Any] = ["__metadata__": metadata]
        var body: [UInt8] = []
        for entry in arrays {
            let start = body.count
            entry.array.appendBytes(to: &body)
            header[entry.name] = ["dtype": entry.array.dtype.safetensorsName, "shape": entry.array.shape, "data_offsets": [start, body.count]]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(contentsOf: body)
        return out
    }
}
