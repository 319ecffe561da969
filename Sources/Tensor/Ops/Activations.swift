/// An activation and its derivative as a type, so the kernels specialise on it.
public protocol Activation: UnaryFunction {
    /// f′ given the input x and the output y = f(x).
    func derivative(x: Float, y: Float) -> Float
}

public enum Activations {
    public struct ReLU: Activation {
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { max(x, 0) }
        @inline(__always) public func derivative(x: Float, y: Float) -> Float { x > 0 ? 1 : 0 }
    }
    public struct Sigmoid: Activation {
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { Vector.sigmoid(x) }
        @inline(__always) public func derivative(x: Float, y: Float) -> Float { y * (1 - y) }
    }
    /// Swish x·σ(x); derivative σ(x)·(1 + x·(1 − σ(x))).
    public struct SiLU: Activation {
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { x * Vector.sigmoid(x) }
        @inline(__always) public func derivative(x: Float, y: Float) -> Float { let s = Vector.sigmoid(x); return s * (1 + x * (1 - s)) }
    }
}

/// Pointwise nonlinearities and the gated linear unit.
extension Tensor {
    public func activation<A: Activation>(_ f: A) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        Vector.map(data, into: out.data, count: count, f)
        return out.recording([self]) { out, g in
            let d = Tensor(uninitializedShape: self.shape)
            let x = self.data, y = out.data, gp = g.data, dp = d.data
            Parallel.forRanges(self.count) { r in
                for i in r { dp[i] = gp[i] * f.derivative(x: x[i], y: y[i]) }
            }
            self.accumulateGrad(d, owned: true)
        }
    }

    public func relu() -> Tensor { activation(Activations.ReLU()) }
    public func sigmoid() -> Tensor { activation(Activations.Sigmoid()) }
    public func silu() -> Tensor { activation(Activations.SiLU()) }

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
        // Two 32-bit draws per generator step, compared as integers: drop when u < p·2³².
        let threshold = UInt32(min(Double(p) * 4_294_967_296, 4_294_967_295))
        let k = keep.data
        var i = 0
        while i < count {
            let bits = rng.next()
            k[i] = UInt32(truncatingIfNeeded: bits) < threshold ? 0 : scale
            if i + 1 < count { k[i + 1] = UInt32(truncatingIfNeeded: bits >> 32) < threshold ? 0 : scale }
            i += 2
        }
        let out = Tensor(uninitializedShape: shape)
        Vector.mul(data, keep.data, into: out.data, count: count)
        return out.recording([self]) { _, g in
            let gx = Tensor(uninitializedShape: self.shape)
            Vector.mul(g.data, keep.data, into: gx.data, count: self.count)
            self.accumulateGrad(gx, owned: true)
        }
    }
}
