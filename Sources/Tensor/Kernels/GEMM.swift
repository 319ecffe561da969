import CCPUID
import COpenBLAS
import Foundation

/// Row-major single-precision GEMM: C = alpha·op(A)·op(B) + beta·C, with op(X) = X or Xᵀ.
///
/// A is M×K after op, B is K×N after op, C is M×N. Leading dimensions are those of the stored
/// (untransposed) matrices.
///
/// Threading: OpenBLAS runs single-threaded and large products are split by rows (or, when
/// there are fewer rows than columns, by columns) of C across
/// `Parallel.threads` workers. OpenBLAS's own worker threads spin and `sched_yield` between
/// calls (measured: ~17 % of a training step in the scheduler), taking the core from our
/// elementwise kernels; one pool for everything avoids that.
public enum GEMM {
    /// Multiply-adds below which a product runs on one thread.
    static let parallelThreshold = 1 << 21

    private static let singleThreadedBLAS: Void = { openblas_set_num_threads(1) }()

    /// Floating-point operations (2·m·n·k) of every product since the last reset: the
    /// benchmark's FLOPs per step, counted rather than estimated. One atomic add per product
    /// (products run on any thread), no lock on the hot path.
    public static var flops: Int { nest_atomic_load(flopCount) }
    public static func resetFlops() { nest_atomic_store(flopCount, 0) }
    /// Adds the products another backend computed (a GPU's GEMMs, and its attention and
    /// convolution kernels counted as the products they are), so that the benchmark's FLOPs per
    /// step mean the same on every device.
    public static func count(flops: Int) { _ = nest_atomic_add(flopCount, flops) }
    private static let flopCount: UnsafeMutablePointer<Int> = {
        let p = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    @inline(__always)
    public static func run(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                           alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                           b: UnsafePointer<Float>, ldb: Int,
                           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = Parallel.threads) {
        _ = singleThreadedBLAS
        if m == 0 || n == 0 { return }
        _ = nest_atomic_add(flopCount, 2 * m * n * k)
        if k == 0 {
            if beta == 0 { for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) } }
            return
        }
        let parts = m * n * k >= parallelThreshold ? threads : 1
        if parts <= 1 {
            single(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if m >= n {
            // Split rows of C: rows i of op(A) start at a + i·lda (stored rows) or a + i (columns).
            Parallel.forRanges(m, grain: (m + parts - 1) / parts, threads: threads) { rows in
                let aRows = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
                single(transposeA, transposeB, rows.count, n, k, alpha, aRows, lda, b, ldb, beta, c + rows.lowerBound * ldc, ldc)
            }
        } else {
            // Few rows (batch-1 inference, short utterances): split columns of C instead, so each
            // part keeps every row and OpenBLAS's blocking stays efficient. Columns j of op(B)
            // start at b + j (stored columns) or b + j·ldb (stored rows).
            Parallel.forRanges(n, grain: (n + parts - 1) / parts, threads: threads) { cols in
                let bCols = transposeB ? b + cols.lowerBound * ldb : b + cols.lowerBound
                single(transposeA, transposeB, m, cols.count, k, alpha, a, lda, bCols, ldb, beta, c + cols.lowerBound, ldc)
            }
        }
    }

    @inline(__always)
    static func single(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                       _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// GFLOP/s of `run` on `threads` threads (split as every product of a step is) for the
    /// FastConformer-L feed-forward shape (4096×512 · 512×2048), median of 15 calls after one
    /// warm-up (a median of five once read half the usual rate on this project's noisy VM): the reference
    /// for a training step's efficiency, measured in the same process as the step.
    public static func rate(threads: Int) -> Double {
        let (m, n, k) = (4096, 2048, 512)
        let a = Tensor(repeating: 0.5, shape: [m, k]), b = Tensor(repeating: 0.25, shape: [k, n])
        let c = Tensor(uninitializedShape: [m, n])
        var times: [Double] = []
        for _ in 0..<16 {
            let t = MonotonicClock.seconds
            run(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a.address, lda: k, b: b.address, ldb: n, c: c.address, ldc: n,
                threads: threads)
            times.append(MonotonicClock.seconds - t)
        }
        let median = times.dropFirst().sorted()[7]
        return 2 * Double(m * n * k) / median / 1e9
    }
}

extension CPUBackend {
    public func gemm(_ p: GEMMProblem, a: Tensor, b: Tensor, c: Tensor) {
        let (pa, pb, pc) = (a.address + p.offsetA, b.address + p.offsetB, c.address + p.offsetC)
        guard p.batches > 1 else {
            GEMM.run(transposeA: p.transposeA, transposeB: p.transposeB, m: p.m, n: p.n, k: p.k, alpha: p.alpha,
                     a: pa, lda: p.lda, b: pb, ldb: p.ldb, beta: p.beta, c: pc, ldc: p.ldc)
            return
        }
        // Small products (attention heads) in parallel over the batch; a large one is split
        // inside GEMM.run instead.
        let grain = max(1, GEMM.parallelThreshold / max(p.m * p.n * p.k, 1))
        Parallel.forRanges(p.batches, grain: grain) { range in
            for i in range {
                GEMM.run(transposeA: p.transposeA, transposeB: p.transposeB, m: p.m, n: p.n, k: p.k, alpha: p.alpha,
                         a: pa + i * p.strideA, lda: p.lda, b: pb + i * p.strideB, ldb: p.ldb, beta: p.beta, c: pc + i * p.strideC, ldc: p.ldc)
            }
        }
    }
}
