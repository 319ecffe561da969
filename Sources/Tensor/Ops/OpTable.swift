/// Every op of the engine in one table: a name, inputs drawn at a size, how to call it, and how
/// closely a second backend must agree with the CPU. The table drives the three checks every op
/// passes, so a new op is one entry here:
/// - finite differences of its gradients (`TensorTests/GradientTests`, at `.finiteDifferences`);
/// - bit identity on the checking device, forward and backward (`TensorTests/BackendSeamTests`);
/// - a second backend against the CPU (`BackendComparison`: the CUDA backend on the host
///   emulation in the tests, on a GPU in `gpu-check`).
///
/// Checks that need more than one call (the gelu reference values, dropout's statistics, the
/// banded attention against the dense one, AdamW) stay beside the test they belong to.
public struct OpCase {
    /// How a second backend's result may differ from the CPU's (norm-relative): elementwise
    /// results, results that sum over a row or column, and integer results.
    public enum Agreement: Sendable { case elementwise, reduction, exact }

    public let name: String
    /// On the CPU; callers move them where they run.
    public let inputs: [Tensor]
    public let agreement: Agreement
    /// The op on inputs of any device (it creates what it needs on its inputs' device).
    public let call: ([Tensor]) -> Tensor
}

public enum OpTable {
    /// Problem sizes: `.finiteDifferences` (a handful of elements per input: every element is
    /// perturbed twice), `.small` (the host emulation of the GPU kernels: every GPU thread a host
    /// thread) and `.large` (a GPU: past one grid's worth of elements, odd sizes).
    public enum Size: Sendable { case finiteDifferences, small, large }

    /// The table at `size`, its sizes and values drawn from `seed`.
    public static func cases(size: Size, seed: UInt64) -> [OpCase] {
        let table = Entries(size: size, rng: RandomGenerator(seed: seed))
        table.elementwiseOps()
        table.layoutOps()
        table.rowOps()
        table.productOps()
        return table.cases
    }

    /// Collects the entries, one family per method, drawing their sizes and values. Each family
    /// binds the shared sizes it uses to locals, which its entries' calls capture by value.
    final class Entries {
        let size: Size, rng: RandomGenerator
        private(set) var cases: [OpCase] = []
        /// Sizes the families share: rows and widths of 2-D operands, a row count that spans
        /// several chunks of the column sums (32 rows each at least), a batch of utterances with
        /// frames, heads and head widths.
        let rows: Int, width: Int, normRows: Int, b: Int, t: Int, h: Int, dk: Int, frames: Int
        /// A [rows, 3, width] operand and a [width] bias row, for broadcasting and layout.
        let a: Tensor, bias: Tensor

        init(size: Size, rng: RandomGenerator) {
            (self.size, self.rng) = (size, rng)
            func n(_ small: ClosedRange<Int>, _ large: ClosedRange<Int>) -> Int { Entries.draw(size, rng, small, large) }
            (rows, width, normRows) = (n(1...9, 1...3000), n(1...40, 1...700), n(33...130, 1000...20000))
            (b, t, h, dk, frames) = (n(1...2, 2...8), n(2...9, 20...300), n(1...2, 2...8), n(2...5, 16...64), n(2...9, 50...400))
            a = Entries.random([rows, 3, width], rng)
            bias = Entries.random([width], rng)
        }

        /// A size from `small`, or from `large` on a GPU; the smallest ones for finite differences.
        func n(_ small: ClosedRange<Int>, _ large: ClosedRange<Int>) -> Int { Entries.draw(size, rng, small, large) }

        static func draw(_ size: Size, _ rng: RandomGenerator, _ small: ClosedRange<Int>, _ large: ClosedRange<Int>) -> Int {
            switch size {
            case .finiteDifferences: return min(small.lowerBound + 2, small.upperBound)
            case .small: return rng.int(in: small)
            case .large: return rng.int(in: large)
            }
        }

