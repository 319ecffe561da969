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
            if newValue, tapeEntry == nil { tapeEntry = TapeEntry(shape: shape, device: device) }
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
    public var device: Device { storage.device }
    /// The values' address in device memory, for the backend's kernels only (`Sources/Tensor/Kernels`);
    /// ops call kernels, and code above the engine uses the explicit host views and copies.
    var address: UnsafeMutablePointer<Float> { storage.address }
    /// The same address for a backend in another module (`@_spi(Backend) import Tensor`), such
    /// as the CUDA backend: a device address there, never dereferenced on the host.
    @_spi(Backend) public var kernelAddress: UnsafeMutablePointer<Float> { storage.address }
    /// The backend of `device`, for ops whose operands are this tensor alone.
    var backend: any Backend { storage.device.backend }

    /// Uninitialised storage of the given shape (for kernels that write every element).
    public init(uninitializedShape shape: [Int], on device: Device = .default) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = Storage(capacity: Shape.count(shape), on: device)
    }

    /// A tensor over existing storage (a reshape's, or a slice of a larger buffer).
    public init(shape: [Int], storage: Storage) {
        self.shape = shape
        self.storage = storage
    }

    public convenience init(zeros shape: [Int], on device: Device = .default, requiresGrad: Bool = false) {
        self.init(repeating: 0, shape: shape, on: device)
        self.requiresGrad = requiresGrad
    }

    public convenience init(repeating value: Float, shape: [Int], on device: Device = .default) {
        self.init(uninitializedShape: shape, on: device)
        backend.fill(self, with: value)
    }

    /// Host values copied to `device`.
    public convenience init(_ values: [Float], shape: [Int], on device: Device = .default, requiresGrad: Bool = false) {
        precondition(values.count == Shape.count(shape), "\(values.count) values for shape \(shape)")
        self.init(uninitializedShape: shape, on: device)
        assign(values)
        self.requiresGrad = requiresGrad
    }

    public convenience init(scalar: Float, on device: Device = .default) { self.init([scalar], shape: [], on: device) }

    /// The values copied to the host.
    public var array: [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, n in
            if count > 0 { backend.copy(from: storage, offset: 0, toHost: buffer.baseAddress!, count: count) }
            n = count
        }
    }

    public var scalar: Float {
        precondition(count == 1, "scalar of a tensor of shape \(shape)")
        return array[0]
    }

    /// A copy that shares nothing and records nothing, on the same device.
    public func copy() -> Tensor { to(device, always: true) }

    /// The same values on `device`: self when already there (unless `always`), else a copy
    /// staged through the host. Records nothing.
    public func to(_ device: Device, always: Bool = false) -> Tensor {
        if device === self.device {
            guard always else { return self }
            let t = Tensor(uninitializedShape: shape, on: device)
            backend.copy(self, offset: 0, into: t, offset: 0, count: count)
            return t
        }
        let t = Tensor(uninitializedShape: shape, on: device)
        withHostValues { t.assign($0) }
        return t
    }

    /// Overwrites the values in place from the host (same element count); used to load weights.
    public func assign(_ values: UnsafeBufferPointer<Float>) {
        precondition(values.count == count, "assigning \(values.count) values to shape \(shape)")
        if count > 0 { backend.copy(fromHost: values.baseAddress!, to: storage, offset: 0, count: count) }
    }

    public func assign(_ values: [Float]) { values.withUnsafeBufferPointer { assign($0) } }

    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assigning shape \(other.shape) to \(shape)")
        if other.device === device {
            backend.copy(other, offset: 0, into: self, offset: 0, count: count)
        } else {
            other.withHostValues { assign($0) }
        }
    }

    public func fill(_ value: Float) { backend.fill(self, with: value) }

    /// The same values without autodiff history.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = array.prefix(8).map { String(format: "%.5g", $0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 8 ? ", …" : "")]"
    }
}
