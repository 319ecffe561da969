@_spi(Backend) import Tensor

/// The CUDA backend's products: GEMMs through cuBLAS (row-major problems handed over as their
/// column-major transposes), attention and convolutions as the kernels of `attention.cu` and
/// `convolution.cu`.
extension CUDABackend {
    public func gemm(_ p: GEMMProblem, a: Tensor, b: Tensor, c: Tensor) {
        rowMajorGEMM(p, a: UnsafeRawPointer(a.kernelAddress), b: UnsafeRawPointer(b.kernelAddress), c: UnsafeMutableRawPointer(c.kernelAddress))
    }

    /// Row-major C = alpha·op(A)·op(B) + beta·C is column-major Cᵀ = alpha·op(B)ᵀ·op(A)ᵀ + beta·Cᵀ
    /// on the same memory: cuBLAS gets B as its A and A as its B, with m and n swapped.
    func rowMajorGEMM(_ p: GEMMProblem, a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutableRawPointer) {
        guard p.m > 0, p.n > 0, p.batches > 0 else { return }
        GEMM.count(flops: 2 * p.m * p.n * p.k * p.batches)
        let cAddress = c + 4 * p.offsetC
        if p.k == 0 {
            // C = beta·C, which cuBLAS would not do for k = 0 on every version.
            for i in 0..<p.batches {
                for row in 0..<p.m {
                    let start = (cAddress + 4 * (i * p.strideC + row * p.ldc)).assumingMemoryBound(to: Float.self)
                    if p.beta == 0 { runtime.fill(start, word: 0, count: p.n) } else {
                        launch("scale", count: p.n, [.memory(UnsafeRawPointer(start)), .memory(UnsafeRawPointer(start)), .int64(p.n), .float(p.beta)])
                    }
                }
            }
            return
        }
        runtime.sgemm(ColumnMajorGEMM(transposeA: p.transposeB, transposeB: p.transposeA, m: p.n, n: p.m, k: p.k, alpha: p.alpha, beta: p.beta,
                                      a: b + 4 * p.offsetB, lda: p.ldb, strideA: p.strideB,
                                      b: a + 4 * p.offsetA, ldb: p.lda, strideB: p.strideA,
                                      c: cAddress, ldc: p.ldc, strideC: p.strideC, batches: p.batches))
    }

    /// The sizes the attention kernels take: B, T, H, dk.
    private static func heads(_ q: Tensor) -> [KernelArgument] { q.shape.prefix(4).map { .int32(Int32($0)) } }

    /// Multiply-adds of the attention kernels, counted as FLOPs (2 per multiply-add) the way
    /// the CPU's GEMMs count them: a score is two dot products of d_k.
    private static func countAttention(outputs: Int, dk: Int, products: Int) { GEMM.count(flops: 2 * outputs * dk * products) }

    /// Where a head layout puts head (b, h) of [B, T, H, dk] (see attention.cu): entry-major
    /// [B, H, T, dk], as the scores are laid out, or head-major [H, B, T, dk], where a head's
    /// rows of every utterance are one matrix (for the products with the shared positions).
    enum HeadLayout: Int32 { case entryMajor = 0, headMajor = 1 }

    /// x [B, T, H, dk] (+ bias [H, dk]) copied into `layout` at `out`.
    private func toHeads(_ x: Tensor, bias: Tensor? = nil, _ layout: HeadLayout, into out: UnsafeMutableRawPointer) {
        launch("to_heads", count: x.count, [Self.arg(x), Self.arg(bias), .memory(UnsafeRawPointer(out))] + Self.heads(x) + [.int32(layout.rawValue)])
    }

    /// y [B, T, H, dk] = (or, with `accumulate`, +=) the heads at `x` in `layout`.
    private func fromHeads(_ x: UnsafeRawPointer, _ layout: HeadLayout, into y: Tensor, accumulate: Bool) {
        launch("from_heads", count: y.count, [.memory(x), Self.arg(y)] + Self.heads(y) + [.int32(layout.rawValue), .int32(accumulate ? 1 : 0)])
    }

    /// One strided-batched product over `batches` blocks of `m × k` by `k × n` (`transposeA`,
    /// `transposeB` as stored), each operand block `stride` floats after the last.
    private static func batched(_ batches: Int, _ p: GEMMProblem, strides: (a: Int, b: Int, c: Int)) -> GEMMProblem {
        var q = p
        (q.batches, q.strideA, q.strideB, q.strideC) = (batches, strides.a, strides.b, strides.c)
        return q
    }

