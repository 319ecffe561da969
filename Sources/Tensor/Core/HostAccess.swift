/// Explicit host access: the only way code above the engine reads or writes a tensor's values
/// in place. On the CPU the view is the memory itself; on a device whose memory the host may
/// not touch (`Backend.isHostMemory` false) it is a staged copy, written back after a mutable
/// view's body returns. A view's buffer is valid only inside its body.
extension Tensor {
    public func withHostValues<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if backend.isHostMemory { return try body(UnsafeBufferPointer(start: address, count: count)) }
        return try array.withUnsafeBufferPointer(body)
    }

    public func withMutableHostValues<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if backend.isHostMemory { return try body(UnsafeMutableBufferPointer(start: address, count: count)) }
        var staged = array
        let result = try staged.withUnsafeMutableBufferPointer { try body($0) }
        assign(staged)
        return result
    }
}

/// A tensor's values on the host for work that outlives one call, such as a non-blocking sum
/// across processes: the memory itself on a host-memory device, else a staged copy that
/// `finish()` writes back. Host staging is how collectives reach device memory until a
/// device-aware transport (NCCL) takes device buffers directly.
public final class HostStage {
    private let tensor: Tensor
    /// Whether `values` is a copy of its own (device memory), not the memory itself.
    private let isStaged: Bool
    public let values: UnsafeMutableBufferPointer<Float>

    public init(_ tensor: Tensor) {
        self.tensor = tensor
        if tensor.backend.isHostMemory {
            isStaged = false
            values = UnsafeMutableBufferPointer(start: tensor.address, count: tensor.count)
        } else {
            let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: tensor.count)
            _ = copy.initialize(from: tensor.array)
            isStaged = true
            values = copy
        }
    }

    /// Writes a staged copy back to the device; nothing to do for host memory.
    public func finish() {
        guard isStaged else { return }
        tensor.assign(UnsafeBufferPointer(values))
    }

    deinit { if isStaged { values.deallocate() } }
}
