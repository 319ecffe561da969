import Foundation

/// The CPU's memory (`BufferPool`) and kernels: the reference every other backend is checked
/// against. Kernels are split by family over the files of this folder; this one holds memory,
/// moving values and the pointwise kernels.
public class CPUBackend: Backend {
    let pool: BufferPool

    public init(pool: BufferPool = .shared) { self.pool = pool }

    public func allocate(_ count: Int) -> (address: UnsafeMutablePointer<Float>, capacity: Int) {
        let (address, capacity) = pool.acquire(count)
        return (address, capacity)
    }

    public func release(_ address: UnsafeMutablePointer<Float>, capacity: Int) { pool.release(address, capacity: capacity) }
    public var isHostMemory: Bool { true }

    public func copy(fromHost source: UnsafePointer<Float>, to storage: Storage, offset: Int, count: Int) {
        Vector.copy(source, into: storage.address + offset, count: count)
    }

    public func copy(from storage: Storage, offset: Int, toHost destination: UnsafeMutablePointer<Float>, count: Int) {
        Vector.copy(storage.address + offset, into: destination, count: count)
    }

    public func endStep() { pool.endStep() }
    public var memory: DeviceMemory { pool.statistics }
    public var activity: DeviceActivity? { nil }
}

// MARK: moving values

extension CPUBackend {
    public func fill(_ t: Tensor, with value: Float) { t.address.update(repeating: value, count: t.count) }

    public func copy(_ src: Tensor, offset srcOffset: Int, into dst: Tensor, offset dstOffset: Int, count: Int) {
        Vector.copy(src.address + srcOffset, into: dst.address + dstOffset, count: count)
    }

    public func copyBlocks(from src: Tensor, axis: Int, offset so: Int, to dst: Tensor, offset d: Int, length: Int) {
        let (outer, srcLen, inner) = src.split(at: axis)
        let dstLen = dst.shape[axis]
        let block = length * inner
        for o in 0..<outer {
            (dst.address + (o * dstLen + d) * inner).update(from: src.address + (o * srcLen + so) * inner, count: block)
        }
    }

    public func gatherRows(_ x: Tensor, _ indices: [Int], into out: Tensor) {
        let rowSize = x.count / max(x.shape[0], 1)
        for (r, i) in indices.enumerated() { (out.address + r * rowSize).update(from: x.address + i * rowSize, count: rowSize) }
    }

    public func scatterAddRows(_ g: Tensor, _ indices: [Int], into out: Tensor) {
        let rowSize = out.count / max(out.shape[0], 1), o = out.address
        for (r, i) in indices.enumerated() { Vector.add(o + i * rowSize, g.address + r * rowSize, into: o + i * rowSize, count: rowSize) }
    }

    public func expand(_ x: Tensor, into out: Tensor) {
        let target = out.shape
        let loop = BroadcastLoop(shape: target, stridesA: Shape.broadcastStrides(x.shape, to: target),
                                 stridesB: [Int](repeating: 0, count: target.count))
        let src = x.address, dst = out.address
        loop.forEachRun(inParallel: true) { oa, _, oo, n, sa, _ in
            if sa == 1 { (dst + oo).update(from: src + oa, count: n) }
            else if sa == 0 { (dst + oo).update(repeating: src[oa], count: n) }
            else { for i in 0..<n { dst[oo + i] = src[oa + i * sa] } }
        }
    }

    public func permute(_ x: Tensor, _ order: [Int], into out: Tensor) {
        let inStrides = Shape.strides(x.shape)
        let loop = BroadcastLoop(shape: out.shape, stridesA: order.map { inStrides[$0] },
                                 stridesB: [Int](repeating: 0, count: x.rank))
        let src = x.address, dst = out.address
        loop.forEachRun(inParallel: true) { oa, _, oo, n, sa, _ in
            if sa == 1 { (dst + oo).update(from: src + oa, count: n) }
            else { for i in 0..<n { dst[oo + i] = src[oa + i * sa] } }
        }
    }

    public func sumToShape(_ x: Tensor, into out: Tensor) {
        out.address.update(repeating: 0, count: out.count)
        let loop = BroadcastLoop(shape: x.shape, stridesA: Shape.broadcastStrides(out.shape, to: x.shape),
                                 stridesB: Shape.strides(x.shape))
        let src = x.address, dst = out.address
        loop.forEachRun { oa, _, oo, n, sa, _ in
            if sa == 0 {
                dst[oa] += Float(Vector.sum(src + oo, count: n))
            } else if sa == 1 {
                Vector.add(dst + oa, src + oo, into: dst + oa, count: n)
            } else {
                for i in 0..<n { dst[oa + i * sa] += src[oo + i] }
            }
        }
    }

    public func elements(_ x: Tensor, at indices: [Int]) -> [Float] { indices.map { x.address[$0] } }

}

// MARK: pointwise

extension CPUBackend {
    public func unary(_ f: UnaryKernel, _ x: Tensor, into out: Tensor) {
        switch f {
        case .scale(let s): Vector.scale(x.address, by: s, into: out.address, count: x.count)
        }
    }

