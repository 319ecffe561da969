import Tensor
import XCTest
import _TestSupport

/// GroupNorm (NeMo's `conv_norm_type: group_normN`) against torch's definition written out, and
/// its gradients against finite differences.
final class GroupNormTests: XCTestCase {
    func testGroupNormIsTorchsDefinition() {
        let (b, t, c, groups) = (2, 5, 6, 3)
        let x = randomTensor([b, t, c], seed: 31, -2, 2), w = randomTensor([c], seed: 32, 0.5, 1.5), bias = randomTensor([c], seed: 33)
        let y = x.groupNorm(groups: groups, weight: w, bias: bias).array
        let (xs, ws, bs) = (x.array, w.array, bias.array)
        let width = c / groups
        for bi in 0..<b {
            for g in 0..<groups {
                // torch: mean and biased variance over the group's channels at every position.
                var values: [Double] = []
                for ti in 0..<t { for ch in (g * width)..<((g + 1) * width) { values.append(Double(xs[(bi * t + ti) * c + ch])) } }
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
                for ti in 0..<t {
                    for ch in (g * width)..<((g + 1) * width) {
                        let i = (bi * t + ti) * c + ch
                        let expected = (Double(xs[i]) - mean) / (variance + 1e-5).squareRoot() * Double(ws[ch]) + Double(bs[ch])
                        XCTAssertEqual(Double(y[i]), expected, accuracy: 1e-5, "item \(bi), position \(ti), channel \(ch)")
                    }
                }
            }
        }
    }

    func testGroupNormGradients() {
        let x = randomTensor([2, 4, 6], seed: 34, -2, 2), w = randomTensor([6], seed: 35, 0.5, 1.5), b = randomTensor([6], seed: 36)
        assertGradients([x, w, b], "groupNorm") { x.groupNorm(groups: 2, weight: w, bias: b) }
    }
}
