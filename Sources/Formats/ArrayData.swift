/// The element types the formats store. Half types exist only on disk: readers widen them to
/// float32 for compute.
public enum DType: String, CaseIterable, Sendable {
    case float32, float64, int64, float16, bfloat16

    public var byteCount: Int {
        switch self {
        case .float32: 4
        case .float64, .int64: 8
        case .float16, .bfloat16: 2
        }
    }

    /// safetensors' names.
    public var safetensorsName: String {
        switch self {
        case .float32: "F32"
        case .float64: "F64"
        case .int64: "I64"
        case .float16: "F16"
        case .bfloat16: "BF16"
        }
    }

    /// NumPy's type strings (bfloat16 has none: a raw 2-byte void).
    public var numpyDescr: String {
        switch self {
        case .float32: "<f4"
        case .float64: "<f8"
        case .int64: "<i8"
        case .float16: "<f2"
        case .bfloat16: "|V2"
        }
    }

    /// torch's storage classes (`torch.FloatStorage`, ...), as pickled state dicts name them.
    public var torchStorage: String {
        switch self {
        case .float32: "FloatStorage"
        case .float64: "DoubleStorage"
        case .int64: "LongStorage"
        case .float16: "HalfStorage"
        case .bfloat16: "BFloat16Storage"
        }
    }
}

/// A typed, shaped array as files hold it (row-major): what every reader hands over and every
/// writer takes, with the name it is stored under.
public struct ArrayData: Equatable {
    public enum Values: Equatable {
        case float32([Float])
        case float64([Double])
        case int64([Int64])
    }

    public var shape: [Int]
    public var values: Values

    public init(shape: [Int], values: Values) {
        self.shape = shape
        self.values = values
    }

    /// Element strides of a row-major (C-contiguous) array, as torch archives record them.
    public static func rowMajorStrides(_ shape: [Int]) -> [Int] { shape.indices.map { shape[($0 + 1)...].reduce(1, *) } }

    public init(_ values: [Float], shape: [Int]) { self.init(shape: shape, values: .float32(values)) }
    public init(_ values: [Double], shape: [Int]) { self.init(shape: shape, values: .float64(values)) }
    public init(_ values: [Int64], shape: [Int]) { self.init(shape: shape, values: .int64(values)) }

    public var dtype: DType {
        switch values {
        case .float32: .float32
        case .float64: .float64
        case .int64: .int64
        }
    }

    public var count: Int {
        switch values {
        case .float32(let v): v.count
        case .float64(let v): v.count
        case .int64(let v): v.count
        }
    }

    /// The values as Float32 (converting float64 and int64).
    public var floats: [Float] {
        switch values {
        case .float32(let v): v
        case .float64(let v): v.map { Float($0) }
        case .int64(let v): v.map { Float($0) }
        }
    }

    public var doubles: [Double] {
        switch values {
        case .float32(let v): v.map { Double($0) }
        case .float64(let v): v
        case .int64(let v): v.map { Double($0) }
        }
    }

    public var ints: [Int] {
        switch values {
        case .float32(let v): v.map { Int($0) }
        case .float64(let v): v.map { Int($0) }
        case .int64(let v): v.map { Int($0) }
        }
    }

    /// The raw little-endian elements (all supported hosts are little-endian), as safetensors,
    /// torch archives and NPY store them.
    public func appendBytes(to data: inout [UInt8]) {
        switch values {
        case .float32(let v): v.withUnsafeBytes { data.append(contentsOf: $0) }
        case .float64(let v): v.withUnsafeBytes { data.append(contentsOf: $0) }
        case .int64(let v): v.withUnsafeBytes { data.append(contentsOf: $0) }
        }
    }
}

/// A named array: one entry of a state dict as formats see it.
public typealias NamedArray = (name: String, array: ArrayData)

extension ArrayData {
    /// The flat index of the first NaN or infinity, nil when every value is finite (integers always are).
    public var firstNonFinite: Int? {
        switch values {
        case .float32(let v): v.firstIndex { !$0.isFinite }
        case .float64(let v): v.firstIndex { !$0.isFinite }
        case .int64: nil
        }
    }
}
