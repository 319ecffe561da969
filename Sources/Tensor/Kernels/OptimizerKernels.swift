/// The optimizer's kernels on the CPU: AdamW's element update and the squared norm.
extension CPUBackend {
    public func adamwUpdate(parameter: Tensor, gradient: Tensor, m: Tensor, v: Tensor, _ c: AdamWStep) {
        let pp = parameter.address, gp = gradient.address, mp = m.address, vp = v.address
        Parallel.forRanges(parameter.count, grain: 65_536) { r in
            Self.adamwLoop(pp + r.lowerBound, gp + r.lowerBound, mp + r.lowerBound, vp + r.lowerBound, r.count, c)
        }
    }

    /// The element loop, in torch's operation order. Swift's `squareRoot()` keeps a libm errno
    /// fallback that stops LLVM from vectorising the loop (measured: AdamW 6.7 % of a large
    /// step, scalar); `Vector.sqrt` is plain arithmetic and vectorises.
    @inline(never)
    static func adamwLoop(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                          _ v: UnsafeMutablePointer<Float>, _ n: Int, _ c: AdamWStep) {
        let (decay, w1, b2, w2, bc2Sqrt, eps, stepSize) = (c.decay, c.w1, c.b2, c.w2, c.bc2Sqrt, c.eps, c.stepSize)
        for i in 0..<n {
            let gi = g[i]
            let mi = m[i] + w1 * (gi - m[i])
            let vi = v[i] * b2 + w2 * gi * gi
            m[i] = mi
            v[i] = vi
            let denom = Vector.sqrt(vi) / bc2Sqrt + eps
            p[i] = p[i] * decay + (-stepSize) * (mi / denom)
        }
    }

    /// Each tensor's sum on its own, the tensors split across the cores (one thread summed all
    /// 113 M gradients of the large model, ~2 % of a step): the results do not depend on the
    /// thread count.
    public func sumsOfSquares(_ xs: [Tensor]) -> [Double] {
        var sums = [Double](repeating: 0, count: xs.count)
        sums.withUnsafeMutableBufferPointer { out in
            Parallel.forRanges(xs.count, grain: 1) { r in
                for i in r { out[i] = Vector.sumOfSquares(xs[i].address, count: xs[i].count) }
            }
        }
        return sums
    }
}
