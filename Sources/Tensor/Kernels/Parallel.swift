import Dispatch
import Foundation

/// Splits index ranges across the cores for the elementwise and row-wise kernels.
///
/// GEMM threads belong to OpenBLAS; our own kernels run between GEMMs, never concurrently with
/// them, so using every core here does not oversubscribe.
public enum Parallel {
    /// Number of worker threads for our kernels (defaults to the active processor count).
    nonisolated(unsafe) public static var threads = ProcessInfo.processInfo.activeProcessorCount

    /// Calls `body` on disjoint subranges covering `0..<count`. Work below `grain` items per
    /// thread runs inline: dispatch costs microseconds.
    @inline(__always)
    public static func forRanges(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, count / max(grain, 1))
        if parts <= 1 {
            body(0..<count)
            return
        }
        let chunk = (count + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = p * chunk
            let hi = min(count, lo + chunk)
            if lo < hi { body(lo..<hi) }
        }
    }
}
