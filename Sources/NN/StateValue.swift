import Formats
import Tensor

/// Float64 values with a shape (NeMo keeps the quantizer codebooks in float64).
public final class DoubleTensor {
    public let shape: [Int]
    public var values: [Double] { didSet { version += 1 } }
    /// Counts the writes to `values` (a loaded state dict is one), so that a copy of them
    /// elsewhere (on a device) knows when it is stale.
    public private(set) var version = 0
    public init(_ values: [Double], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }
}

/// Int64 values with a shape (BatchNorm's `num_batches_tracked` is an int64 scalar).
public final class Int64Tensor {
    public let shape: [Int]
    public var values: [Int64]
    public init(_ values: [Int64], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }
}

/// One state-dict entry: a reference to the live storage, so loading writes into the model.
public enum StateValue {
    case float32(Tensor)
    case float64(DoubleTensor)
    case int64(Int64Tensor)

    public var shape: [Int] {
        switch self {
        case .float32(let t): t.shape
        case .float64(let t): t.shape
        case .int64(let t): t.shape
        }
    }

    public var count: Int { shape.reduce(1, *) }

    /// The storage's identity: equal for two keys of one tensor (a module registered twice).
    public var identity: ObjectIdentifier {
        switch self {
        case .float32(let t): ObjectIdentifier(t)
        case .float64(let t): ObjectIdentifier(t)
        case .int64(let t): ObjectIdentifier(t)
        }
    }

    public var dtype: DType {
        switch self {
        case .float32: .float32
        case .float64: .float64
        case .int64: .int64
        }
    }
}

/// A state-dict entry with its NeMo key and whether it is a parameter (counted in parameter
/// totals, trainable or frozen) or a buffer.
public struct StateEntry {
    public let key: String
    public let value: StateValue
    public let isParameter: Bool
    public var isTrainable: Bool {
        if case .float32(let t) = value { return isParameter && t.requiresGrad }
        return false
    }
}
