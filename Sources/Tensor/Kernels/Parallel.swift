import CCPUID
import Dispatch
import Foundation

/// Splits index ranges across the cores: for the elementwise and row-wise kernels, and for GEMM,
/// which runs OpenBLAS single-threaded on each part (GEMM.swift says why). One pool for
/// everything (`WorkerPool`, libdispatch when it is busy), and nothing runs beside it, so using
/// every core does not oversubscribe.
public enum Parallel {
    /// Number of worker threads for our kernels: the cores this process may run on, unless
    /// `configure(threads:)` said otherwise at start-up.
    nonisolated(unsafe) public private(set) static var threads = usableCores

    /// Sets the kernels' thread count (`--threads`), once, before the first kernel runs: the
    /// count is read without a lock on every kernel call.
    public static func configure(threads count: Int) {
        precondition(pools.isEmpty, "the thread count is set before any kernel runs")
        threads = max(1, count)
    }

    /// The CPUs in this process's affinity mask (what `taskset`, cgroups' cpusets, Slurm and
    /// `mpirun --bind-to` allow); `activeProcessorCount` counts the machine's, so a process bound
    /// to one core would run two threads on it.
    public static var usableCores: Int {
        let bound = Int(nest_affinity_cpus())
        return bound > 0 ? bound : ProcessInfo.processInfo.activeProcessorCount
    }

    /// Calls `body` on disjoint subranges covering `0..<count`. Work below `grain` items per
    /// thread runs inline: dispatch costs microseconds.
    @inline(__always)
    public static func forRanges(_ count: Int, grain: Int = 32_768, threads: Int = Parallel.threads, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, count / max(grain, 1))
        if parts <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + parts - 1) / parts
        let part = { (p: Int) in
            let lo = p * chunk
            let hi = min(count, lo + chunk)
            if lo < hi { body(lo..<hi) }
        }
        // The pool when this thread count is its size and it is free; libdispatch otherwise
        // (another thread's region, a region nested in a part, a changed thread count).
        if parts == threads, let pool = pool(for: threads), pool.run(parts: parts, part) { return }
        DispatchQueue.concurrentPerform(iterations: parts, execute: part)
    }

    nonisolated(unsafe) private static var pools: [Int: WorkerPool] = [:]
    private static let poolsLock = NSLock()

    private static func pool(for threads: Int) -> WorkerPool? {
        guard threads > 1 else { return nil }
        poolsLock.lock()
        defer { poolsLock.unlock() }
        if let p = pools[threads] { return p }
        let p = WorkerPool(workers: threads - 1)
        pools[threads] = p
        return p
    }
}

extension Parallel {
    /// Sums over rows, per column, in parallel: `body(rows, partial)` adds the contributions of
    /// a range of rows into its own zeroed `partial` of `width` values; the partials are then
    /// added in range order, so the result depends only on the thread count.
    public static func columnSums<T: BinaryFloatingPoint>(rows: Int, width: Int, grain: Int,
                                                          _ body: (Range<Int>, UnsafeMutablePointer<T>) -> Void) -> [T] {
        let parts = max(1, min(threads, rows / max(grain, 1)))
        let rowsPerPart = max(1, (rows + parts - 1) / parts)
        var partials = [T](repeating: 0, count: parts * width)
        partials.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            forRanges(rows, grain: rowsPerPart) { r in body(r, base + (r.lowerBound / rowsPerPart) * width) }
        }
        var total = [T](repeating: 0, count: width)
        for part in 0..<parts {
            for i in 0..<width { total[i] += partials[part * width + i] }
        }
        return total
    }
}
