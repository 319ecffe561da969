/// Contiguous Float32 loops, written over SIMD8 so that an AVX2 build issues 8-wide instructions.
public enum Vector {
    public typealias V = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// out[i] = f(a[i]) with a SIMD body and a scalar tail; split across threads when large.
    @inline(__always)
    public static func map(_ a: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int,
                           _ simd: (V) -> V, _ scalar: (Float) -> Float) {
        Parallel.forRanges(count) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store(simd(load(a + i)), out + i); i += 8 }
            while i < r.upperBound { out[i] = scalar(a[i]); i += 1 }
        }
    }

    /// out[i] = f(a[i], b[i]).
    @inline(__always)
    public static func zip(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                           count: Int, _ simd: (V, V) -> V, _ scalar: (Float, Float) -> Float) {
        Parallel.forRanges(count) { r in
            var i = r.lowerBound
            while i + 8 <= r.upperBound { store(simd(load(a + i), load(b + i)), out + i); i += 8 }
            while i < r.upperBound { out[i] = scalar(a[i], b[i]); i += 1 }
        }
    }

    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        zip(a, b, into: out, count: count, { $0 + $1 }, { $0 + $1 })
    }

    public static func mul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        zip(a, b, into: out, count: count, { $0 * $1 }, { $0 * $1 })
    }

    public static func scale(_ a: UnsafePointer<Float>, by s: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
        map(a, into: out, count: count, { $0 * s }, { $0 * s })
    }

    /// out[i] += s·a[i]
    public static func addScaled(_ a: UnsafePointer<Float>, by s: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
        zip(a, out, into: out, count: count, { $0 * s + $1 }, { $0 * s + $1 })
    }

    /// Sum with a Float64 accumulator (reductions over a whole batch need it).
    public static func sum(_ a: UnsafePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Double>()
        var i = 0
        while i + 8 <= count {
            let v = load(a + i)
            acc += SIMD8<Double>(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]),
                                 Double(v[4]), Double(v[5]), Double(v[6]), Double(v[7]))
            i += 8
        }
        var total = acc.sum()
        while i < count { total += Double(a[i]); i += 1 }
        return total
    }

    /// Sum of squares with a Float64 accumulator (gradient norms).
    public static func sumOfSquares(_ a: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0
        var acc = V()
        var i = 0
        while i + 8 <= count {
            let v = load(a + i)
            acc += v * v
            i += 8
            if i & 1023 == 0 { total += Double(acc.sum()); acc = V() }
        }
        total += Double(acc.sum())
        while i < count { total += Double(a[i] * a[i]); i += 1 }
        return total
    }

    // MARK: transcendental functions

    /// e^x: Cody–Waite range reduction to [−ln2/2, ln2/2] and a degree-6 polynomial (Cephes
    /// expf coefficients), about 1 ulp; saturating below −87.3 and above 88.37.
    ///
    /// Written as plain scalar code on purpose: LLVM vectorises loops over it (vroundps,
    /// vcvttps2dq, FMA), whereas Swift's generic SIMD `rounded`, `clamped` and conversions
    /// lower to per-lane calls (measured: SiLU at 86× memcpy time with the SIMD8 version).
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let xc = min(max(x, -87.33654), 88.3762626647949)
        let fx = (xc * 1.44269504088896341 + 0.5).rounded(.down)
        var r = xc - fx * 0.693359375
        r = r - fx * -2.12194440e-4
        var y: Float = 1.9875691500e-4
        y = y * r + 1.3981999507e-3
        y = y * r + 8.3334519073e-3
        y = y * r + 4.1665795894e-2
        y = y * r + 1.6666665459e-1
        y = y * r + 5.0000001201e-1
        y = y * (r * r) + r + 1
        return y * Float(bitPattern: UInt32(bitPattern: Int32(fx) &+ 127) << 23)
    }

    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// out[i] = f(a[i]) as a plain loop for the auto-vectoriser; split across threads when large.
    @inline(__always)
    public static func apply(_ a: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, _ f: (Float) -> Float) {
        Parallel.forRanges(count) { r in
            for i in r { out[i] = f(a[i]) }
        }
    }

    /// out[i] = f(a[i], b[i]) as a plain loop.
    @inline(__always)
    public static func apply(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int,
                             _ f: (Float, Float) -> Float) {
        Parallel.forRanges(count) { r in
            for i in r { out[i] = f(a[i], b[i]) }
        }
    }
}
