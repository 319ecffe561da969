import Foundation

/// A test-only backend that behaves like a device with memory of its own: the CPU's kernels
/// over a separate arena, whose memory host code reaches only through the explicit copies.
///
/// What it proves about the code above the backend seam, without a GPU:
/// - host views are staged copies (`isHostMemory` false), so a write through a read-only view,
///   or a view kept past its body, loses its values and fails a parity test;
/// - fresh memory is filled with NaN, as device memory holds garbage, so a kernel or op that
///   reads what it never wrote fails instead of reading the pool's zeros by luck;
/// - every op checks its operands' devices (`Device.common`), so a tensor created on the CPU
///   and handed to the model fails by name;
/// - the copies are counted (`hostTransfers`), so a test can bound the staging a step does.
public final class CheckingBackend: CPUBackend {
    private let lock = NSLock()
    private var transfers = 0

    init() { super.init(pool: BufferPool()) }

    public override var isHostMemory: Bool { false }

    public override func allocate(_ count: Int) -> (address: UnsafeMutablePointer<Float>, capacity: Int) {
        let block = super.allocate(count)
        block.address.update(repeating: .nan, count: block.capacity)
        return block
    }

    public override func copy(fromHost source: UnsafePointer<Float>, to storage: Storage, offset: Int, count: Int) {
        countTransfer()
        super.copy(fromHost: source, to: storage, offset: offset, count: count)
    }

    public override func copy(from storage: Storage, offset: Int, toHost destination: UnsafeMutablePointer<Float>, count: Int) {
        countTransfer()
        super.copy(from: storage, offset: offset, toHost: destination, count: count)
    }

    /// Copies between the host and this device so far.
    public var hostTransfers: Int { lock.lock(); defer { lock.unlock() }; return transfers }

    private func countTransfer() { lock.lock(); transfers += 1; lock.unlock() }
}
