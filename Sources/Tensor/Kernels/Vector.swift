/// A pointwise function of one value, as a type: kernels are generic over it, so every use is
/// specialised and the loop vectorised. (A closure handed through `concurrentPerform` stays an
/// indirect call per element: measured 47× slower for SiLU.)
public protocol UnaryFunction {
    func callAsFunction(_ x: Float) -> Float
}

/// A pointwise function of two values (see `UnaryFunction`).
public protocol BinaryFunction {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

public enum Pointwise {
    public struct Add: BinaryFunction { @inline(__always) public func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b } }
    public struct Sub: BinaryFunction { @inline(__always) public func callAsFunction(_ a: Float, _ b: Float) -> Float { a - b } }
    public struct Mul: BinaryFunction { @inline(__always) public func callAsFunction(_ a: Float, _ b: Float) -> Float { a * b } }
    public struct Div: BinaryFunction { @inline(__always) public func callAsFunction(_ a: Float, _ b: Float) -> Float { a / b } }
    /// x·s
    public struct Scale: UnaryFunction {
        let s: Float
        @inline(__always) public func callAsFunction(_ x: Float) -> Float { x * s }
    }
    /// `value` where the mask is non-zero, x elsewhere.
    public struct Fill: BinaryFunction {
        let value: Float
        @inline(__always) public func callAsFunction(_ x: Float, _ m: Float) -> Float { m != 0 ? value : x }
    }
    /// f(x, b) with b fixed (a broadcast scalar operand on the right).
    struct BindRight<F: BinaryFunction>: UnaryFunction {
        let f: F, b: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { f(x, b) }
    }
    /// f(a, x) with a fixed (a broadcast scalar operand on the left).
    struct BindLeft<F: BinaryFunction>: UnaryFunction {
        let f: F, a: Float
        @inline(__always) func callAsFunction(_ x: Float) -> Float { f(a, x) }
    }
}

/// Contiguous Float32 loops over pointwise functions, split across cores when large.
public enum Vector {
    @inline(__always)
    public static func map<F: UnaryFunction>(_ a: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, _ f: F) {
        Parallel.forRanges(count) { r in
            for i in r { out[i] = f(a[i]) }
        }
    }

    @inline(__always)
    public static func zip<F: BinaryFunction>(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                              count: Int, _ f: F) {
        Parallel.forRanges(count) { r in
            for i in r { out[i] = f(a[i], b[i]) }
        }
    }

