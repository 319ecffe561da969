/// 2-D convolution (NCHW, PyTorch weight layout [Cout, Cin/groups, kh, kw]) as im2col + GEMM.
///
/// One mechanism covers the three convolutions of the FastConformer subsampling: the 1→C 3×3
/// stride-2 stem, the depthwise 3×3 stride-2 (groups = C) and the pointwise 1×1, which skips
/// im2col entirely because its input already is the column matrix.
public struct Conv2dGeometry: Equatable {
    public var stride: (Int, Int)
    public var padding: (Int, Int)
    public var groups: Int

    public init(stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0), groups: Int = 1) {
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.stride == b.stride && a.padding == b.padding && a.groups == b.groups
    }
}

extension Tensor {
    public func conv2d(weight: Tensor, bias: Tensor?, _ geo: Conv2dGeometry) -> Tensor {
        precondition(rank == 4 && weight.rank == 4, "conv2d: input \(shape), weight \(weight.shape)")
        let (batch, cin, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (cout, cg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        let groups = geo.groups
        precondition(cin == cg * groups && cout % groups == 0, "conv2d: \(cin) input channels, weight \(weight.shape), groups \(groups)")
        let (sh, sw) = geo.stride, (ph, pw) = geo.padding
        let ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1
        let og = cout / groups, k = cg * kh * kw, hw = ho * wo
        let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0
        let out = Tensor(uninitializedShape: [batch, cout, ho, wo])

        // Output columns ow whose input column ow·sw − pw + kj lies inside the image, so the
        // copy loops need no bounds test per element.
        func validColumns(_ kj: Int) -> (Int, Int) {
            let lo = max(0, (pw - kj + sw - 1) / sw)
            let hi = min(wo, (w - 1 + pw - kj) / sw + 1)
            return (min(lo, hi), hi)
        }

        // Column matrix [k, ho·wo] of batch entry b, group g, built in `buffer` (the input
        // itself for a pointwise convolution, whose input already is the column matrix).
        func columns(_ b: Int, _ g: Int, _ buffer: UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float> {
            let src = data + (b * cin + g * cg) * h * w
            guard let dst = buffer else { return src }
            for c in 0..<cg {
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let row = dst + ((c * kh + ki) * kw + kj) * hw
                        let plane = src + c * h * w
                        let (lo, hi) = validColumns(kj)
                        for oh in 0..<ho {
                            let ih = oh * sh - ph + ki
                            let r = row + oh * wo
                            if ih < 0 || ih >= h { r.update(repeating: 0, count: wo); continue }
                            r.update(repeating: 0, count: lo)
                            let src = plane + ih * w + kj - pw
                            for ow in lo..<hi { r[ow] = src[ow * sw] }
                            (r + hi).update(repeating: 0, count: wo - hi)
                        }
                    }
                }
            }
            return dst
        }

        if cg == 1 && og == 1 && groups > 1 {
            return depthwise(weight: weight, bias: bias, out: out, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw,
                             ho: ho, wo: wo, validColumns: validColumns)
        }

        // (batch entry, group) pairs are independent: spread them over the cores, each range
        // with its own column buffer.
        Parallel.forRanges(batch * groups, grain: 1) { pairs in
            let buffer = direct ? nil : Tensor(uninitializedShape: [k, hw])
            for pair in pairs {
                let (b, g) = (pair / groups, pair % groups)
                let o = out.data + (b * cout + g * og) * hw
                var beta: Float = 0
                if let bias {
                    for c in 0..<og { (o + c * hw).update(repeating: bias.data[g * og + c], count: hw) }
                    beta = 1
                }
                GEMM.run(transposeA: false, transposeB: false, m: og, n: hw, k: k,
                         a: weight.data + g * og * k, lda: k, b: columns(b, g, buffer?.data), ldb: hw, beta: beta, c: o, ldc: hw)
            }
        }
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias?.tapeEntry)
        // The rule reads the input through `columns` (for dW), so it keeps the input alive.
        return out.recording(inputs) { grad in
            let gw = ew.map { Tensor(zeros: $0.shape) }
            let gx = ex.map { Tensor(zeros: $0.shape) }
            // Groups own disjoint weight rows and input channels: parallel over groups, batch
            // entries in order inside (so dW accumulates in a fixed order).
            Parallel.forRanges(groups, grain: 1) { groupRange in
                let buffer = direct ? nil : Tensor(uninitializedShape: [k, hw])
                let dcols = gx != nil && !direct ? Tensor(uninitializedShape: [k, hw]) : nil
                for g in groupRange {
                    for b in 0..<batch {
                        let go = grad.data + (b * cout + g * og) * hw
                        if let gw {
                            GEMM.run(transposeA: false, transposeB: true, m: og, n: k, k: hw,
                                     a: go, lda: hw, b: columns(b, g, buffer?.data), ldb: hw, beta: 1, c: gw.data + g * og * k, ldc: k)
                        }
                        guard let gx else { continue }
                        let dst = gx.data + (b * cin + g * cg) * h * w
                        GEMM.run(transposeA: true, transposeB: false, m: k, n: hw, k: og,
                                 a: weight.data + g * og * k, lda: k, b: go, ldb: hw, beta: direct ? 1 : 0,
                                 c: dcols?.data ?? dst, ldc: hw)
                        guard let dcols else { continue }
                        // col2im: scatter-add the column gradient back onto the input plane.
                        for c in 0..<cg {
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    let row = dcols.data + ((c * kh + ki) * kw + kj) * hw
                                    let plane = dst + c * h * w
                                    let (lo, hi) = validColumns(kj)
                                    for oh in 0..<ho {
                                        let ih = oh * sh - ph + ki
                                        if ih < 0 || ih >= h { continue }
                                        let dst = plane + ih * w + kj - pw, src = row + oh * wo
                                        for ow in lo..<hi { dst[ow * sw] += src[ow] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if let gx { ex?.accumulate(gx, owned: true) }
            if let gw { ew?.accumulate(gw, owned: true) }
            if let eb {
                let gb = Tensor(zeros: eb.shape)
                for b in 0..<batch {
                    for c in 0..<cout { gb.data[c] += Float(Vector.sum(grad.data + (b * cout + c) * hw, count: hw)) }
                }
                eb.accumulate(gb, owned: true)
            }
        }
    }

    /// Depthwise convolution (one filter per channel) computed directly: im2col would turn each
    /// channel into a 1×(kh·kw) by (kh·kw)×(ho·wo) product, all overhead. Planes (b, c) run in
    /// parallel forward; channels own their weight gradients backward.
    private func depthwise(weight: Tensor, bias: Tensor?, out: Tensor, kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int,
                           ho: Int, wo: Int, validColumns: (Int) -> (Int, Int)) -> Tensor {
        let (batch, channels, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let x = data, y = out.data, wt = weight.data
        let ranges = (0..<kw).map(validColumns)
        Parallel.forRanges(batch * channels, grain: 1) { planes in
            for plane in planes {
                let c = plane % channels
                let src = x + plane * h * w, dst = y + plane * ho * wo
                dst.update(repeating: bias?.data[c] ?? 0, count: ho * wo)
                for oh in 0..<ho {
                    let row = dst + oh * wo
                    for ki in 0..<kh {
                        let ih = oh * sh - ph + ki
                        if ih < 0 || ih >= h { continue }
                        for kj in 0..<kw {
                            let weightValue = wt[(c * kh + ki) * kw + kj]
                            let (lo, hi) = ranges[kj]
                            let line = src + ih * w + kj - pw
                            for ow in lo..<hi { row[ow] += weightValue * line[ow * sw] }
                        }
                    }
                }
            }
        }
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias?.tapeEntry)
        // dW reads the input; dx reads only the weights.
        let input = ew == nil ? nil : detached(), weightValues = weight.detached()
        return out.recording(inputs) { grad in
            let gx = ex.map { Tensor(zeros: $0.shape) }
            let gw = ew.map { Tensor(zeros: $0.shape) }
            let gb = eb == nil ? nil : Tensor(zeros: [channels])
            let g = grad.data, x = input?.data, wt = weightValues.data
            Parallel.forRanges(channels, grain: 1) { cs in
                for c in cs {
                    for b in 0..<batch {
                        let plane = b * channels + c
                        let go = g + plane * ho * wo
                        if let gb { gb.data[c] += Float(Vector.sum(go, count: ho * wo)) }
                        for oh in 0..<ho {
                            let gRow = go + oh * wo
                            for ki in 0..<kh {
                                let ih = oh * sh - ph + ki
                                if ih < 0 || ih >= h { continue }
                                for kj in 0..<kw {
                                    let (lo, hi) = ranges[kj]
                                    let offset = ih * w + kj - pw
                                    if let gw, let x {
                                        var acc: Float = 0
                                        let line = x + plane * h * w + offset
                                        for ow in lo..<hi { acc += gRow[ow] * line[ow * sw] }
                                        gw.data[(c * kh + ki) * kw + kj] += acc
                                    }
                                    if let gx {
                                        let weightValue = wt[(c * kh + ki) * kw + kj]
                                        let line = gx.data + plane * h * w + offset
                                        for ow in lo..<hi { line[ow * sw] += weightValue * gRow[ow] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if let gx { ex?.accumulate(gx, owned: true) }
            if let gw { ew?.accumulate(gw, owned: true) }
            if let gb, let eb { eb.accumulate(Tensor(shape: eb.shape, storage: gb.storage), owned: true) }
        }
    }
}
