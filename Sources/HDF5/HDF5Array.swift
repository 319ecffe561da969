/// A typed, shaped array as stored in an HDF5 dataset (row-major).
public struct HDF5Array: Equatable {
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

    public init(_ values: [Float], shape: [Int]) { self.init(shape: shape, values: .float32(values)) }
    public init(_ values: [Double], shape: [Int]) { self.init(shape: shape, values: .float64(values)) }
    public init(_ values: [Int64], shape: [Int]) { self.init(shape: shape, values: .int64(values)) }

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

    public var dtypeName: String {
        switch values {
        case .float32: "float32"
        case .float64: "float64"
        case .int64: "int64"
        }
    }
}
