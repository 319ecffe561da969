import Basics
import Foundation

/// Reads safetensors files (nest-train's exports and Hugging Face's): the JSON header is
/// checked entry by entry (dtype, shape, offsets inside the data, no overlaps beyond what the
/// header says) before any tensor is read; half types are widened to float32.
public struct SafetensorsReader: TensorSource {
    public let origin: String
    let body: Bytes
    let entries: [(name: String, dtype: DType, shape: [Int], range: Range<Int>)]
    private let index: [String: Int]
    public let metadata: [String: String]

    public init(_ bytes: Bytes) throws {
        origin = bytes.origin
        let headerLength = try bytes.u64(0, "the header length")
        guard headerLength <= 100 << 20, Int(headerLength) <= bytes.count - 8 else {
            throw NestError("\(origin): not a safetensors file (header length \(headerLength))")
        }
        let header = try bytes.slice(8, Int(headerLength), "the header")
        guard let json = try? JSONSerialization.jsonObject(with: Data(header.array)) as? [String: Any] else {
            throw NestError("\(origin): the safetensors header is not a JSON object")
        }
        body = try bytes.slice(8 + Int(headerLength), bytes.count - 8 - Int(headerLength), "the data")
        var entries: [(String, DType, [Int], Range<Int>)] = []
        var meta: [String: String] = [:]
        let names: [String: DType] = Dictionary(uniqueKeysWithValues: DType.allCases.map { ($0.safetensorsName, $0) })
        for (name, value) in json {
            if name == "__metadata__" {
                meta = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                  let shape = (info["shape"] as? [NSNumber])?.map(\.intValue), let offsets = (info["data_offsets"] as? [NSNumber])?.map(\.intValue),
                  offsets.count == 2 else { throw NestError("\(origin): \(name): malformed header entry") }
            guard let dtype = names[dtypeName] else { throw NestError("\(origin): \(name): dtype \(dtypeName) is not supported") }
            guard shape.count <= 8, shape.allSatisfy({ $0 >= 0 }) else { throw NestError("\(origin): \(name): invalid shape \(shape)") }
            var count = 1
            for n in shape {
                let (c, overflow) = count.multipliedReportingOverflow(by: n)
                guard !overflow else { throw NestError("\(origin): \(name): shape \(shape) overflows") }
                count = c
            }
            guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= body.count,
                  offsets[1] - offsets[0] == count * dtype.byteCount else {
                throw NestError("\(origin): \(name): data offsets \(offsets) do not fit \(shape) \(dtypeName) in \(body.count) bytes")
            }
            entries.append((name, dtype, shape, offsets[0]..<offsets[1]))
        }
        entries.sort { $0.3.lowerBound < $1.3.lowerBound }
        for (a, b) in Swift.zip(entries, entries.dropFirst()) where b.3.lowerBound < a.3.upperBound {
            throw NestError("\(origin): \(a.0) and \(b.0) overlap")
        }
        self.entries = entries
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.0, $0) })
        metadata = meta
    }

    public func names() throws -> [String] { entries.map(\.name) }

    public func shape(_ name: String) throws -> [Int] { try entry(name).shape }

    func entry(_ name: String) throws -> (name: String, dtype: DType, shape: [Int], range: Range<Int>) {
        guard let i = index[name] else { throw NestError("\(origin): no tensor \(name)") }
        return entries[i]
    }

    public func read(_ name: String) throws -> ArrayData {
        let e = try entry(name)
        let data = try body.slice(e.range.lowerBound, e.range.count, name)
        let count = e.shape.reduce(1, *)
        return data.withUnsafeBytes { raw in
            switch e.dtype {
            case .float32: ArrayData(shape: e.shape, values: .float32((0..<count).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }))
            case .float64: ArrayData(shape: e.shape, values: .float64((0..<count).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Double.self) }))
            case .int64: ArrayData(shape: e.shape, values: .int64((0..<count).map { raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self) }))
            case .bfloat16: ArrayData(shape: e.shape, values: .float32((0..<count).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) << 16) }))
            case .float16: ArrayData(shape: e.shape, values: .float32((0..<count).map { HalfFloat.widen(raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }))
            }
        }
    }
}
