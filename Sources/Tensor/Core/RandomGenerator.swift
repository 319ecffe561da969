import Foundation

/// Deterministic random numbers whose complete state is four words (xoshiro256**), so that a
/// checkpoint can store it and a resumed run draws exactly what the uninterrupted run would.
public final class RandomGenerator {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    /// Seeds the four words from SplitMix64, as the xoshiro authors recommend.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            defer { s &+= 0x9E37_79B9_7F4A_7C15 }
            return Self.splitMix64(s)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// SplitMix64's output for state `x`: a bijection of 64-bit words with full avalanche,
    /// also used to derive keys (dropout masks) from other keys.
    public static func splitMix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public init(state words: [UInt64]) {
        precondition(words.count == 4 && words.contains { $0 != 0 }, "a generator state is four words, not all zero")
        state = (words[0], words[1], words[2], words[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    /// A generator for a sub-stream (e.g. per epoch or per worker) that does not disturb this one.
    public func derived(_ salt: UInt64) -> RandomGenerator {
        RandomGenerator(seed: state.0 ^ (salt &* 0xD1B5_4A32_D192_ED03) ^ state.2)
    }

    @inline(__always)
    public func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform Float in [0, 1) with 24 random bits.
    @inline(__always)
    public func uniformFloat() -> Float { Float(next() >> 40) * 0x1.0p-24 }

    public func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * uniform() }

    /// Uniform integer in `range` (unbiased, by rejection).
    public func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(range.upperBound - range.lowerBound) &+ 1
        if span == 0 { return Int(bitPattern: UInt(next())) }
        let limit = UInt64.max - UInt64.max % span
        var x = next()
        while x >= limit { x = next() }
        return range.lowerBound + Int(x % span)
    }

    /// Standard normal (Box–Muller; one value per two uniforms so the state stays four words).
    public func normal() -> Double {
        let u1 = 1 - uniform()   // (0, 1]
        let u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// `n` standard normals, using both values of each Box–Muller pair (twice as fast as
    /// `normal()` per value; the stream differs from n calls of `normal()`).
    public func normals(_ n: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        var i = 0
        while i < n {
            let radius = (-2 * Foundation.log(1 - uniform())).squareRoot()
            let angle = 2 * Double.pi * uniform()
            out[i] = Float(radius * cos(angle))
            if i + 1 < n { out[i + 1] = Float(radius * sin(angle)) }
            i += 2
        }
        return out
    }

    /// Binomial(n, p) as a sum of Bernoulli draws: exact, and cheap for the n (≤ a few thousand
    /// frames) that block masking uses.
    public func binomial(_ n: Int, _ p: Double) -> Int {
        var k = 0
        for _ in 0..<max(n, 0) where uniform() < p { k += 1 }
        return k
    }

    /// The option a uniform u ∈ [0, 1) selects among `probabilities` (summing to 1), as
    /// Python's `random.choices` maps its draw onto cumulative weights.
    public static func option(_ u: Double, probabilities: [Double]) -> Int {
        var total = 0.0
        for (i, p) in probabilities.enumerated() {
            total += p
            if u < total { return i }
        }
        return probabilities.count - 1
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    public func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(in: 0...i)) }
        }
        return p
    }

    public func fillUniform(_ t: Tensor, _ lo: Float, _ hi: Float) {
        t.withMutableHostValues { values in for i in values.indices { values[i] = lo + (hi - lo) * uniformFloat() } }
    }

    public func fillNormal(_ t: Tensor, mean: Float = 0, std: Float) {
        t.withMutableHostValues { values in for i in values.indices { values[i] = mean + std * Float(normal()) } }
    }
}

extension RandomGenerator {
    /// Continues from a saved state (see `stateWords`).
    public func restore(state words: [UInt64]) {
        precondition(words.count == 4, "a generator state is four words")
        state = (words[0], words[1], words[2], words[3])
    }
}
