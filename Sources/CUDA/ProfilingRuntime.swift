import Foundation
import Tensor

/// A `KernelRuntime` that times every launch, GEMM and copy of another one, waiting for the
/// device before and after each (so the figures include launch latency and the run is slower):
/// which kernels a GPU step spends its time in, from one run. `NEST_TRAIN_GPU_PROFILE=1` wraps
/// the CUDA device's runtime in it; `report()` lists the kernels by total time.
public final class ProfilingRuntime: KernelRuntime, @unchecked Sendable {
    public let inner: KernelRuntime
    private var totals: [String: (seconds: Double, calls: Int)] = [:]
    private let lock = NSLock()

    public init(_ inner: KernelRuntime) { self.inner = inner }

    public var name: String { inner.name + ", profiled" }
    public var memory: RawMemory { inner.memory }
    public var maxBlocks: Int { inner.maxBlocks }
    public var threadsPerBlock: Int { inner.threadsPerBlock }
    public var reductionThreadsPerBlock: Int { inner.reductionThreadsPerBlock }

    private func timed(_ what: String, _ body: () -> Void) {
        inner.synchronize()
        let start = MonotonicClock.seconds
        body()
        inner.synchronize()
        let seconds = MonotonicClock.seconds - start
        lock.lock()
        let t = totals[what] ?? (0, 0)
        totals[what] = (t.seconds + seconds, t.calls + 1)
        lock.unlock()
    }

    public func copy(fromHost source: UnsafeRawPointer, to address: UnsafeMutableRawPointer, bytes: Int) {
        timed("copy host→device") { inner.copy(fromHost: source, to: address, bytes: bytes) }
    }

    public func copy(from address: UnsafeRawPointer, toHost destination: UnsafeMutableRawPointer, bytes: Int) {
        timed("copy device→host") { inner.copy(from: address, toHost: destination, bytes: bytes) }
    }

    public func copy(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, bytes: Int) {
        timed("copy device→device") { inner.copy(from: source, to: destination, bytes: bytes) }
    }

    public func fill(_ address: UnsafeMutableRawPointer, word: UInt32, count: Int) { timed("fill") { inner.fill(address, word: word, count: count) } }

    public func launch(_ kernel: String, grid: Int, block: Int, sharedBytes: Int, _ arguments: [KernelArgument]) {
        timed(kernel) { inner.launch(kernel, grid: grid, block: block, sharedBytes: sharedBytes, arguments) }
    }

    public func sgemm(_ g: ColumnMajorGEMM) { timed("cublasSgemmStridedBatched") { inner.sgemm(g) } }
    public func synchronize() { inner.synchronize() }

    /// Seconds and calls per kernel (and copy), the most time first.
    public var profile: [(name: String, seconds: Double, calls: Int)] {
        lock.lock()
        defer { lock.unlock() }
        return totals.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.seconds > $1.seconds }
    }

    /// The profile as lines: share of the total, seconds, calls and name.
    public func report(top: Int = 25) -> [String] {
        let rows = profile, total = max(rows.reduce(0) { $0 + $1.seconds }, 1e-12)
        return rows.prefix(top).map { String(format: "%5.1f %%  %9.4f s  %7d  %@", 100 * $0.seconds / total, $0.seconds, $0.calls, $0.name) }
    }
}
