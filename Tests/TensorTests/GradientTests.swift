import Tensor
import XCTest
import _TestSupport

/// Finite-difference checks of every differentiable op: every entry of the op table
/// (`OpTable`, odd sizes, batch > 1 and broadcasting), and the edge cases it does not draw.
final class GradientTests: XCTestCase {
    func testEveryOpOfTheTable() {
        var checked = 0
        for op in OpTable.cases(size: .finiteDifferences, seed: 5) {
            let inputs = op.inputs
            // Ops without a gradient (integer results, the frame replacement) are not differentiable.
            for x in inputs { x.requiresGrad = true }
            guard op.call(inputs).requiresGrad else { continue }
            assertGradients(inputs, op.name) { op.call(inputs) }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 45)
    }

    func testGeluIsTorchsExactGelu() {
        // torch.nn.functional.gelu (exact): reference values.
        let x = Tensor([-3, -1, -0.5, 0, 0.5, 1, 3], shape: [7])
        assertClose(withoutGrad { x.gelu() }.array, [-0.0040496, -0.1586553, -0.1542687, 0, 0.3457313, 0.8413447, 2.9959504], atol: 1e-6, "gelu values")
    }

    func testDropoutDropsAFractionPAndScalesSurvivors() {
        // 200,001 elements: many parallel chunks and an odd tail for the vector loop.
        let n = 200_001, p: Float = 0.1
        let x = Tensor(repeating: 2, shape: [n])
        let y = x.dropout(p, seed: 5), y2 = x.dropout(p, seed: 6)
        let dropped = y.array.filter { $0 == 0 }.count
        let sigma = (Double(n) * Double(p) * Double(1 - p)).squareRoot()
        XCTAssertEqual(Double(dropped), Double(n) * Double(p), accuracy: 4 * sigma)
        XCTAssertTrue(y.array.allSatisfy { $0 == 0 || $0 == 2 / (1 - p) })
        XCTAssertNotEqual(y.array, y2.array, "another seed draws another mask")
        XCTAssertEqual(x.dropout(p, seed: 5).array, y.array, "the mask is a function of the seed")
        // Neighbouring elements are not correlated, and neither are two masks drawn one after
        // the other (their seeds differ in a few bits of each half at most by chance).
        let kept = y.array.map { $0 == 0 ? 0.0 : 1.0 }, kept2 = y2.array.map { $0 == 0 ? 0.0 : 1.0 }
        let bothKept = zip(kept, kept.dropFirst()).filter { $0 == 1 && $1 == 1 }.count
        XCTAssertEqual(Double(bothKept) / Double(n - 1), Double((1 - p) * (1 - p)), accuracy: 0.005)
        let keptInBoth = zip(kept, kept2).filter { $0 == 1 && $1 == 1 }.count
        XCTAssertEqual(Double(keptInBoth) / Double(n), Double((1 - p) * (1 - p)), accuracy: 0.005)
        // Seeds that differ in one bit (the hash's weakest case) give unrelated masks too.
        let base = withoutGrad { x.dropout(0.5, seed: 0x1234_5678_9ABC_DEF0) }, flipped = withoutGrad { x.dropout(0.5, seed: 0x1234_5678_9ABC_DEF1) }
        let agree = zip(base.array, flipped.array).filter { ($0 == 0) == ($1 == 0) }.count
        XCTAssertEqual(Double(agree) / Double(n), 0.5, accuracy: 4 * 0.5 / Double(n).squareRoot())
    }

    func testDropoutOfRowsOfALargerBatchMatchesThoseRowsOfTheWholeBatch() {
        // What a rank holding rows 1 and 5 of a batch of 8 does: name the rows it holds.
        let whole = randomTensor([8, 7, 5], seed: 30), n = 35
        let mask = whole.dropout(0.4, seed: 11).array
        let part = Tensor(Array(whole.array[n..<(2 * n)] + whole.array[(5 * n)..<(6 * n)]), shape: [2, 7, 5])
        XCTAssertEqual(part.dropout(0.4, seed: 11, rows: [1, 5]).array, Array(mask[n..<(2 * n)] + mask[(5 * n)..<(6 * n)]))
        XCTAssertNotEqual(part.dropout(0.4, seed: 11).array, Array(mask[n..<(2 * n)] + mask[(5 * n)..<(6 * n)]),
                          "without the rows they would draw rows 0 and 1's mask")
        let a = randomTensor([2, 6], seed: 31)
        assertGradients([a], "dropout of rows 3 and 9") { a.dropout(0.3, seed: 4, rows: [3, 9]) }
    }

    func testLayerNorm() {
        // Width 19: the SIMD body (16) and a scalar tail (3) of the row reductions.
        let x = randomTensor([2, 3, 19], seed: 17, -2, 2), w = randomTensor([19], seed: 18, 0.5, 1.5), b = randomTensor([19], seed: 19)
        assertGradients([x, w, b], "layerNorm") { x.layerNorm(weight: w, bias: b) }
    }

