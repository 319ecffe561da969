/// Broadcasting arithmetic: +, −, ×, ÷ between tensors, and scaling by a constant.
extension Tensor {
    /// out = f(a, b) with NumPy broadcasting.
    static func broadcasting<F: BinaryFunction>(_ a: Tensor, _ b: Tensor, _ f: F) -> Tensor {
        guard let outShape = Shape.broadcast(a.shape, b.shape) else {
            preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = Tensor(uninitializedShape: outShape)
        if a.shape == b.shape {
            Vector.zip(a.data, b.data, into: out.data, count: out.count, f)
            return out
        }
        let loop = BroadcastLoop(shape: outShape, stridesA: Shape.broadcastStrides(a.shape, to: outShape),
                                 stridesB: Shape.broadcastStrides(b.shape, to: outShape))
        let pa = a.data, pb = b.data, po = out.data
        loop.forEachRun { oa, ob, oo, n, sa, sb in
            if sa == 1 && sb == 1 {
                Vector.zip(pa + oa, pb + ob, into: po + oo, count: n, f)
            } else if sa == 1 && sb == 0 {
                let vb = pb[ob]
                Vector.map(pa + oa, into: po + oo, count: n, Pointwise.BindRight(f: f, b: vb))
            } else if sa == 0 && sb == 1 {
                let va = pa[oa]
                Vector.map(pb + ob, into: po + oo, count: n, Pointwise.BindLeft(f: f, a: va))
            } else {
                for i in 0..<n { po[oo + i] = f(pa[oa + i * sa], pb[ob + i * sb]) }
            }
        }
        return out
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        broadcasting(a, b, Pointwise.Add()).recording([a, b]) { out, g in
            if a.requiresGrad { a.accumulateGrad(g.summed(toShape: a.shape), owned: a.shape != out.shape) }
            if b.requiresGrad { b.accumulateGrad(g.summed(toShape: b.shape), owned: b.shape != out.shape) }
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        broadcasting(a, b, Pointwise.Sub()).recording([a, b]) { out, g in
            if a.requiresGrad { a.accumulateGrad(g.summed(toShape: a.shape), owned: a.shape != out.shape) }
            if b.requiresGrad { b.accumulateGrad(g.scaled(-1, recording: false).summed(toShape: b.shape), owned: true) }
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        broadcasting(a, b, Pointwise.Mul()).recording([a, b]) { _, g in
            withoutGrad {
                if a.requiresGrad { a.accumulateGrad((g * b).summed(toShape: a.shape), owned: true) }
                if b.requiresGrad { b.accumulateGrad((g * a).summed(toShape: b.shape), owned: true) }
            }
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        broadcasting(a, b, Pointwise.Div()).recording([a, b]) { out, g in
            withoutGrad {
                if a.requiresGrad { a.accumulateGrad((g / b).summed(toShape: a.shape), owned: true) }
                // d(a/b)/db = −(a/b)/b
                if b.requiresGrad { b.accumulateGrad((g * out / b).scaled(-1, recording: false).summed(toShape: b.shape), owned: true) }
            }
        }
    }

    /// self·s
    public func scaled(_ s: Float) -> Tensor { scaled(s, recording: true) }

    func scaled(_ s: Float, recording: Bool) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        Vector.scale(data, by: s, into: out.data, count: count)
        guard recording else { return out }
        return out.recording([self]) { _, g in self.accumulateGrad(g.scaled(s, recording: false), owned: true) }
    }

    public static func * (a: Tensor, s: Float) -> Tensor { a.scaled(s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.scaled(s) }
}
