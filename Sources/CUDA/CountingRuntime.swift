import Foundation
import Tensor

/// A `KernelRuntime` that counts what is asked of another one (`DeviceActivity`): every CUDA
/// device's runtime goes through it, so `bench` can report per step what a step asks of the
/// GPU, on a GPU and on the host emulation alike. Counting is a locked increment per call.
public final class CountingRuntime: KernelRuntime, @unchecked Sendable {
    public let inner: KernelRuntime
    private var counts = DeviceActivity()
    private let lock = NSLock()

    public init(_ inner: KernelRuntime) { self.inner = inner }

    public var activity: DeviceActivity {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    private func count(_ field: WritableKeyPath<DeviceActivity, Int>) {
        lock.lock()
        counts[keyPath: field] += 1
        lock.unlock()
    }

    public var name: String { inner.name }
    public var maxBlocks: Int { inner.maxBlocks }
    public var threadsPerBlock: Int { inner.threadsPerBlock }
    public var reductionThreadsPerBlock: Int { inner.reductionThreadsPerBlock }

    /// The inner runtime's memory, each block taken from or returned to the driver counted.
    public var memory: RawMemory {
        let raw = inner.memory
        return RawMemory(name: raw.name, allocate: { [unowned self] count in
            self.count(\.driverAllocations)
            return raw.allocate(count)
        }, deallocate: { [unowned self] block, count in
            self.count(\.driverFrees)
            raw.deallocate(block, count)
        })
    }

    public func copy(fromHost source: UnsafeRawPointer, to address: UnsafeMutableRawPointer, bytes: Int) {
        count(\.hostToDevice)
        inner.copy(fromHost: source, to: address, bytes: bytes)
    }

    public func copy(from address: UnsafeRawPointer, toHost destination: UnsafeMutableRawPointer, bytes: Int) {
        count(\.deviceToHost)
        inner.copy(from: address, toHost: destination, bytes: bytes)
    }

    public func copy(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, bytes: Int) {
        count(\.launches)
        inner.copy(from: source, to: destination, bytes: bytes)
    }

    public func fill(_ address: UnsafeMutableRawPointer, word: UInt32, count n: Int) {
        count(\.launches)
        inner.fill(address, word: word, count: n)
    }

    public func launch(_ kernel: String, grid: Int, block: Int, sharedBytes: Int, _ arguments: [KernelArgument]) {
        count(\.launches)
        inner.launch(kernel, grid: grid, block: block, sharedBytes: sharedBytes, arguments)
    }

    public func sgemm(_ g: ColumnMajorGEMM) {
        count(\.gemms)
        inner.sgemm(g)
    }

    public func synchronize() { inner.synchronize() }
}
