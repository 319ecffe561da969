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
    public func dropout(_ p: Float, rng: RandomGenerator) -> Tensor {
        guard p > 0 else { return self }
        let seed = rng.next()
        let out = Tensor(uninitializedShape: shape)
        Tensor.applyDropout(data, into: out.data, count: count, p: p, seed: seed)
        let entry = tapeEntry, n = count
        return out.recording([self]) { g in
            let gx = Tensor(uninitializedShape: g.shape)
            Tensor.applyDropout(g.data, into: gx.data, count: n, p: p, seed: seed)
            entry?.accumulate(gx, owned: true)
        }
    }

    /// y = x·keep/(1−p). Element pair j takes the 64 bits at position j of the SplitMix64 stream
    /// from `seed` (its Weyl-sequence state makes any position computable directly) and
    /// compares each 32-bit half with p·2³²: drop when below.
    ///
    /// Blocks of 2048 elements: the draws go to a small buffer first (a loop LLVM vectorises),
    /// then a branch-free select applies them (a data-dependent branch mispredicts p of the time).
    static func applyDropout(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int, p: Float, seed: UInt64) {
        let scale = 1 / (1 - p)
        let threshold = UInt32(min(Double(p) * 4_294_967_296, 4_294_967_295))
        let block = 2048
        Parallel.forRanges((count + block - 1) / block, grain: 8) { blocks in
            let draws = UnsafeMutablePointer<UInt32>.allocate(capacity: block)
            defer { draws.deallocate() }
            for blockIndex in blocks {
                let start = blockIndex * block, n = min(block, count - start)
                let firstPair = start / 2
                UnsafeMutableRawPointer(draws).withMemoryRebound(to: UInt64.self, capacity: block / 2) { pairs in
                    for j in 0..<(n + 1) / 2 {
                        var z = seed &+ UInt64(firstPair + j + 1) &* 0x9E37_79B9_7F4A_7C15
                        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                        pairs[j] = z ^ (z >> 31)
                    }
                }
                let xs = x + start, ys = y + start
                for i in 0..<n { ys[i] = draws[i] < threshold ? 0 : xs[i] * scale }
            }
        }
    }
}