    /// memcpy split over the cores.
    public static func copy(_ a: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count) { r in (out + r.lowerBound).update(from: a + r.lowerBound, count: r.count) }
    }

    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        zip(a, b, into: out, count: count, Pointwise.Add())
    }

    public static func scale(_ a: UnsafePointer<Float>, by s: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
        map(a, into: out, count: count, Pointwise.Scale(s: s))
    }

    // MARK: reductions
    // LLVM does not vectorise a Float reduction (it may not reassociate), so these keep eight
    // explicit partial sums in a SIMD8 register; SIMD8 + and * lower to single AVX instructions.

    typealias V8 = SIMD8<Float>

    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }

    /// Σ a[i] over a short run (a row).
    @inline(__always)
    public static func rowSum(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V8(), i = 0
        while i + 8 <= n { acc += load8(a + i); i += 8 }
        var s = acc.sum()
        while i < n { s += a[i]; i += 1 }
        return s
    }

    /// Σ a[i]·b[i] over a row.
    @inline(__always)
    public static func rowDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V8(), i = 0
        while i + 8 <= n { acc += load8(a + i) * load8(b + i); i += 8 }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// Σ (a[i] − c)² over a row.
    @inline(__always)
    public static func rowSquaredDeviation(_ a: UnsafePointer<Float>, from c: Float, _ n: Int) -> Float {
        var acc = V8(), i = 0
        let cv = V8(repeating: c)
        while i + 8 <= n { let d = load8(a + i) - cv; acc += d * d; i += 8 }
        var s = acc.sum()
        while i < n { let d = a[i] - c; s += d * d; i += 1 }
        return s
    }

    @inline(__always)
    static func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }

    /// LayerNorm backward for one row of width d, in two passes over it:
    /// with x̂ = (x − μ)·r and h = g·w, dx = r·(h − mean(h) − x̂·mean(h·x̂)) (when `dx` is
    /// given), and dw += g·x̂, db += g into `affine` = [dw | db] (2·d floats, when given).
    @inline(__always)
    public static func layerNormRowBackward(x: UnsafePointer<Float>, g: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
                                            mean mu: Float, inverseDeviation rs: Float, width d: Int,
                                            affine: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?) {
        let dw = affine, db = affine.map { $0 + d }
        let muV = V8(repeating: mu), rsV = V8(repeating: rs)
        var sumH = V8(), sumHXh = V8(), i = 0
        while i + 8 <= d {
            let g8 = load8(g + i), xh = (load8(x + i) - muV) * rsV, h = g8 * load8(w + i)
            if let dw, let db {
                store8(load8(dw + i) + g8 * xh, dw + i)
                store8(load8(db + i) + g8, db + i)
            }
            sumH += h
            sumHXh += h * xh
            i += 8
        }
        var sh = sumH.sum(), shx = sumHXh.sum()
        for j in i..<d {
            let xh = (x[j] - mu) * rs, h = g[j] * w[j]
            if let dw, let db { dw[j] += g[j] * xh; db[j] += g[j] }
            sh += h
            shx += h * xh
        }
        guard let dx else { return }
        let a = sh / Float(d), c = shx / Float(d)
        let aV = V8(repeating: a), cV = V8(repeating: c)
        i = 0
        while i + 8 <= d {
            let xh = (load8(x + i) - muV) * rsV, h = load8(g + i) * load8(w + i)
            store8(rsV * (h - aV - xh * cV), dx + i)
            i += 8
        }
        for j in i..<d { dx[j] = rs * (g[j] * w[j] - a - (x[j] - mu) * rs * c) }
    }

    /// max a[i] over a row (−∞ for an empty row).
    @inline(__always)
    public static func rowMax(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = V8(repeating: -.infinity), i = 0
        while i + 8 <= n { acc = pointwiseMax(acc, load8(a + i)); i += 8 }
        var m = acc.max()
        while i < n { m = max(m, a[i]); i += 1 }
        return m
    }

    /// Sum with a Float64 accumulator over a whole array (reductions over a batch need it).
    public static func sum(_ a: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0, start = 0
        while start < count {
            let n = min(count - start, 4096)
            total += Double(rowSum(a + start, n))
            start += n
        }
        return total
    }

    /// Sum of squares with a Float64 accumulator (gradient norms).
    public static func sumOfSquares(_ a: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0, start = 0
        while start < count {
            let n = min(count - start, 4096)
            total += Double(rowDot(a + start, a + start, n))
            start += n
        }
        return total
    }

    // MARK: transcendental functions

    /// e^x: Cody–Waite range reduction to [−ln2/2, ln2/2] and a degree-6 polynomial (Cephes
    /// expf coefficients), about 1 ulp; saturating below −87.3 and above 88.37.
    ///
    /// Written as plain scalar code on purpose: LLVM vectorises loops over it (vroundps,
    /// vcvttps2dq, FMA), whereas Swift's generic SIMD `rounded`, `clamped` and conversions
    /// lower to per-lane calls (measured: SiLU at 86× memcpy time with the SIMD8 version).
    /// `addingProduct` is a fused multiply-add: Swift never contracts a·b + c by itself.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let xc = min(max(x, -87.33654), 88.3762626647949)
        let fx = Float(0.5).addingProduct(xc, 1.44269504088896341).rounded(.down)
        let r = xc.addingProduct(fx, -0.693359375).addingProduct(fx, 2.12194440e-4)
        var y: Float = 1.9875691500e-4
        y = Float(1.3981999507e-3).addingProduct(y, r)
        y = Float(8.3334519073e-3).addingProduct(y, r)
        y = Float(4.1665795894e-2).addingProduct(y, r)
        y = Float(1.6666665459e-1).addingProduct(y, r)
        y = Float(5.0000001201e-1).addingProduct(y, r)
        y = (r + 1).addingProduct(y, r * r)
        // 2^fx without a float→int conversion (which traps on NaN): adding 1.5·2²³ puts the
        // integer fx in the low mantissa bits. A NaN input stays NaN instead of crashing.
        let n = (fx + 12_582_912).bitPattern &- 0x4B40_0000
        return y * Float(bitPattern: (n &+ 127) << 23)
    }

    @inline(__always)
    public static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// √x for x ≥ 0 in plain arithmetic (vectorisable, unlike `squareRoot()` with its errno
    /// fallback): the classic bit-level estimate of 1/√x refined by three Newton steps
    /// (relative error ~1e-7), times x. Exactly 0 for x = 0.
    @inline(__always)
    public static func sqrt(_ x: Float) -> Float {
        var y = Float(bitPattern: 0x5F37_59DF &- (x.bitPattern >> 1))
        let half = 0.5 * x
        y = y * (1.5 - half * y * y)
        y = y * (1.5 - half * y * y)
        y = y * (1.5 - half * y * y)
        return x * y
    }
}
