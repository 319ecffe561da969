/// Convolution kernels of the CPU backend: 2-D convolution as im2col + GEMM (a pointwise 1×1
/// skips im2col, its input already is the column matrix), depthwise 2-D directly, and the
/// channels-last depthwise 1-D of the Conformer's convolution module.
extension CPUBackend {
    public func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, _ geo: Conv2dGeometry, into out: Tensor) {
        let plan = Conv2dPlan(x.shape, weight.shape, geo)
        if plan.isDepthwise { return depthwise2dForward(x, weight: weight, bias: bias, plan, into: out) }
        let (groups, og, cout, hw, k) = (plan.groups, plan.og, plan.cout, plan.hw, plan.k)
        // (batch entry, group) pairs are independent: spread them over the cores, each range
        // with its own column buffer.
        Parallel.forRanges(plan.batch * groups, grain: 1) { pairs in
            let buffer = plan.direct ? nil : UnsafeMutablePointer<Float>.allocate(capacity: k * hw)
            defer { buffer?.deallocate() }
            for pair in pairs {
                let (b, g) = (pair / groups, pair % groups)
                let o = out.address + (b * cout + g * og) * hw
                var beta: Float = 0
                if let bias {
                    for c in 0..<og { (o + c * hw).update(repeating: bias.address[g * og + c], count: hw) }
                    beta = 1
                }
                GEMM.run(transposeA: false, transposeB: false, m: og, n: hw, k: k,
                         a: weight.address + g * og * k, lda: k, b: plan.columns(x.address, b, g, buffer), ldb: hw, beta: beta, c: o, ldc: hw)
            }
        }
    }

    public func conv2dBackward(_ x: Tensor, weight: Tensor, _ geo: Conv2dGeometry, _ grad: Tensor, dx gx: Tensor?, dw gw: Tensor?, db gb: Tensor?) {
        let plan = Conv2dPlan(x.shape, weight.shape, geo)
        if plan.isDepthwise { return depthwise2dBackward(x, weight: weight, plan, grad, dx: gx, dw: gw, db: gb) }
        let (groups, og, cout, cin, cg, hw, k) = (plan.groups, plan.og, plan.cout, plan.cin, plan.cg, plan.hw, plan.k)
        let (h, w, kh, kw, ho, wo, sh, sw, ph, pw) = (plan.h, plan.w, plan.kh, plan.kw, plan.ho, plan.wo, plan.sh, plan.sw, plan.ph, plan.pw)
        // Groups own disjoint weight rows and input channels: parallel over groups, batch
        // entries in order inside (so dW accumulates in a fixed order).
        Parallel.forRanges(groups, grain: 1) { groupRange in
            let buffer = plan.direct ? nil : UnsafeMutablePointer<Float>.allocate(capacity: k * hw)
            let dcols = gx != nil && !plan.direct ? UnsafeMutablePointer<Float>.allocate(capacity: k * hw) : nil
            defer { buffer?.deallocate(); dcols?.deallocate() }
            for g in groupRange {
                for b in 0..<plan.batch {
                    let go = grad.address + (b * cout + g * og) * hw
                    if let gw {
                        GEMM.run(transposeA: false, transposeB: true, m: og, n: k, k: hw,
                                 a: go, lda: hw, b: plan.columns(x.address, b, g, buffer), ldb: hw, beta: 1, c: gw.address + g * og * k, ldc: k)
                    }
                    guard let gx else { continue }
                    let dst = gx.address + (b * cin + g * cg) * h * w
                    GEMM.run(transposeA: true, transposeB: false, m: k, n: hw, k: og,
                             a: weight.address + g * og * k, lda: k, b: go, ldb: hw, beta: plan.direct ? 1 : 0,
                             c: dcols ?? dst, ldc: hw)
                    guard let dcols else { continue }
                    // col2im: scatter-add the column gradient back onto the input plane.
                    for c in 0..<cg {
                        for ki in 0..<kh {
                            for kj in 0..<kw {
                                let row = dcols + ((c * kh + ki) * kw + kj) * hw
                                let plane = dst + c * h * w
                                let (lo, hi) = plan.validColumns(kj)
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
        if let gb {
            for b in 0..<plan.batch {
                for c in 0..<cout { gb.address[c] += Float(Vector.sum(grad.address + (b * cout + c) * hw, count: hw)) }
            }
        }
    }

    /// Depthwise convolution (one filter per channel) computed directly: im2col would turn each
    /// channel into a 1×(kh·kw) by (kh·kw)×(ho·wo) product, all overhead. Planes (b, c) run in
    /// parallel.
    private func depthwise2dForward(_ input: Tensor, weight: Tensor, bias: Tensor?, _ plan: Conv2dPlan, into out: Tensor) {
        let (batch, channels, h, w) = (plan.batch, plan.cin, plan.h, plan.w)
        let (kh, kw, ho, wo, sh, sw, ph, pw) = (plan.kh, plan.kw, plan.ho, plan.wo, plan.sh, plan.sw, plan.ph, plan.pw)
        let x = input.address, y = out.address, wt = weight.address
        let ranges = (0..<kw).map(plan.validColumns)
        Parallel.forRanges(batch * channels, grain: 1) { planes in
            for plane in planes {
                let c = plane % channels
                let src = x + plane * h * w, dst = y + plane * ho * wo
                dst.update(repeating: bias?.address[c] ?? 0, count: ho * wo)
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
    }

    /// Channels own their weight gradients: parallel over channels.
    private func depthwise2dBackward(_ input: Tensor, weight: Tensor, _ plan: Conv2dPlan, _ grad: Tensor, dx gx: Tensor?, dw gw: Tensor?, db gb: Tensor?) {
        let (batch, channels, h, w) = (plan.batch, plan.cin, plan.h, plan.w)
        let (kh, kw, ho, wo, sh, sw, ph) = (plan.kh, plan.kw, plan.ho, plan.wo, plan.sh, plan.sw, plan.ph)
        let g = grad.address, x = input.address, wt = weight.address
        let ranges = (0..<kw).map(plan.validColumns)
        Parallel.forRanges(channels, grain: 1) { cs in
            for c in cs {
                for b in 0..<batch {
                    let plane = b * channels + c
                    let go = g + plane * ho * wo
                    if let gb { gb.address[c] += Float(Vector.sum(go, count: ho * wo)) }
                    for oh in 0..<ho {
                        let gRow = go + oh * wo
                        for ki in 0..<kh {
                            let ih = oh * sh - ph + ki
                            if ih < 0 || ih >= h { continue }
                            for kj in 0..<kw {
                                let (lo, hi) = ranges[kj]
                                let offset = ih * w + kj - plan.pw
                                if let gw {
                                    var acc: Float = 0
                                    let line = x + plane * h * w + offset
                                    for ow in lo..<hi { acc += gRow[ow] * line[ow * sw] }
                                    gw.address[(c * kh + ki) * kw + kj] += acc
                                }
                                if let gx {
                                    let weightValue = wt[(c * kh + ki) * kw + kj]
                                    let line = gx.address + plane * h * w + offset
                                    for ow in lo..<hi { line[ow * sw] += weightValue * gRow[ow] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The sizes of one 2-D convolution and the im2col helpers over them.
private struct Conv2dPlan {
    let batch, cin, h, w, cout, cg, kh, kw, groups, sh, sw, ph, pw, ho, wo, og, k, hw: Int
    /// A pointwise convolution: its input already is the column matrix.
    let direct: Bool
    /// One filter per channel, computed without im2col.
    var isDepthwise: Bool { cg == 1 && og == 1 && groups > 1 }

    init(_ input: [Int], _ weight: [Int], _ geo: Conv2dGeometry) {
        (batch, cin, h, w) = (input[0], input[1], input[2], input[3])
        (cout, cg, kh, kw) = (weight[0], weight[1], weight[2], weight[3])
        groups = geo.groups
        ((sh, sw), (ph, pw)) = (geo.stride, geo.padding)
        (ho, wo) = geo.outputSize(h: h, w: w, kh: kh, kw: kw)
        (og, k, hw) = (cout / groups, cg * kh * kw, ho * wo)
        direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0
    }

    /// Output columns ow whose input column ow·sw − pw + kj lies inside the image, so the
    /// copy loops need no bounds test per element.
    func validColumns(_ kj: Int) -> (Int, Int) {
        let lo = max(0, (pw - kj + sw - 1) / sw)
        let hi = min(wo, (w - 1 + pw - kj) / sw + 1)
        return (min(lo, hi), hi)
    }

    /// Column matrix [k, ho·wo] of batch entry b, group g, built in `buffer` (the input itself
    /// for a pointwise convolution).
    func columns(_ x: UnsafeMutablePointer<Float>, _ b: Int, _ g: Int, _ buffer: UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float> {
        let src = x + (b * cin + g * cg) * h * w
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
}

extension CPUBackend {
    /// Weights [C, 1, K] transposed to [K, C], so that each tap is a contiguous channel vector.
    private func taps(_ weight: Tensor) -> [Float] {
        let (c, k) = (weight.shape[0], weight.shape[2])
        var taps = [Float](repeating: 0, count: k * c)
        for ch in 0..<c { for j in 0..<k { taps[j * c + ch] = weight.address[ch * k + j] } }
        return taps
    }

    public func depthwiseConv1dForward(_ input: Tensor, weight: Tensor, bias: Tensor?, left: Int, into out: Tensor) {
        let (t, c, k, to) = (input.shape[1], input.shape[2], weight.shape[2], out.shape[1])
        let x = input.address, y = out.address
        taps(weight).withUnsafeBufferPointer { tp in
            let tp = tp.baseAddress!
            Parallel.forRanges(out.count / c, grain: max(1, 4096 / c)) { r in
                for bt in r {
                    let b = bt / to, i = bt % to
                    let yr = y + bt * c
                    if let bias { yr.update(from: bias.address, count: c) } else { yr.update(repeating: 0, count: c) }
                    for j in 0..<k {
                        let src = i + j - left
                        if src < 0 || src >= t { continue }
                        let xr = x + (b * t + src) * c, wr = tp + j * c
                        for ch in 0..<c { yr[ch] += wr[ch] * xr[ch] }
                    }
                }
            }
        }
    }

    public func depthwiseConv1dBackward(_ input: Tensor?, weight: Tensor, left: Int, _ g: Tensor, dx gx: Tensor?, dw gw: Tensor?) {
        let (batch, to, c, k) = (g.shape[0], g.shape[1], g.shape[2], weight.shape[2])
        let t = (gx ?? input)!.shape[1]
        let gp = g.address
        if let gx {
            taps(weight).withUnsafeBufferPointer { tp in
                let tp = tp.baseAddress!
                // Each input row gathers from the outputs that read it: no write conflicts.
                Parallel.forRanges(batch * t, grain: max(1, 4096 / c)) { r in
                    for bs in r {
                        let b = bs / t, s = bs % t
                        let dr = gx.address + bs * c
                        for j in 0..<k {
                            let i = s - j + left
                            if i < 0 || i >= to { continue }
                            let gr = gp + (b * to + i) * c, wr = tp + j * c
                            for ch in 0..<c { dr[ch] += wr[ch] * gr[ch] }
                        }
                    }
                }
            }
        }
        if let gw, let x = input?.address {
            var gt = [Float](repeating: 0, count: k * c)
            gt.withUnsafeMutableBufferPointer { gtp in
                let gtp = gtp.baseAddress!
                // Channel ranges own their taps: parallel without write conflicts.
                Parallel.forRanges(c, grain: 64) { channels in
                    for b in 0..<batch {
                        for i in 0..<to {
                            let gr = gp + (b * to + i) * c
                            for j in 0..<k {
                                let src = i + j - left
                                if src < 0 || src >= t { continue }
                                let xr = x + (b * t + src) * c, row = gtp + j * c
                                for ch in channels { row[ch] += gr[ch] * xr[ch] }
                            }
                        }
                    }
                }
            }
            for ch in 0..<c { for j in 0..<k { gw.address[ch * k + j] = gt[j * c + ch] } }
        }
    }
}