        func random(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor { Entries.random(shape, rng, lo, hi) }

        static func random(_ shape: [Int], _ rng: RandomGenerator, _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
            Tensor((0..<shape.reduce(1, *)).map { _ in lo + (hi - lo) * rng.uniformFloat() }, shape: shape, on: .cpu)
        }

        func add(_ name: String, _ inputs: [Tensor], _ agreement: OpCase.Agreement, _ call: @escaping ([Tensor]) -> Tensor) {
            cases.append(OpCase(name: name, inputs: inputs, agreement: agreement, call: call))
        }

        /// Pointwise ops, on more elements than one grid covers on the GPU, and broadcasting
        /// arithmetic.
        func elementwiseOps() {
            let (rows, width, a, bias) = (self.rows, self.width, self.a, self.bias)
            let count = n(1...700, 1...3_000_000) | 1
            for (name, f) in [("relu", { (x: Tensor) in x.relu() }), ("sigmoid", { $0.sigmoid() }), ("silu", { $0.silu() }), ("gelu", { $0.gelu() }),
                              ("scaled", { $0.scaled(-0.75) }), ("dropout", { $0.dropout(0.1, seed: 42) })] as [(String, (Tensor) -> Tensor)] {
                add(name, [random([count], -6, 6)], .elementwise) { f($0[0]) }
            }
            add("dropout (rows of a larger batch)", [random([2, width + 1])], .elementwise) { $0[0].dropout(0.3, seed: 4, rows: [3, 9]) }
            add("glu", [random([rows, 2 * width], -4, 4)], .elementwise) { $0[0].glu() }

            // Broadcasting arithmetic: a bias row, a per-row column, and equal shapes.
            let column = random([rows, 1, 1], 0.5, 2)
            add("add (row broadcast)", [a, bias], .elementwise) { $0[0] + $0[1] }
            add("multiply (column broadcast)", [a, column], .elementwise) { $0[0] * $0[1] }
            add("divide", [a, random([rows, 3, width], 0.5, 2)], .elementwise) { $0[0] / $0[1] }
            add("subtract (column broadcast)", [a, column], .elementwise) { $0[0] - $0[1] }
        }

        /// Layout, reductions, gathers and the data path's frame ops.
        func layoutOps() {
            let (rows, width, normRows, frames, a, bias) = (self.rows, self.width, self.normRows, self.frames, self.a, self.bias)
            add("reshaped", [a], .elementwise) { $0[0].reshaped([rows * 3, -1]) * $0[0].reshaped([rows * 3, width]) }
            add("permuted", [a], .elementwise) { $0[0].permuted([2, 0, 1]) }
            add("transposed", [a], .elementwise) { $0[0].transposed(0, 2) }
            add("slice", [a], .elementwise) { $0[0].slice(axis: 1, 1..<3) }
            add("expanded", [bias], .reduction) { $0[0].reshaped([1, width]).expanded(to: [rows, width]) }
            add("summed (inner)", [a], .reduction) { $0[0].summed(toShape: [1, 3, 1]) }
            add("summed (leading)", [random([normRows, 2, width])], .reduction) { $0[0].summed(toShape: [2, width]) }
            add("sum (axis 1)", [a], .reduction) { $0[0].sum(axes: [1]) }
            add("mean (axes 0 and 2, kept)", [a], .reduction) { $0[0].mean(axes: [0, 2], keepDims: true) }
            add("mean", [a], .reduction) { $0[0].mean() }
            add("padded and concatenated", [a, a], .elementwise) { Tensor.concat([$0[0].padded(axis: 1, before: 1, after: 2), $0[1]], axis: 1) }
            add("gatherRows (repeated)", [random([rows + 2, width])], .elementwise) { $0[0].gatherRows([1, 0, 1, rows + 1]) }
            let fillMask = Tensor((0..<width).map { Float($0 % 2) }, shape: [width])
            add("maskedFill", [a], .elementwise) { $0[0].maskedFill(fillMask.to($0[0].device), with: -3) }
            let features = n(1...8, 64...128)
            let frameMask = (0..<(2 * frames)).map { _ in Float(rng.int(in: 0...1)) }
            add("replacingFrames", [random([2, features, frames]), random([features])], .elementwise) {
                $0[0].replacingFrames(mask: frameMask, with: $0[1])
            }
            add("paddingLastDimension", [random([2, features, frames])], .elementwise) { $0[0].paddingLastDimension(to: frames + 3) }
        }

        /// Ops over rows: softmax with NeMo's mask, log-softmax into a loss, the quantizer's
        /// search, LayerNorm, BatchNorm, GroupNorm.
        func rowOps() {
            let (rows, width, normRows, b, t, h, frames) = (self.rows, self.width, self.normRows, self.b, self.t, self.h, self.frames)
            let lengths = (0..<b).map { $0 == 0 ? t : rng.int(in: 1...t) }
            let attentionMask = Tensor.attentionMask(lengths: lengths, length: t)
            add("softmax (masked)", [random([b, h, t, t], -5, 5)], .elementwise) { $0[0].softmax(mask: attentionMask.to($0[0].device)) }
            add("softmax", [random([rows, width + 1], -5, 5)], .elementwise) { $0[0].softmax() }
            add("logSoftmax", [random([rows, width + 1], -5, 5)], .elementwise) { $0[0].logSoftmax() }
            add("nllLoss", [random([rows + 1, width + 1], -5, 5)], .reduction) {
                $0[0].logSoftmax().gatherRows([0, rows, 0]).nllLoss(targets: [width, 0, width])
            }
            let targets = Tensor((0...rows).map { Float($0 % (width + 1)) }, shape: [rows + 1])
            add("nllLoss (device targets)", [random([rows + 1, width + 1], -5, 5)], .reduction) {
                $0[0].logSoftmax().nllLoss(targets: targets.to($0[0].device))
            }
            let scores = random([rows, width + 1], -5, 5)
            add("rowArgmax", [scores], .exact) { $0[0].rowArgmax() }
            add("gatheringColumns", [scores], .elementwise) { x in x[0].gatheringColumns(targets.slice(axis: 0, 0..<rows).to(x[0].device)) }
            let books = n(1...2, 1...2), codeWidth = n(2...8, 16...16), classes = n(3...20, 256...1024)
            let projected = random([rows, books * codeWidth], -1, 1)
            add("l2NormalizedGroups", [projected], .elementwise) { $0[0].l2NormalizedGroups(width: codeWidth) }
            let codes = (0..<(books * classes * codeWidth)).map { _ in rng.uniform(-1, 1) }
            for cosine in [false, true] {
                add("nearestCodes (\(cosine ? "cosine" : "l2"))", [projected], .exact) {
                    $0[0].nearestCodes(codebooks: Tensor(doubles: codes, on: $0[0].device), books: books, classes: classes, cosine: cosine)
                }
            }
            add("layerNorm", [random([normRows, width]), random([width]), random([width])], .reduction) { $0[0].layerNorm(weight: $0[1], bias: $0[2]) }
            for training in [true, false] {
                add("batchNorm (\(training ? "training" : "evaluation"))", [random([normRows, width], -2, 3), random([width]), random([width])], .reduction) { x in
                    x[0].batchNorm(weight: x[1], bias: x[2], runningMean: Tensor(zeros: [width], on: x[0].device),
                                   runningVar: Tensor(repeating: 1, shape: [width], on: x[0].device), training: training)
                }
            }
            let groups = 2, groupChannels = 2 * n(1...3, 16...64)
            add("groupNorm", [random([b, frames, groupChannels], -2, 2), random([groupChannels]), random([groupChannels])], .reduction) {
                $0[0].groupNorm(groups: groups, weight: $0[1], bias: $0[2])
            }
        }

        /// Products: linear layers, every matmul transpose, attention (dense and banded),
        /// convolutions.
        func productOps() {
            let (b, t, h, dk) = (self.b, self.t, self.h, self.dk)
            let (m, k, cols) = (n(1...12, 100...1500), n(1...12, 100...1500), n(1...12, 100...1500))
            add("linear", [random([m, k]), random([cols, k]), random([cols])], .reduction) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
            add("linear (no bias)", [random([2, m, k]), random([cols, k])], .reduction) { Tensor.linear($0[0], weight: $0[1], bias: nil) }
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                add("matmul (batched, tA \(ta), tB \(tb))", [random(ta ? [3, k, m] : [3, m, k]), random(tb ? [3, cols, k] : [3, k, cols])], .reduction) {
                    Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
            }
            add("matmul (shared matrix)", [random([2, m, k]), random([k, cols])], .reduction) { Tensor.matmul($0[0], $0[1]) }
            let positions = random([2 * t - 1, h, dk]), q = random([b, t, h, dk]), keys = random([b, t, h, dk])
            let u = random([h, dk]), v = random([h, dk])
            add("relPositionScores", [q, keys, positions, u, v], .reduction) {
                Tensor.relPositionScores(q: $0[0], k: $0[1], p: $0[2], biasU: $0[3], biasV: $0[4], scale: 0.5)
            }
            add("attentionContext", [random([b, h, t, t]), keys], .reduction) { Tensor.attentionContext($0[0], $0[1]) }
            let (left, right) = (rng.int(in: 0...3), rng.int(in: 0...2))
            add("bandedRelPositionScores", [q, keys, positions, u, v], .reduction) {
                Tensor.bandedRelPositionScores(q: $0[0], k: $0[1], p: $0[2], biasU: $0[3], biasV: $0[4], scale: 0.5, left: left, right: right)
            }
            add("bandedAttentionContext", [random([b, h, t, left + right + 1]), keys], .reduction) { Tensor.bandedAttentionContext($0[0], $0[1], left: left) }
            // Weight gradients sum over the output rows (b, oh) in chunks of 32 rows at least: tall
            // enough inputs for several chunks; an odd width (the two column phases of stride 2).
            let (cin, cout, hh, ww) = (n(1...3, 1...8), n(1...4, 8...64), n(65...140, 40...200), n(3...7, 20...80) | 1)
            add("conv2d (stride 2, padding 1)", [random([b, cin, hh, ww]), random([cout, cin, 3, 3]), random([cout])], .reduction) {
                $0[0].conv2d(weight: $0[1], bias: $0[2], Conv2dGeometry(stride: (2, 2), padding: (1, 1)))
            }
            add("conv2d (pointwise 1×1)", [random([b, cout, hh, ww]), random([cin + 1, cout, 1, 1]), random([cin + 1])], .reduction) {
                $0[0].conv2d(weight: $0[1], bias: $0[2], Conv2dGeometry())
            }
            add("conv2d (depthwise)", [random([b, cout, hh, ww]), random([cout, 1, 3, 3])], .reduction) {
                $0[0].conv2d(weight: $0[1], bias: nil, Conv2dGeometry(stride: (2, 2), padding: (1, 1), groups: cout))
            }
            let channels = n(1...6, 64...512), kernel = n(1...5, 3...31) | 1, steps = n(33...80, 20...300)
            add("depthwiseConv1d", [random([b, steps, channels]), random([channels, 1, kernel]), random([channels])], .reduction) {
                $0[0].depthwiseConv1d(weight: $0[1], bias: $0[2], left: (kernel - 1) / 2, right: (kernel - 1) / 2)
            }
            add("depthwiseConv1d (causal, no bias)", [random([b, steps, channels]), random([channels, 1, kernel])], .reduction) {
                $0[0].depthwiseConv1d(weight: $0[1], bias: nil, left: kernel - 1, right: 0)
            }
        }
    }
}
