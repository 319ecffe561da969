import Foundation
import Tensor

/// Every op of the engine run on a device and on the CPU from the same random inputs: the
/// forward result and every input's gradient compared (‖device − cpu‖∞ / ‖cpu‖∞), plus an
/// AdamW update and the gradient norm. `gpu-check` runs it on a GPU at `.large` sizes; the
/// tests run it on the host emulation of the CUDA kernels at `.small` sizes.
public struct BackendComparison {
    public struct Check: Encodable {
        public let name: String
        public let shape: [Int]
        public let relativeError: Double
        public let tolerance: Double
        public var passed: Bool { relativeError <= tolerance }

        enum CodingKeys: String, CodingKey { case name, shape, relativeError = "relative_error", tolerance, passed }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(shape, forKey: .shape)
            try c.encode(relativeError, forKey: .relativeError)
            try c.encode(tolerance, forKey: .tolerance)
            try c.encode(passed, forKey: .passed)
        }
    }

    /// Problem sizes: `.small` for the host emulation (every GPU thread a host thread), `.large`
    /// for a GPU (past one grid's worth of elements, odd sizes).
    public enum Size { case small, large }

    /// Norm-relative tolerances: elementwise results, and results that sum over a row or column.
    public static let elementwiseTolerance = 1e-5, reductionTolerance = 1e-4

    public let device: Device
    public let size: Size

    public init(device: Device, size: Size) {
        self.device = device
        self.size = size
    }

    public static func relativeError(_ a: [Float], _ reference: [Float]) -> Double {
        guard a.count == reference.count else { return .infinity }
        var worst = 0.0, scale = 1e-30
        for (x, y) in zip(a, reference) {
            worst = max(worst, x.isFinite ? abs(Double(x) - Double(y)) : .infinity)
            scale = max(scale, abs(Double(y)))
        }
        return worst / scale
    }

    func random(_ shape: [Int], _ rng: RandomGenerator, _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        Tensor((0..<shape.reduce(1, *)).map { _ in lo + (hi - lo) * rng.uniformFloat() }, shape: shape, on: .cpu)
    }

    /// `op` on CPU copies and on device copies of `inputs`; the output and each input's gradient
    /// (from the same random output gradient) compared.
    func compare(_ name: String, _ inputs: [Tensor], _ rng: RandomGenerator, tolerance: Double, gradients: Bool = true,
                 _ op: ([Tensor]) -> Tensor) -> [Check] {
        func run(on d: Device, seed: Tensor?) -> (out: Tensor, grads: [[Float]], seed: Tensor) {
            let xs = inputs.map { Tensor($0.array, shape: $0.shape, on: d) }
            if gradients { for x in xs { x.requiresGrad = true } }
            let out = gradients ? op(xs) : withoutGrad { op(xs) }
            let g = seed ?? random(out.shape, rng)
            if gradients { out.backward(seed: g.to(d)) }
            return (out, gradients ? xs.map { $0.grad?.array ?? [] } : [], g)
        }
        let reference = run(on: .cpu, seed: nil), other = run(on: device, seed: reference.seed)
        var checks = [Check(name: name, shape: reference.out.shape, relativeError: Self.relativeError(other.out.array, reference.out.array), tolerance: tolerance)]
        for (i, (a, b)) in zip(other.grads, reference.grads).enumerated() where !b.isEmpty {
            checks.append(Check(name: "\(name) ∂input\(i)", shape: inputs[i].shape, relativeError: Self.relativeError(a, b), tolerance: Self.reductionTolerance))
        }
        return checks
    }

    public func all(seed: UInt64) -> [Check] {
        let rng = RandomGenerator(seed: seed)
        let large = size == .large
        func n(_ small: ClosedRange<Int>, _ big: ClosedRange<Int>) -> Int { rng.int(in: large ? big : small) }
        let e = Self.elementwiseTolerance, r = Self.reductionTolerance
        var out: [Check] = []

        // Pointwise, on more elements than one grid covers on the GPU.
        let count = n(1...700, 1...3_000_000) | 1
        for (name, f) in [("relu", { (x: Tensor) in x.relu() }), ("sigmoid", { $0.sigmoid() }), ("silu", { $0.silu() }), ("gelu", { $0.gelu() }),
                          ("scaled", { $0.scaled(-0.75) }), ("dropout", { $0.dropout(0.1, seed: 42) })] as [(String, (Tensor) -> Tensor)] {
            out += compare(name, [random([count], rng, -6, 6)], rng, tolerance: e) { f($0[0]) }
        }
        let (rows, width) = (n(1...9, 1...3000), n(1...40, 1...700))
        // Enough rows for several chunks of the column sums (32 rows each at least).
        let normRows = n(33...130, 1000...20000)
        out += compare("glu", [random([rows, 2 * width], rng, -4, 4)], rng, tolerance: e) { $0[0].glu() }
        // Broadcasting arithmetic: a bias row, a per-row column, and equal shapes.
        let a = random([rows, 3, width], rng), bias = random([width], rng), column = random([rows, 1, 1], rng, 0.5, 2)
        out += compare("add (row broadcast)", [a, bias], rng, tolerance: e) { $0[0] + $0[1] }
        out += compare("multiply (column broadcast)", [a, column], rng, tolerance: e) { $0[0] * $0[1] }
        out += compare("divide", [a, random([rows, 3, width], rng, 0.5, 2)], rng, tolerance: e) { $0[0] / $0[1] }
        out += compare("subtract", [a, random([rows, 3, width], rng)], rng, tolerance: e) { $0[0] - $0[1] }
        out += compare("permuted", [a], rng, tolerance: e) { $0[0].permuted([2, 0, 1]) }
        out += compare("expanded", [bias], rng, tolerance: r) { $0[0].reshaped([1, width]).expanded(to: [rows, width]) }
        out += compare("summed (inner)", [a], rng, tolerance: r) { $0[0].summed(toShape: [1, 3, 1]) }
        out += compare("summed (leading)", [random([normRows, 2, width], rng)], rng, tolerance: r) { $0[0].summed(toShape: [2, width]) }
        out += compare("mean", [a], rng, tolerance: r) { $0[0].mean() }
        out += compare("padded and concatenated", [a, a], rng, tolerance: e) {
            Tensor.concat([$0[0].padded(axis: 1, before: 1, after: 2), $0[1]], axis: 1)
        }
        out += compare("gatherRows", [random([rows + 2, width], rng)], rng, tolerance: e) { $0[0].gatherRows([1, 0, 1, rows + 1]) }

        // Rows: softmax with NeMo's mask, log-softmax into a loss, LayerNorm, BatchNorm.
        let (b, t, h, dk) = (n(1...2, 2...8), n(2...9, 20...300), n(1...2, 2...8), n(2...5, 16...64))
        let lengths = (0..<b).map { $0 == 0 ? t : rng.int(in: 1...t) }
        let mask = Tensor.attentionMask(lengths: lengths, length: t)
        out += compare("softmax (masked)", [random([b, h, t, t], rng, -5, 5)], rng, tolerance: e) { $0[0].softmax(mask: mask.to($0[0].device)) }
        out += compare("logSoftmax", [random([rows, width + 1], rng, -5, 5)], rng, tolerance: e) { $0[0].logSoftmax() }
        out += compare("nllLoss", [random([rows + 1, width + 1], rng, -5, 5)], rng, tolerance: r) {
            $0[0].logSoftmax().gatherRows([0, rows, 0]).nllLoss(targets: [width, 0, width])
        }
        let scores = random([rows, width + 1], rng, -5, 5)
        out += compare("rowArgmax", [scores], rng, tolerance: 0) { $0[0].rowArgmax() }
        let books = n(1...2, 1...2), codeWidth = n(2...8, 16...16), classes = n(3...20, 256...1024)
        let projected = random([rows, books * codeWidth], rng, -1, 1)
        out += compare("l2NormalizedGroups", [projected], rng, tolerance: e) { $0[0].l2NormalizedGroups(width: codeWidth) }
        let codes = (0..<(books * classes * codeWidth)).map { _ in rng.uniform(-1, 1) }
        for cosine in [false, true] {
            out += compare("nearestCodes (\(cosine ? "cosine" : "l2"))", [projected], rng, tolerance: 0) {
                $0[0].nearestCodes(codebooks: codes, books: books, classes: classes, cosine: cosine)
            }
        }
        out += compare("layerNorm", [random([normRows, width], rng), random([width], rng), random([width], rng)], rng, tolerance: r) {
            $0[0].layerNorm(weight: $0[1], bias: $0[2])
        }
        for training in [true, false] {
            out += compare("batchNorm (\(training ? "training" : "evaluation"))", [random([normRows, width], rng, -2, 3), random([width], rng), random([width], rng)],
                           rng, tolerance: r) { x in
                x[0].batchNorm(weight: x[1], bias: x[2], runningMean: Tensor(zeros: [width], on: x[0].device),
                               runningVar: Tensor(repeating: 1, shape: [width], on: x[0].device), training: training)
            }
        }

        // Products.
        let (m, k, cols) = (n(1...12, 100...1500), n(1...12, 100...1500), n(1...12, 100...1500))
        out += compare("linear", [random([m, k], rng), random([cols, k], rng), random([cols], rng)], rng, tolerance: r) {
            Tensor.linear($0[0], weight: $0[1], bias: $0[2])
        }
        out += compare("matmul (batched, transposed)", [random([3, m, k], rng), random([3, cols, k], rng)], rng, tolerance: r) {
            Tensor.matmul($0[0], $0[1], transposeB: true)
        }
        let positions = random([2 * t - 1, h, dk], rng), q = random([b, t, h, dk], rng), kk = random([b, t, h, dk], rng)
        let u = random([h, dk], rng), v = random([h, dk], rng)
        out += compare("relPositionScores", [q, kk, positions, u, v], rng, tolerance: r) {
            Tensor.relPositionScores(q: $0[0], k: $0[1], p: $0[2], biasU: $0[3], biasV: $0[4], scale: 0.5)
        }
        out += compare("attentionContext", [random([b, h, t, t], rng), kk], rng, tolerance: r) { Tensor.attentionContext($0[0], $0[1]) }
        let (left, right) = (rng.int(in: 0...3), rng.int(in: 0...2))
        out += compare("bandedRelPositionScores", [q, kk, positions, u, v], rng, tolerance: r) {
            Tensor.bandedRelPositionScores(q: $0[0], k: $0[1], p: $0[2], biasU: $0[3], biasV: $0[4], scale: 0.5, left: left, right: right)
        }
        out += compare("bandedAttentionContext", [random([b, h, t, left + right + 1], rng), kk], rng, tolerance: r) {
            Tensor.bandedAttentionContext($0[0], $0[1], left: left)
        }
        // Weight gradients sum over the output rows (b, oh) in chunks of 32 rows at least: tall
        // enough inputs for several chunks.
        let (cin, cout, hh, ww) = (n(1...3, 1...8), n(1...4, 8...64), n(65...140, 40...200), n(3...7, 20...80))
        out += compare("conv2d (stride 2, padding 1)", [random([b, cin, hh, ww], rng), random([cout, cin, 3, 3], rng), random([cout], rng)], rng, tolerance: r) {
            $0[0].conv2d(weight: $0[1], bias: $0[2], Conv2dGeometry(stride: (2, 2), padding: (1, 1))).relu()
        }
        out += compare("conv2d (pointwise 1×1)", [random([b, cout, hh, ww], rng), random([cin + 1, cout, 1, 1], rng), random([cin + 1], rng)], rng, tolerance: r) {
            $0[0].conv2d(weight: $0[1], bias: $0[2], Conv2dGeometry())
        }
        out += compare("conv2d (depthwise)", [random([b, cout, hh, ww], rng), random([cout, 1, 3, 3], rng)], rng, tolerance: r) {
            $0[0].conv2d(weight: $0[1], bias: nil, Conv2dGeometry(stride: (2, 2), padding: (1, 1), groups: cout))
        }
        let channels = n(1...6, 64...512), kernel = n(1...5, 3...31) | 1, frames = n(33...80, 20...300)
        out += compare("depthwiseConv1d", [random([b, frames, channels], rng), random([channels, 1, kernel], rng), random([channels], rng)], rng, tolerance: r) {
            $0[0].depthwiseConv1d(weight: $0[1], bias: $0[2], left: (kernel - 1) / 2, right: (kernel - 1) / 2)
        }

        // The optimizer: three AdamW steps from the same gradients (the change of the weights),
        // and the gradient norm the step clips with.
        let weights = random([count], rng), gradients = (0..<3).map { _ in random([count], rng) }
        func adamw(on d: Device) -> [Float] {
            let w = Tensor(weights.array, shape: weights.shape, on: d)
            w.requiresGrad = true
            let optimizer = AdamW(parameters: [("w", w)], settings: .init(betas: (0.9, 0.98), eps: 1e-8, weightDecay: 1e-3))
            for g in gradients {
                w.grad = g.to(d)
                optimizer.update(lr: 1e-3)
            }
            return zip(w.array, weights.array).map { $0 - $1 }
        }
        out.append(Check(name: "adamw (3 steps, the change)", shape: [count], relativeError: Self.relativeError(adamw(on: device), adamw(on: .cpu)), tolerance: r))
        let squared = [weights, random([rows, width], rng)]
        let norms = device.backend.sumsOfSquares(squared.map { $0.to(device) }).map(Float.init)
        out.append(Check(name: "sumsOfSquares", shape: [count], relativeError: Self.relativeError(norms, Device.cpu.backend.sumsOfSquares(squared).map(Float.init)),
                         tolerance: r))
        return out
    }
}