    /// Transformer-XL's scores as the CPU computes them: AC = (q + u)·kᵀ for every head of every
    /// utterance in one product, BD = (q + v)·pᵀ per head over all utterances' rows in another,
    /// then s = (AC + shift(BD))·scale.
    public func relPositionScoresForward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, into s: Tensor) {
        let (b, t, h, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]), np = 2 * t - 1
        withScratch(3 * q.count + b * h * t * np) { scratch in
            let qu = scratch, kh = scratch + 4 * q.count, qv = scratch + 8 * q.count, bd = scratch + 12 * q.count
            toHeads(q, bias: biasU, .entryMajor, into: qu)
            toHeads(k, .entryMajor, into: kh)
            toHeads(q, bias: biasV, .headMajor, into: qv)
            rowMajorGEMM(Self.batched(b * h, GEMMProblem(transposeB: true, m: t, n: t, k: dk, lda: dk, ldb: dk, ldc: t), strides: (t * dk, t * dk, t * t)),
                         a: qu, b: kh, c: UnsafeMutableRawPointer(s.kernelAddress))
            rowMajorGEMM(Self.batched(h, GEMMProblem(transposeB: true, m: b * t, n: np, k: dk, lda: dk, ldb: h * dk, ldc: np), strides: (b * t * dk, dk, b * t * np)),
                         a: qv, b: UnsafeRawPointer(p.kernelAddress), c: bd)
            launch("rel_shift_add", count: s.count, [Self.arg(s), .memory(UnsafeRawPointer(bd)), .int32(Int32(b)), .int32(Int32(h)), .int32(Int32(t)), .float(scale)])
        }
    }

    /// dq = scale·(g·k + shift(g)·p) and dk = scale·gᵀ·(q + u) (written); dp += scale·shift(g)ᵀ·(q + v),
    /// du and dv += the row sums of the two halves of dq (accumulated), as the CPU computes them,
    /// each product one call over every head.
    public func relPositionScoresBackward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, _ g: Tensor,
                                          dq: Tensor, dk: Tensor, dp: Tensor, du: Tensor, dv: Tensor) {
        let (b, t, h, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]), np = 2 * t - 1, ld = h * d
        withScratch(5 * q.count + b * h * t * np) { scratch in
            let qu = scratch, qv = scratch + 4 * q.count, kh = scratch + 8 * q.count, heads = scratch + 12 * q.count
            let via = scratch + 16 * q.count, gs = scratch + 20 * q.count
            toHeads(q, bias: biasU, .entryMajor, into: qu)
            toHeads(q, bias: biasV, .headMajor, into: qv)
            toHeads(k, .entryMajor, into: kh)
            let gp = UnsafeRawPointer(g.kernelAddress), perHead = (t * t, t * d, t * d)
            // Content: dq = scale·g·k, du += Σ dq; dk = scale·gᵀ·(q + u).
            rowMajorGEMM(Self.batched(b * h, GEMMProblem(m: t, n: d, k: t, alpha: scale, lda: t, ldb: d, ldc: d), strides: perHead), a: gp, b: kh, c: heads)
            fromHeads(heads, .entryMajor, into: dq, accumulate: false)
            columnSums(.value, rows: b * t, cols: ld, of: UnsafeRawPointer(dq.kernelAddress), into: UnsafeMutableRawPointer(du.kernelAddress), accumulate: true)
            rowMajorGEMM(Self.batched(b * h, GEMMProblem(transposeA: true, m: t, n: d, k: t, alpha: scale, lda: t, ldb: d, ldc: d), strides: perHead),
                         a: gp, b: qu, c: heads)
            fromHeads(heads, .entryMajor, into: dk, accumulate: false)
            // Position, through the shift's transpose (head-major): via = scale·shift(g)·p, dp += scale·shift(g)ᵀ·(q + v).
            launch("rel_shift_grad", count: b * h * t * np, [Self.arg(g), .memory(UnsafeRawPointer(gs)), .int32(Int32(b)), .int32(Int32(h)), .int32(Int32(t))])
            rowMajorGEMM(Self.batched(h, GEMMProblem(m: b * t, n: d, k: np, alpha: scale, lda: np, ldb: ld, ldc: d), strides: (b * t * np, d, b * t * d)),
                         a: gs, b: UnsafeRawPointer(p.kernelAddress), c: via)
            rowMajorGEMM(Self.batched(h, GEMMProblem(transposeA: true, m: np, n: d, k: b * t, alpha: scale, beta: 1, lda: np, ldb: d, ldc: ld),
                                      strides: (b * t * np, b * t * d, d)),
                         a: gs, b: qv, c: UnsafeMutableRawPointer(dp.kernelAddress))
            launch("add_head_sums", count: ld, [.memory(UnsafeRawPointer(via)), Self.arg(dv)] + Self.heads(q) + [.int32(HeadLayout.headMajor.rawValue)])
            fromHeads(via, .headMajor, into: dq, accumulate: true)
        }
    }

    /// out = a·v for every head of every utterance in one product: a [B, H, T, T] times v's
    /// heads, through v's and out's entry-major copies.
    public func attentionContextForward(_ a: Tensor, _ v: Tensor, into out: Tensor) {
        let (b, h, t) = (a.shape[0], a.shape[1], a.shape[2]), dk = v.shape[3]
        withScratch(2 * v.count) { scratch in
            let vh = scratch, heads = scratch + 4 * v.count
            toHeads(v, .entryMajor, into: vh)
            rowMajorGEMM(Self.batched(b * h, GEMMProblem(m: t, n: dk, k: t, lda: t, ldb: dk, ldc: dk), strides: (t * t, t * dk, t * dk)),
                         a: UnsafeRawPointer(a.kernelAddress), b: vh, c: heads)
            fromHeads(heads, .entryMajor, into: out, accumulate: false)
        }
    }

    public func attentionContextBackward(_ aForV: Tensor?, _ vForA: Tensor?, _ g: Tensor, da: Tensor?, dv: Tensor?) {
        let (b, t, h, dk) = (g.shape[0], g.shape[1], g.shape[2], g.shape[3])
        withScratch(3 * g.count) { scratch in
            let gh = scratch, vh = scratch + 4 * g.count, heads = scratch + 8 * g.count
            toHeads(g, .entryMajor, into: gh)
            if let da, let vForA {
                toHeads(vForA, .entryMajor, into: vh)
                rowMajorGEMM(Self.batched(b * h, GEMMProblem(transposeB: true, m: t, n: t, k: dk, lda: dk, ldb: dk, ldc: t), strides: (t * dk, t * dk, t * t)),
                             a: gh, b: vh, c: UnsafeMutableRawPointer(da.kernelAddress))
            }
            if let dv, let aForV {
                rowMajorGEMM(Self.batched(b * h, GEMMProblem(transposeA: true, m: t, n: dk, k: t, lda: t, ldb: dk, ldc: dk), strides: (t * t, t * dk, t * dk)),
                             a: UnsafeRawPointer(aForV.kernelAddress), b: gh, c: heads)
                fromHeads(heads, .entryMajor, into: dv, accumulate: false)
            }
        }
    }

    public func bandedScoresForward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, left: Int, into s: Tensor) {
        Self.countAttention(outputs: s.count, dk: q.shape[3], products: 2)
        launch("banded_scores_forward", count: s.count, [Self.arg(q), Self.arg(k), Self.arg(p), Self.arg(biasU), Self.arg(biasV), Self.arg(s)]
               + Self.heads(q) + [.int32(Int32(s.shape[3])), .int32(Int32(left)), .float(scale)])
    }

    public func bandedScoresBackward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, left: Int, _ g: Tensor,
                                     dq: Tensor, dk: Tensor, dp: Tensor, du: Tensor, dv: Tensor) {
        let w = g.shape[3], ld = q.shape[2] * q.shape[3]
        let sizes = Self.heads(q) + [.int32(Int32(w)), .int32(Int32(left)), .float(scale)]
        Self.countAttention(outputs: g.count, dk: q.shape[3], products: 6)
        // dq's content and position halves, each summed over (b, i) into du and dv, then added to dq.
        for (position, bias) in [(Int32(0), du), (Int32(1), dv)] {
            withScratch(q.count) { half in
                launch("banded_scores_backward_q", count: q.count, [Self.arg(k), Self.arg(p), Self.arg(g), .memory(UnsafeRawPointer(half))] + sizes + [.int32(position)])
                columnSums(.value, rows: q.count / ld, cols: ld, of: UnsafeRawPointer(half), into: UnsafeMutableRawPointer(bias.kernelAddress), accumulate: true)
                launch("binary", count: q.count, [Self.arg(dq), .memory(UnsafeRawPointer(half)), Self.arg(dq), .int64(q.count), .int32(0), .memory(nil), .int32(0), .float(0)])
            }
        }
        launch("banded_scores_backward_k", count: k.count, [Self.arg(q), Self.arg(biasU), Self.arg(g), Self.arg(dk)] + sizes)
        launch("banded_scores_backward_p", count: w * ld, [Self.arg(q), Self.arg(biasV), Self.arg(g), Self.arg(dp)] + sizes)
    }

    public func bandedContextForward(_ a: Tensor, _ v: Tensor, left: Int, into out: Tensor) {
        Self.countAttention(outputs: a.count, dk: v.shape[3], products: 1)
        launch("banded_context_forward", count: out.count,
               [Self.arg(a), Self.arg(v), Self.arg(out)] + Self.heads(v) + [.int32(Int32(a.shape[3])), .int32(Int32(left))])
    }

    public func bandedContextBackward(_ aForV: Tensor?, _ vForA: Tensor?, left: Int, _ g: Tensor, da: Tensor?, dv: Tensor?) {
        let w = (da ?? aForV)!.shape[3]
        let sizes = Self.heads(g) + [.int32(Int32(w)), .int32(Int32(left))]
        Self.countAttention(outputs: (da ?? aForV)!.count, dk: g.shape[3], products: (da != nil ? 1 : 0) + (dv != nil ? 1 : 0))
        if let da, let vForA { launch("banded_context_backward_a", count: da.count, [Self.arg(vForA), Self.arg(g), Self.arg(da)] + sizes) }
        if let dv, let aForV { launch("banded_context_backward_v", count: dv.count, [Self.arg(aForV), Self.arg(g), Self.arg(dv)] + sizes) }
    }

    /// [B, Cin, H, W, Cout, Cg, KH, KW, Ho, Wo, strideH, strideW, padH, padW, groups].
    private static func geometry(_ x: [Int], _ w: [Int], _ geo: Conv2dGeometry) -> [Int] {
        let ho = (x[2] + 2 * geo.padding.0 - w[2]) / geo.stride.0 + 1, wo = (x[3] + 2 * geo.padding.1 - w[3]) / geo.stride.1 + 1
        return x + w + [ho, wo, geo.stride.0, geo.stride.1, geo.padding.0, geo.padding.1, geo.groups]
    }

    /// A convolution's multiply-adds: each output reads C_g·KH·KW inputs.
    private static func countConvolution(outputs: Int, weight: [Int], passes: Int) { GEMM.count(flops: 2 * outputs * weight[1] * weight[2] * weight[3] * passes) }

    /// A 1×1 convolution of stride 1 without padding or groups (the subsampling's pointwise
    /// step) is one product per image: y[b] = W·x[b] over the H·W pixels, through cuBLAS.
    private static func isPointwise(_ w: [Int], _ geo: Conv2dGeometry) -> Bool {
        w[2] == 1 && w[3] == 1 && geo.stride == (1, 1) && geo.padding == (0, 0) && geo.groups == 1
    }

    public func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, _ geo: Conv2dGeometry, into y: Tensor) {
        if Self.isPointwise(weight.shape, geo) {
            let (b, cin, hw, cout) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3], weight.shape[0])
            if let bias { words([b, cout, hw] + [0, 1, 0]) { launch("strided_copy", count: y.count, [Self.arg(bias), Self.arg(y), .int64(y.count), .int32(3), $0]) } }
            var p = GEMMProblem(m: cout, n: hw, k: cin, beta: bias == nil ? 0 : 1, lda: cin, ldb: hw, ldc: hw)
            (p.batches, p.strideA, p.strideB, p.strideC) = (b, 0, cin * hw, cout * hw)
            return gemm(p, a: weight, b: x, c: y)
        }
        Self.countConvolution(outputs: y.count, weight: weight.shape, passes: 1)
        words(Self.geometry(x.shape, weight.shape, geo)) {
            launch("conv2d_forward", count: y.count, [Self.arg(x), Self.arg(weight), Self.arg(bias), Self.arg(y), $0])
        }
    }

    public func conv2dBackward(_ x: Tensor, weight: Tensor, _ geo: Conv2dGeometry, _ g: Tensor, dx: Tensor?, dw: Tensor?, db: Tensor?) {
        let pointwise = Self.isPointwise(weight.shape, geo)
        if pointwise {
            let (b, cin, hw, cout) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3], weight.shape[0])
            if let dx {
                var p = GEMMProblem(transposeA: true, m: cin, n: hw, k: cout, lda: cin, ldb: hw, ldc: hw)
                (p.batches, p.strideA, p.strideB, p.strideC) = (b, 0, cout * hw, cin * hw)
                gemm(p, a: weight, b: g, c: dx)
            }
            if let dw {
                // Each image's product in one call, then their sum over the batch (in order).
                withScratch(b * dw.count) { perImage in
                    rowMajorGEMM(Self.batched(b, GEMMProblem(transposeB: true, m: cout, n: cin, k: hw, lda: hw, ldb: hw, ldc: cin),
                                              strides: (cout * hw, cin * hw, cout * cin)),
                                 a: UnsafeRawPointer(g.kernelAddress), b: UnsafeRawPointer(x.kernelAddress), c: perImage)
                    columnSums(.value, rows: b, cols: dw.count, of: UnsafeRawPointer(perImage), into: UnsafeMutableRawPointer(dw.kernelAddress), accumulate: false)
                }
            }
        } else {
            Self.countConvolution(outputs: g.count, weight: weight.shape, passes: (dx != nil ? 1 : 0) + (dw != nil ? 1 : 0))
        }
        // The weight and bias gradients sum over every output row (b, oh), in chunks.
        let rows = g.shape[0] * g.shape[2]
        words(Self.geometry(x.shape, weight.shape, geo)) { geometry in
            if !pointwise, let dx { launch("conv2d_backward_input", count: dx.count, [Self.arg(weight), Self.arg(g), Self.arg(dx), geometry]) }
            if !pointwise, let dw {
                chunkedSums(rows: rows, width: dw.count, into: UnsafeMutableRawPointer(dw.kernelAddress)) { p, chunk, chunks in
                    launch("conv2d_backward_weight_partial", count: chunks * dw.count, [Self.arg(x), Self.arg(g), p, geometry, .int64(chunk)])
                }
            }
            if let db {
                chunkedSums(rows: rows, width: db.count, into: UnsafeMutableRawPointer(db.kernelAddress)) { p, chunk, chunks in
                    launch("conv2d_backward_bias_partial", count: chunks * db.count, [Self.arg(g), p, geometry, .int64(chunk)])
                }
            }
        }
    }

    private static func depthwise(_ t: Int, _ g: [Int], _ k: Int, _ left: Int) -> [KernelArgument] {
        [.int32(Int32(g[0])), .int32(Int32(t)), .int32(Int32(g[1])), .int32(Int32(g[2])), .int32(Int32(k)), .int32(Int32(left))]
    }

    public func depthwiseConv1dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, left: Int, into y: Tensor) {
        launch("depthwise_conv1d_forward", count: y.count,
               [Self.arg(x), Self.arg(weight), Self.arg(bias), Self.arg(y)] + Self.depthwise(x.shape[1], y.shape, weight.shape[2], left))
    }

    public func depthwiseConv1dBackward(_ x: Tensor?, weight: Tensor, left: Int, _ g: Tensor, dx: Tensor?, dw: Tensor?) {
        let t = (dx ?? x)!.shape[1], sizes = Self.depthwise(t, g.shape, weight.shape[2], left)
        if let dx { launch("depthwise_conv1d_backward_input", count: dx.count, [Self.arg(weight), Self.arg(g), Self.arg(dx)] + sizes) }
        if let dw, let x {
            chunkedSums(rows: g.shape[0] * g.shape[1], width: dw.count, into: UnsafeMutableRawPointer(dw.kernelAddress)) { p, chunk, chunks in
                launch("depthwise_conv1d_backward_weight_partial", count: chunks * dw.count, [Self.arg(x), Self.arg(g), p] + sizes + [.int64(chunk)])
            }
        }
    }
}
