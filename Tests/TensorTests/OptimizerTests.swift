import Foundation
import Tensor
import XCTest
import _TestSupport

final class OptimizerTests: XCTestCase {
    /// Two AdamW updates computed by hand in Double from PyTorch's formulas.
    func testAdamWMatchesHandComputedSteps() {
        let p = Tensor([0.5, -1.0], shape: [2], requiresGrad: true)
        let opt = AdamW(parameters: [("p", p)], settings: .init(betas: (0.9, 0.98), eps: 1e-8, weightDecay: 0.01))
        let grads: [[Double]] = [[0.2, -0.4], [-0.1, 0.3]]
        var ref = [0.5, -1.0], m = [0.0, 0.0], v = [0.0, 0.0]
        let lr = 0.1
        for (t, g) in grads.enumerated() {
            p.grad = Tensor(g.map(Float.init), shape: [2])
            opt.update(lr: lr)
            let step = Double(t + 1)
            for i in 0..<2 {
                ref[i] *= 1 - lr * 0.01
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.98 * v[i] + 0.02 * g[i] * g[i]
                let denom = (v[i] / (1 - pow(0.98, step))).squareRoot() + 1e-8
                ref[i] -= lr * (m[i] / (1 - pow(0.9, step))) / denom
            }
            assertClose(p.array, ref.map(Float.init), atol: 1e-6, "AdamW step \(t + 1)")
        }
    }

    func testNoamMatchesSpecValues() {
        let noam512 = LearningRateSchedule.noam(scale: 5, dModel: 512, warmupSteps: 25_000, minLR: 1e-6)
        XCTAssertEqual(noam512.rate(lastEpoch: 1), 5.590e-8, accuracy: 1e-11)
        XCTAssertEqual(noam512.rate(lastEpoch: 1000), 5.590e-5, accuracy: 1e-8)
        XCTAssertEqual(noam512.rate(lastEpoch: 25_000), 1.39754e-3, accuracy: 1e-8)
        XCTAssertEqual(noam512.rate(lastEpoch: 100_000), 6.988e-4, accuracy: 1e-7)
        XCTAssertEqual(noam512.rate(lastEpoch: 500_000), 3.125e-4, accuracy: 1e-7)
        // Updates 1 and 2 both run at s = 1.
        XCTAssertEqual(noam512.rate(forUpdate: 1), noam512.rate(forUpdate: 2))
        let noam1024 = LearningRateSchedule.noam(scale: 5, dModel: 1024, warmupSteps: 25_000, minLR: 1e-6)
        XCTAssertEqual(noam1024.rate(lastEpoch: 25_000), 9.8821e-4, accuracy: 1e-8)
        XCTAssertEqual(noam1024.rate(lastEpoch: 500_000), 2.2097e-4, accuracy: 1e-8)
        // The floor applies only after warm-up.
        let floored = LearningRateSchedule.noam(scale: 5, dModel: 512, warmupSteps: 10, minLR: 1)
        XCTAssertEqual(floored.rate(lastEpoch: 11), 1)
        XCTAssertLessThan(floored.rate(lastEpoch: 5), 1)
    }

    func testCosineWarmupAndDecay() {
        let s = LearningRateSchedule.cosine(lr: 1, warmupSteps: 4, maxSteps: 14, minLR: 0.1)
        XCTAssertEqual(s.rate(lastEpoch: 0), 0.2, accuracy: 1e-12)
        XCTAssertEqual(s.rate(lastEpoch: 4), 1.0, accuracy: 1e-12)
        XCTAssertEqual(s.rate(lastEpoch: 9), 0.55, accuracy: 1e-12)   // halfway: min + (1 − min)/2
        XCTAssertEqual(s.rate(lastEpoch: 14), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.rate(lastEpoch: 20), 0.1)
    }

    func testGradientClippingByGlobalNorm() {
        let a = Tensor([0, 0], shape: [2], requiresGrad: true), b = Tensor([0], shape: [1], requiresGrad: true)
        a.grad = Tensor([3, 0], shape: [2]); b.grad = Tensor([4], shape: [1])
        let norm = Gradients.clip([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-9)
        assertClose(a.grad!.array + b.grad!.array, [0.6, 0, 0.8], atol: 1e-6, "clipped gradients")
    }
}