    public func binary(_ f: BinaryKernel, _ a: Tensor, _ b: Tensor, into out: Tensor) {
        switch f {
        case .add: broadcasting(a, b, out, Pointwise.Add())
        case .subtract: broadcasting(a, b, out, Pointwise.Sub())
        case .multiply: broadcasting(a, b, out, Pointwise.Mul())
        case .divide: broadcasting(a, b, out, Pointwise.Div())
        case .fill(let value): broadcasting(a, b, out, Pointwise.Fill(value: value))
        }
    }

    /// out = f(a, b) with NumPy broadcasting, specialised on f.
    private func broadcasting<F: BinaryFunction>(_ a: Tensor, _ b: Tensor, _ out: Tensor, _ f: F) {
        if a.shape == b.shape {
            Vector.zip(a.address, b.address, into: out.address, count: out.count, f)
            return
        }
        let loop = BroadcastLoop(shape: out.shape, stridesA: Shape.broadcastStrides(a.shape, to: out.shape),
                                 stridesB: Shape.broadcastStrides(b.shape, to: out.shape))
        let pa = a.address, pb = b.address, po = out.address
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
    }

    public func activationForward(_ f: ActivationFunction, _ x: Tensor, into y: Tensor) {
        switch f {
        case .relu: Vector.map(x.address, into: y.address, count: x.count, Activations.ReLU())
        case .sigmoid: Vector.map(x.address, into: y.address, count: x.count, Activations.Sigmoid())
        case .silu: Vector.map(x.address, into: y.address, count: x.count, Activations.SiLU())
        case .gelu: Vector.map(x.address, into: y.address, count: x.count, Activations.GELU())
        }
    }

    public func activationBackward(_ f: ActivationFunction, saved: Tensor, _ g: Tensor, into dx: Tensor) {
        switch f {
        case .relu: derivativeTimes(Activations.ReLU(), saved, g, dx)
        case .sigmoid: derivativeTimes(Activations.Sigmoid(), saved, g, dx)
        case .silu: derivativeTimes(Activations.SiLU(), saved, g, dx)
        case .gelu: derivativeTimes(Activations.GELU(), saved, g, dx)
        }
    }

    private func derivativeTimes<A: Activation>(_ f: A, _ saved: Tensor, _ g: Tensor, _ dx: Tensor) {
        let v = saved.address, gp = g.address, dp = dx.address
        Parallel.forRanges(g.count) { r in
            for i in r { dp[i] = gp[i] * f.derivative(v[i]) }
        }
    }

    public func gluForward(_ x: Tensor, into y: Tensor) {
        let twoC = x.shape[x.rank - 1], c = twoC / 2, rows = x.count / twoC
        let xp = x.address, yp = y.address
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1))) { r in
            for row in r {
                let a = xp + row * twoC, y = yp + row * c
                for i in 0..<c { y[i] = a[i] * Vector.sigmoid(a[c + i]) }
            }
        }
    }

    public func gluBackward(_ x: Tensor, _ g: Tensor, into dx: Tensor) {
        let twoC = x.shape[x.rank - 1], c = twoC / 2, rows = x.count / twoC
        let xp = x.address, dxp = dx.address, gy = g.address
        Parallel.forRanges(rows, grain: max(1, 16_384 / max(c, 1))) { r in
            for row in r {
                let a = xp + row * twoC, d = dxp + row * twoC, gr = gy + row * c
                for i in 0..<c {
                    let s = Vector.sigmoid(a[c + i])
                    d[i] = gr[i] * s
                    d[c + i] = gr[i] * a[i] * s * (1 - s)
                }
            }
        }
    }

    /// Element i draws 32 bits from a counter-based hash of (i, seed) and is dropped when they
    /// fall below p·2³²; any element's decision is computable on its own, so both directions
    /// split the tensor freely across threads.
    ///
    /// The hash is two rounds of MurmurHash3's 32-bit finaliser, keyed by the two halves of the
    /// seed: 32-bit multiplies vectorise on AVX2 (8 lanes), where the 64-bit SplitMix64 this
    /// replaced ran scalar (AVX2 has no 64-bit vector multiply): 4.3 % of a large step before.
    /// One branch-free loop: a data-dependent branch would mispredict p of the time.
    public func dropout(_ x: Tensor, into y: Tensor, _ mask: DropoutMask) {
        let count = x.count, rows = mask.rows, xp = x.address, yp = y.address
        let rowSize = rows.map { count / max($0.count, 1) } ?? max(count, 1)
        precondition(((rows?.max() ?? 0) + 1) * rowSize <= Int(UInt32.max), "dropout indexes elements with 32 bits")
        let scale = 1 / (1 - mask.p)
        let threshold = UInt32(min(Double(mask.p) * 4_294_967_296, 4_294_967_295))
        let k0 = UInt32(truncatingIfNeeded: mask.seed), k1 = UInt32(truncatingIfNeeded: mask.seed >> 32)
        Parallel.forRanges(count, grain: 16_384) { r in
            // Row by row: element i of row b hashes its index in row rows[b] of the batch.
            var start = r.lowerBound
            while start < r.upperBound {
                let row = start / rowSize, end = min(r.upperBound, (row + 1) * rowSize)
                let shift = UInt32(truncatingIfNeeded: ((rows?[row] ?? row) - row) * rowSize)
                for i in start..<end {
                    let bits = Self.mix32(Self.mix32((UInt32(truncatingIfNeeded: i) &+ shift) ^ k0) ^ k1)
                    yp[i] = bits < threshold ? 0 : xp[i] * scale
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
