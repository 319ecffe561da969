/// Iteration over an output shape while reading two operands through broadcast strides.
///
/// Adjacent dimensions that are contiguous in all three views are merged first, so the common
/// cases (same shape; a bias row repeated over rows; a per-row scalar) become one or two loops
/// with a long innermost run.
struct BroadcastLoop {
    var shape: [Int]
    var stridesA: [Int]
    var stridesB: [Int]

    init(shape: [Int], stridesA: [Int], stridesB: [Int]) {
        var s: [Int] = [], sa: [Int] = [], sb: [Int] = []
        for i in 0..<shape.count where shape[i] != 1 {
            if let last = s.indices.last,
               sa[last] == stridesA[i] * shape[i], sb[last] == stridesB[i] * shape[i] {
                s[last] *= shape[i]
                sa[last] = stridesA[i]
                sb[last] = stridesB[i]
            } else {
                s.append(shape[i]); sa.append(stridesA[i]); sb.append(stridesB[i])
            }
        }
        if s.isEmpty { s = [1]; sa = [0]; sb = [0] }
        self.shape = s
        self.stridesA = sa
        self.stridesB = sb
    }

    /// Calls `inner(offsetA, offsetB, offsetOut, n, strideA, strideB)` once per innermost run.
    /// `inParallel` spreads the runs over the cores; only for callers whose runs write
    /// disjoint memory (every run owns its output slice).
    func forEachRun(inParallel: Bool = false, _ inner: (Int, Int, Int, Int, Int, Int) -> Void) {
        if shape.contains(0) { return }   // nothing to visit (an empty batch's rows)
        let rank = shape.count
        let n = shape[rank - 1]
        let isa = stridesA[rank - 1], isb = stridesB[rank - 1]
        let outer = shape.dropLast().reduce(1, *)
        func runs(_ range: Range<Int>) {
            // Outer index of the first run, then an odometer increment per run.
            var index = [Int](repeating: 0, count: max(rank - 1, 0))
            var offA = 0, offB = 0, rest = range.lowerBound
            for d in stride(from: rank - 2, through: 0, by: -1) {
                index[d] = rest % shape[d]
                rest /= shape[d]
                offA += index[d] * stridesA[d]
                offB += index[d] * stridesB[d]
            }
            for run in range {
                inner(offA, offB, run * n, n, isa, isb)
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    offA += stridesA[d]
                    offB += stridesB[d]
                    if index[d] < shape[d] { break }
                    offA -= stridesA[d] * shape[d]
                    offB -= stridesB[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        if inParallel {
            Parallel.forRanges(outer, grain: max(1, 32_768 / max(n, 1)), runs)
        } else {
            runs(0..<outer)
        }
    }
}