    func testBatchNormTrainingAndEval() {
        let x = randomTensor([3, 5, 4], seed: 20, -2, 2), w = randomTensor([4], seed: 21, 0.5, 1.5), b = randomTensor([4], seed: 22)
        let rm = Tensor(zeros: [4]), rv = Tensor(repeating: 1, shape: [4])
        assertGradients([x, w, b], "batchNorm training") {
            x.batchNorm(weight: w, bias: b, runningMean: rm.copy(), runningVar: rv.copy(), training: true)
        }
        let erm = randomTensor([4], seed: 23), erv = randomTensor([4], seed: 24, 0.5, 2)
        assertGradients([x, w, b], "batchNorm eval") {
            x.batchNorm(weight: w, bias: b, runningMean: erm, runningVar: erv, training: false)
        }
    }

    func testSoftmaxWithMaskAndLogSoftmax() {
        let s = randomTensor([2, 3, 4, 4], seed: 25, -3, 3)
        var maskValues = [Float](repeating: 0, count: 2 * 4 * 4)
        // Batch 1: key 3 and query 3 padded (query row 3 fully masked).
        for i in 0..<4 { for j in 0..<4 where i == 3 || j == 3 { maskValues[16 + i * 4 + j] = 1 } }
        let mask = Tensor(maskValues, shape: [2, 1, 4, 4])
        assertGradients([s], "masked softmax") { s.softmax(mask: mask) }
        let wide = randomTensor([2, 3, 13], seed: 39, -3, 3)
        assertGradients([wide], "softmax") { wide.softmax() }
        let l = randomTensor([3, 17], seed: 26, -3, 3)
        assertGradients([l], "logSoftmax") { l.logSoftmax() }
        assertGradients([l], "logSoftmax + nll") { l.logSoftmax().gatherRows([0, 2, 2]).nllLoss(targets: [16, 1, 3]) }
    }

    func testConvolutions() {
        let x = randomTensor([2, 1, 7, 6], seed: 27)
        let w0 = randomTensor([3, 1, 3, 3], seed: 28), b0 = randomTensor([3], seed: 29)
        assertGradients([x, w0, b0], "conv2d 3x3 stride 2 pad 1") {
            x.conv2d(weight: w0, bias: b0, Conv2dGeometry(stride: (2, 2), padding: (1, 1)))
        }
        let y = randomTensor([2, 3, 5, 4], seed: 30)
        let wd = randomTensor([3, 1, 3, 3], seed: 31), bd = randomTensor([3], seed: 32)
        assertGradients([y, wd, bd], "depthwise conv2d") {
            y.conv2d(weight: wd, bias: bd, Conv2dGeometry(stride: (2, 2), padding: (1, 1), groups: 3))
        }
        // Odd width: the two column phases of stride 2 differ in length.
        let yOdd = randomTensor([2, 3, 5, 7], seed: 45)
        assertGradients([yOdd, wd, bd], "depthwise conv2d, odd width") {
            yOdd.conv2d(weight: wd, bias: bd, Conv2dGeometry(stride: (2, 2), padding: (1, 1), groups: 3))
        }
        let wp = randomTensor([4, 3, 1, 1], seed: 33), bp = randomTensor([4], seed: 34)
        assertGradients([y, wp, bp], "pointwise conv2d") { y.conv2d(weight: wp, bias: bp, Conv2dGeometry()) }
        let z = randomTensor([2, 11, 3], seed: 35)
        let k = randomTensor([3, 1, 9], seed: 36), kb = randomTensor([3], seed: 37)
        assertGradients([z, k, kb], "depthwise conv1d k=9") { z.depthwiseConv1d(weight: k, bias: kb, left: 4, right: 4) }
        assertGradients([z, k], "depthwise conv1d no bias") { z.depthwiseConv1d(weight: k, bias: nil, left: 4, right: 4) }
    }

    func testFusedRelativePositionAttention() {
        // B 2, T 5, H 3, d_k 4 (odd T: the relative positions run T−1 … −(T−1)).
        let (b, t, h, dk) = (2, 5, 3, 4)
        let q = randomTensor([b, t, h, dk], seed: 38), k = randomTensor([b, t, h, dk], seed: 39)
        let p = randomTensor([2 * t - 1, h, dk], seed: 40)
        let u = randomTensor([h, dk], seed: 41), v = randomTensor([h, dk], seed: 42)
        let scale: Float = 0.7
        // Forward against the formula, entry by entry.
        let s = withoutGrad { Tensor.relPositionScores(q: q, k: k, p: p, biasU: u, biasV: v, scale: scale) }
        func at(_ x: Tensor, _ i: [Int]) -> Float { x.array[zip(i, Shape.strides(x.shape)).reduce(0) { $0 + $1.0 * $1.1 }] }
        for bi in 0..<b { for hi in 0..<h { for i in 0..<t { for j in 0..<t {
            var expected: Float = 0
            for d in 0..<dk {
                let qd = at(q, [bi, i, hi, d])
                expected += (qd + at(u, [hi, d])) * at(k, [bi, j, hi, d]) + (qd + at(v, [hi, d])) * at(p, [t - 1 - i + j, hi, d])
            }
            XCTAssertEqual(at(s, [bi, hi, i, j]), expected * scale, accuracy: 1e-5, "score [\(bi), \(hi), \(i), \(j)]")
        } } } }
        assertGradients([q, k, p, u, v], "relPositionScores") {
            Tensor.relPositionScores(q: q, k: k, p: p, biasU: u, biasV: v, scale: scale)
        }
        let a = randomTensor([b, h, t, t], seed: 43), values = randomTensor([b, t, h, dk], seed: 44)
        assertGradients([a, values], "attentionContext") { Tensor.attentionContext(a, values) }
        let context = withoutGrad { Tensor.attentionContext(a, values) }
        let reference = withoutGrad { Tensor.matmul(a, values.permuted([0, 2, 1, 3])).permuted([0, 2, 1, 3]) }
        XCTAssertEqual(context.array, reference.array, "heads in place equal the permuted batched product")
    }

