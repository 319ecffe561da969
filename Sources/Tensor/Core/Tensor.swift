/// A Float32 tensor: a shape over contiguous row-major storage, plus what autodiff needs.
///
/// Tensors are reference types so that the graph can point at them; values are never shared
/// between two tensors except by `reshaped`, which is a view of the same storage.
public final class Tensor {
    public let shape: [Int]
    public let storage: Storage
    /// The tape's record of this tensor when gradients flow to it (parameters, and results of
    /// recorded ops on them); nil otherwise. Backward rules capture this, not the tensor.
    public internal(set) var tapeEntry: TapeEntry?

    /// Whether gradients flow to this tensor. Setting it on a leaf starts (or drops) its entry.
    public var requiresGrad: Bool {
        get { tapeEntry != nil }
        set {
            if newValue, tapeEntry == nil { tapeEntry = TapeEntry(shape: shape) }
            if !newValue { tapeEntry = nil }
        }
    }

    /// Accumulated gradient after `backward()`, same shape as the tensor.
    public var grad: Tensor? {
        get { tapeEntry?.grad }
        set {
            precondition(newValue == nil || tapeEntry != nil, "a gradient for a tensor that does not require one")
            precondition(newValue.map { $0.shape == shape } ?? true, "gradient of shape \(newValue!.shape) for \(shape)")
            tapeEntry?.grad = newValue
        }
    }

    public var count: Int { Shape.count(shape) }
    public var rank: Int { shape.count }
    /// The values in memory, for the engine's own kernels only; code above the engine uses the
    /// explicit host views (`withHostValues`, `withMutableHostValues`) or copies (`array`).
    var data: UnsafeMutablePointer<Float> { storage.pointer }

    /// Uninitialised storage of the given shape (for kernels that write every element).
    public init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = Storage(capacity: Shape.count(shape))
    }

    /// A tensor over existing storage (a reshape's, or a slice of a larger buffer).
    public init(shape: [Int], storage: Storage) {
        self.shape = shape
        self.storage = storage
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(repeating: 0, shape: shape)
        self.requiresGrad = requiresGrad
    }

    public convenience init(repeating value: Float, shape: [Int]) {
        self.init(uninitializedShape: shape)
        data.update(repeating: value, count: count)
    }

    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(values.count == Shape.count(shape), "\(values.count) values for shape \(shape)")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
        self.requiresGrad = requiresGrad
    }

    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    public var scalar: Float {
        precondition(count == 1, "scalar of a tensor of shape \(shape)")
        return data[0]
    }

    /// A copy that shares nothing and records nothing.
    public func copy() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        Vector.copy(data, into: t.data, count: count)
        return t
    }

    /// Overwrites the values in place (same element count); used to load weights.
    public func assign(_ values: UnsafeBufferPointer<Float>) {
        precondition(values.count == count, "assigning \(values.count) values to shape \(shape)")
        data.update(from: values.baseAddress!, count: count)
    }

    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assigning shape \(other.shape) to \(shape)")
        data.update(from: other.data, count: count)
    }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// The same values without autodiff history.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = array.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 8 ? ", …" : "")]"
    }
}
