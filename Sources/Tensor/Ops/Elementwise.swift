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
        loop.forEachRun(inParallel: true) { oa, ob, oo, n, sa, sb in
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

    // Backward rules capture the inputs' tape entries and only the values they read, so that
    // recording an add or a product keeps no operand alive that its gradient does not need.

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, Pointwise.Add())
        let (ea, eb, shapeA, shapeB, shapeOut) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape, out.shape)
        return out.recording([a, b]) { g in
            // g belongs to this rule alone (see `TapeEntry.accumulate`): the first taker adopts it.
            ea?.accumulate(g.summed(toShape: shapeA), owned: true)
            eb?.accumulate(g.summed(toShape: shapeB), owned: shapeB != shapeOut || ea == nil)
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, Pointwise.Sub())
        let (ea, eb, shapeA, shapeB) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape)
        return out.recording([a, b]) { g in
            eb?.accumulate(g.scaled(-1, recording: false).summed(toShape: shapeB), owned: true)
            ea?.accumulate(g.summed(toShape: shapeA), owned: true)
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, Pointwise.Mul())
        let (ea, eb, shapeA, shapeB) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape)
        // da needs b's values and db needs a's: keep each only if the other side wants a gradient.
        let bForA = ea == nil ? nil : b.detached(), aForB = eb == nil ? nil : a.detached()
        return out.recording([a, b]) { g in
            withoutGrad {
                if let ea, let bForA { ea.accumulate((g * bForA).summed(toShape: shapeA), owned: true) }
                if let eb, let aForB { eb.accumulate((g * aForB).summed(toShape: shapeB), owned: true) }
            }
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, Pointwise.Div())
        let (ea, eb, shapeA, shapeB) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape)
        let divisor = b.detached(), quotient = eb == nil ? nil : out.detached()
        return out.recording([a, b]) { g in
            withoutGrad {
                ea?.accumulate((g / divisor).summed(toShape: shapeA), owned: true)
                // d(a/b)/db = −(a/b)/b
                if let eb, let quotient { eb.accumulate((g * quotient / divisor).scaled(-1, recording: false).summed(toShape: shapeB), owned: true) }
            }
        }
    }

    /// self·s
    public func scaled(_ s: Float) -> Tensor { scaled(s, recording: true) }

    func scaled(_ s: Float, recording: Bool) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        Vector.scale(data, by: s, into: out.data, count: count)
        guard recording else { return out }
        let entry = tapeEntry
        return out.recording([self]) { g in entry?.accumulate(g.scaled(s, recording: false), owned: true) }
    }

    public static func * (a: Tensor, s: Float) -> Tensor { a.scaled(s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.scaled(s) }
}