    /// The banded scores and context against finite differences, and against the dense ops
    /// (same numbers where the band has its keys) with a random upstream gradient.
    func testBandedRelativeAttention() {
        let (b, t, h, dk, left, right) = (2, 7, 2, 3, 2, 1)
        let w = left + right + 1
        let q = randomTensor([b, t, h, dk], seed: 31), k = randomTensor([b, t, h, dk], seed: 32), p = randomTensor([2 * t - 1, h, dk], seed: 33)
        let u = randomTensor([h, dk], seed: 34), v = randomTensor([h, dk], seed: 35), values = randomTensor([b, t, h, dk], seed: 36)
        assertGradients([q, k, p, u, v], "banded scores") {
            Tensor.bandedRelPositionScores(q: q, k: k, p: p, biasU: u, biasV: v, scale: 0.7, left: left, right: right)
        }
        let a = randomTensor([b, h, t, w], seed: 37, 0, 1)
        assertGradients([a, values], "banded context") { Tensor.bandedAttentionContext(a, values, left: left) }
        // Forward equals the dense path's softmaxed attention over the same keys.
        let lengths = [7, 5]
        let dense = withoutGrad {
            Tensor.attentionContext(Tensor.relPositionScores(q: q, k: k, p: p, biasU: u, biasV: v, scale: 0.7)
                .softmax(mask: Tensor.attentionMask(lengths: lengths, length: t, context: (left, right))), values)
        }
        let banded = withoutGrad {
            Tensor.bandedAttentionContext(Tensor.bandedRelPositionScores(q: q, k: k, p: p, biasU: u, biasV: v, scale: 0.7, left: left, right: right)
                .softmax(mask: Tensor.bandMask(lengths: lengths, length: t, left: left, right: right)), values, left: left)
        }
        assertClose(banded.array, dense.array, atol: 1e-6, "banded = dense limited-context attention")
    }

    /// `chunked_limited` contexts: the mask follows NeMo's rule (chunk index i / (right + 1),
    /// 0 ≤ chunk(i) − chunk(j) ≤ left / (right + 1)), written here independently, and the banded
    /// computation over the rule's band equals the dense one.
    func testChunkedLimitedContextFollowsNeMosRule() {
        let t = 23, lengths = [23, 17]
        for (left, right) in [(4, 2), (6, 1), (0, 3), (5, 0)] {
            let mask = Tensor.attentionMask(lengths: lengths, length: t, context: (left, right), chunked: true).array
            let size = right + 1, leftChunks = left / size
            for (b, l) in lengths.enumerated() {
                for i in 0..<t {
                    for j in 0..<t {
                        let diff = i / size - j / size
                        let allowed = i < l && j < l && diff >= 0 && diff <= leftChunks
                        XCTAssertEqual(mask[(b * t + i) * t + j], allowed ? 0 : 1, "[\(left), \(right)] b \(b) query \(i) key \(j)")
                    }
                }
            }
        }
        let (b, h, dk, left, right) = (2, 2, 3, 4, 2)
        let band = Tensor.contextBand((left, right), chunked: true)
        XCTAssertEqual(band.left, 5)
        XCTAssertEqual(band.right, 2)
        let q = randomTensor([b, t, h, dk], seed: 41), k = randomTensor([b, t, h, dk], seed: 42), p = randomTensor([2 * t - 1, h, dk], seed: 43)
        let u = randomTensor([h, dk], seed: 44), v = randomTensor([h, dk], seed: 45), values = randomTensor([b, t, h, dk], seed: 46)
        let dense = withoutGrad {
            Tensor.attentionContext(Tensor.relPositionScores(q: q, k: k, p: p, biasU: u, biasV: v, scale: 0.5)
                .softmax(mask: Tensor.attentionMask(lengths: lengths, length: t, context: (left, right), chunked: true)), values)
        }
        let banded = withoutGrad {
            Tensor.bandedAttentionContext(Tensor.bandedRelPositionScores(q: q, k: k, p: p, biasU: u, biasV: v, scale: 0.5, left: band.left, right: band.right)
                .softmax(mask: Tensor.bandMask(lengths: lengths, length: t, left: band.left, right: band.right, context: (left, right), chunked: true)),
                values, left: band.left)
        }
        assertClose(banded.array, dense.array, atol: 1e-6, "chunked: banded = dense")
    }
}
