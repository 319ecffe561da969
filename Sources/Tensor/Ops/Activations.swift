/// Pointwise nonlinearities and the gated linear unit.
extension Tensor {
    /// out = f(x) with backward g·f′, where f′ is computed from (x, out).
    func unary(_ f: (Float) -> Float, derivative: @escaping (Float, Float) -> Float) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        Vector.apply(data, into: out.data, count: count, f)
        return out.recording([self]) { out, g in
            let d = Tensor(uninitializedShape: self.shape)
            Vector.apply(self.data, out.data, into: d.data, count: self.count, derivative)
            Vector.mul(d.data, g.data, into: d.data, count: self.count)
            self.accumulateGrad(d, owned: true)
        }
    }

    public func relu() -> Tensor {
        unary({ max($0, 0) }, derivative: { x, _ in x > 0 ? 1 : 0 })
    }

    public func sigmoid() -> Tensor {
        unary(Vector.sigmoid, derivative: { _, y in y * (1 - y) })
    }

    /// Swish: x·σ(x); derivative σ(x)·(1 + x·(1 − σ(x))).
    public func silu() -> Tensor {
        unary({ $0 * Vector.sigmoid($0) }, derivative: { x, _ in let s = Vector.sigmoid(x); return s * (1 + x * (1 - s)) })
    }

    /// Gated linear unit over the last dimension [.., 2C] → [.., C]: the first half is the
    /// value, the second half the gate (PyTorch's `glu` order).
    public func glu() -> Tensor {
        let twoC = shape[rank - 1]
        precondition(twoC % 2 == 0, "glu needs an even last dimension, got \(shape)")
        let c = twoC / 2, rows = count / twoC
        let out = Tensor(uninitializedShape: Array(shape.dropLast()) + [c])
        let x = data, y = out.data
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1))) { r in
            for row in r {
                let a = x + row * twoC, y = y + row * c
                for i in 0..<c { y[i] = a[i] * Vector.sigmoid(a[c + i]) }
            }
        }
        return out.recording([self]) { _, g in
            let gx = Tensor(uninitializedShape: self.shape)
            let dx = gx.data, gy = g.data
            Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1))) { r in
                for row in r {
                    let a = x + row * twoC, d = dx + row * twoC, gr = gy + row * c
                    for i in 0..<c {
                        let s = Vector.sigmoid(a[c + i])
                        d[i] = gr[i] * s
                        d[c + i] = gr[i] * a[i] * s * (1 - s)
                    }
                }
            }
            self.accumulateGrad(gx, owned: true)
        }
    }

    /// Inverted dropout: zero with probability p, scale survivors by 1/(1−p). Identity for p = 0.
    public func dropout(_ p: Float, rng: RandomGenerator) -> Tensor {
        guard p > 0 else { return self }
        let keep = Tensor(uninitializedShape: shape)
        let scale = 1 / (1 - p)
        for i in 0..<count { keep.data[i] = rng.uniformFloat() < p ? 0 : scale }
        let out = Tensor(uninitializedShape: shape)
        Vector.mul(data, keep.data, into: out.data, count: count)
        return out.recording([self]) { _, g in
            let gx = Tensor(uninitializedShape: self.shape)
            Vector.mul(g.data, keep.data, into: gx.data, count: self.count)
            self.accumulateGrad(gx, owned: true)
        }
    }
}
