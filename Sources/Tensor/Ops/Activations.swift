import Foundation

/// An activation and its derivative as a type, so the kernels specialise on it.
public protocol Activation: UnaryFunction {
    /// Whether f′ is computed from the output y = f(x) rather than the input x. The backward
    /// rule keeps only that one tensor alive.
    static var derivativeFromOutput: Bool { get }
    /// f′ from the saved value: x, or y when `derivativeFromOutput`.
    func derivative(_ saved: Float) -> Float
}

public enum Activations {
    public struct ReLU: Activation {
        public static let derivativeFromOutput = true
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { max(x, 0) }
        @inline(__always) public func derivative(_ y: Float) -> Float { y > 0 ? 1 : 0 }
    }
    public struct Sigmoid: Activation {
        public static let derivativeFromOutput = true
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { Vector.sigmoid(x) }
        @inline(__always) public func derivative(_ y: Float) -> Float { y * (1 - y) }
    }
    /// Swish x·σ(x); derivative σ(x)·(1 + x·(1 − σ(x))).
    public struct SiLU: Activation {
        public static let derivativeFromOutput = false
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { x / (1 + Vector.exp(-x)) }
        @inline(__always) public func derivative(_ x: Float) -> Float { let s = Vector.sigmoid(x); return s * (1 + x * (1 - s)) }
    }
    /// torch's exact GELU x·Φ(x) = x·(1 + erf(x/√2))/2 (not the tanh approximation);
    /// derivative Φ(x) + x·φ(x).
    public struct GELU: Activation {
        public static let derivativeFromOutput = false
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { 0.5 * x * (1 + erf(x * 0.70710678118654752)) }
        @inline(__always) public func derivative(_ x: Float) -> Float {
            0.5 * (1 + erf(x * 0.70710678118654752)) + x * 0.39894228040143268 * Vector.exp(-0.5 * x * x)
        }
    }
}

/// Pointwise nonlinearities and the gated linear unit.
extension Tensor {
    public func activation<A: Activation>(_ f: A) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        Vector.map(data, into: out.data, count: count, f)
        let entry = tapeEntry, n = count
        let saved = A.derivativeFromOutput ? out.detached() : detached()
        return out.recording([self]) { g in
            let d = Tensor(uninitializedShape: g.shape)
            let v = saved.data, gp = g.data, dp = d.data
            Parallel.forRanges(n) { r in
                for i in r { dp[i] = gp[i] * f.derivative(v[i]) }
            }
            entry?.accumulate(d, owned: true)
        }
    }

    public func relu() -> Tensor { activation(Activations.ReLU()) }
    public func sigmoid() -> Tensor { activation(Activations.Sigmoid()) }
    public func silu() -> Tensor { activation(Activations.SiLU()) }
    public func gelu() -> Tensor { activation(Activations.GELU()) }

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
        let entry = tapeEntry, inputShape = shape, input = detached()
        return out.recording([self]) { g in
            let gx = Tensor(uninitializedShape: inputShape)
            let x = input.data, dx = gx.data, gy = g.data
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
            entry?.accumulate(gx, owned: true)
        }
    }

    /// Inverted dropout: zero with probability p, scale survivors by 1/(1−p). Identity for p = 0.
    ///
    /// The keep/drop decisions come from one draw of `rng` used as the seed of a random-access
    /// stream, so the mask is never stored: backward recomputes it bit for bit, and both
    /// directions run in parallel.
    /// Dropout whose mask is a pure function of `seed` and each element's index in a batch:
    /// `rows[b]` is the batch row that leading row b of this tensor stands for (nil: row b). A
    /// process holding some rows of a larger batch (or a batch whose unreadable utterances were
    /// dropped) draws exactly the mask one process holding every row would draw for them.
    public func dropout(_ p: Float, seed: UInt64, rows: [Int]? = nil) -> Tensor {
        guard p > 0 else { return self }
        let out = Tensor(uninitializedShape: shape)
        Tensor.applyDropout(data, into: out.data, count: count, p: p, seed: seed, rows: rows)
        let entry = tapeEntry, n = count
        return out.recording([self]) { g in
            let gx = Tensor(uninitializedShape: g.shape)
            Tensor.applyDropout(g.data, into: gx.data, count: n, p: p, seed: seed, rows: rows)
            entry?.accumulate(gx, owned: true)
        }
    }

    /// y = x·keep/(1−p). Element i draws 32 bits from a counter-based hash of (i, seed) and is
    /// dropped when they fall below p·2³²; any element's decision is computable on its own, so
    /// both directions split the tensor freely across threads.
    ///
    /// The hash is two rounds of MurmurHash3's 32-bit finaliser, keyed by the two halves of the
    /// seed: 32-bit multiplies vectorise on AVX2 (8 lanes), where the 64-bit SplitMix64 this
    /// replaced ran scalar (AVX2 has no 64-bit vector multiply): 4.3 % of a large step before.
    /// One branch-free loop: a data-dependent branch would mispredict p of the time.
    public static func applyDropout(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int, p: Float, seed: UInt64,
                                    rows: [Int]? = nil) {
        let rowSize = rows.map { count / max($0.count, 1) } ?? max(count, 1)
        precondition(((rows?.max() ?? 0) + 1) * rowSize <= Int(UInt32.max), "dropout indexes elements with 32 bits")
        let scale = 1 / (1 - p)
        let threshold = UInt32(min(Double(p) * 4_294_967_296, 4_294_967_295))
        let k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        Parallel.forRanges(count, grain: 16_384) { r in
            // Row by row: element i of row b hashes its index in row rows[b] of the batch.
            var start = r.lowerBound
            while start < r.upperBound {
                let row = start / rowSize, end = min(r.upperBound, (row + 1) * rowSize)
                let shift = UInt32(truncatingIfNeeded: ((rows?[row] ?? row) - row) * rowSize)
                for i in start..<end {
                    let bits = mix32(mix32((UInt32(truncatingIfNeeded: i) &+ shift) ^ k0) ^ k1)
                    y[i] = bits < threshold ? 0 : x[i] * scale
                }
                start = end
            }
        }
    }

    /// MurmurHash3's fmix32: a bijection of 32-bit words with full avalanche.
    @inline(__always)
    static func mix32(_ value: UInt32) -> UInt32 {
        var h = value
        h ^= h >> 16
        h &*= 0x85EB_CA6B
        h ^= h >> 13
        h &*= 0xC2B2_AE35
        return h ^ (h >> 16)
    }
}
