import Config
import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// NeMo's stochastic depth: its per-layer schedule, and a layer that is either skipped (output
/// = input, zero gradients to the layer) or kept with its residual scaled by 1/(1 − p).
final class StochasticDepthTests: XCTestCase {
    func testScheduleEqualsNeMos() {
        assertClose(StochasticDepth.probabilities(layers: 5, p: 0.5, linear: true, startLayer: 1), [0, 0.125, 0.25, 0.375, 0.5], atol: 1e-7, "linear")
        assertClose(StochasticDepth.probabilities(layers: 5, p: 0.5, linear: false, startLayer: 1), [0, 0.5, 0.5, 0.5, 0.5], atol: 0, "uniform")
        assertClose(StochasticDepth.probabilities(layers: 5, p: 0.5, linear: true, startLayer: 3), [0, 0, 0, 0.25, 0.5], atol: 1e-7, "from layer 3")
        assertClose(StochasticDepth.probabilities(layers: 4, p: 0.3, linear: true, startLayer: 4), [0, 0, 0, 0], atol: 0, "nothing after the last")
    }

    func testASkippedLayerPassesItsInputAndAKeptOneIsRescaled() {
        let keys = DropoutKeys(seed: 7)
        let depth = StochasticDepth(0.5, keys: keys)
        let x = randomTensor([2, 3], seed: 1), w = randomTensor([3, 3], seed: 2)
        w.requiresGrad = true
        var skipped = 0, kept = 0
        for update in 1...40 {
            keys.begin(update: update, microBatch: 0, rows: nil)
            w.grad = nil
            let layerOut = Tensor.matmul(x, w)
            let y = depth(layerOut, input: x)
            y.sum().backward()
            if y.array == x.array {
                skipped += 1
                XCTAssertEqual(w.grad?.array ?? [1], [Float](repeating: 0, count: 9), "a skipped layer's parameters get zero gradients, as in NeMo")
            } else {
                kept += 1
                let expected = zip(layerOut.array, x.array).map { ($0 - $1) * 2 + $1 }
                assertClose(y.array, expected, atol: 1e-6, "residual scaled by 1/(1 − p)")
            }
        }
        XCTAssertTrue(skipped > 8 && kept > 8, "both outcomes occur: \(skipped) skipped, \(kept) kept")
        depth.eval()
        XCTAssertEqual(depth(x, input: w).array, x.array, "evaluation never drops")
    }

    func testConfigKeysAreReadAndChecked() throws {
        let path = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.config.yaml").path
        let c = try ModelConfigReader.read(try ConfigDocument(contentsOf: path, overrides: ["++model.encoder.stochastic_depth_drop_prob=0.2",
                                                                                         "++model.encoder.stochastic_depth_mode=linear"]))
        XCTAssertEqual(c.encoder.layerDropProbabilities, StochasticDepth.probabilities(layers: c.encoder.nLayers, p: 0.2, linear: true, startLayer: 1))
        for (override, key) in [("++model.encoder.stochastic_depth_drop_prob=1.0", "stochastic_depth_drop_prob (1.0)"),
                                ("++model.encoder.stochastic_depth_start_layer=9", "stochastic_depth_start_layer (9)")] {
            XCTAssertThrowsError(try ModelConfigReader.read(try ConfigDocument(contentsOf: path, overrides: [override, "++model.encoder.stochastic_depth_drop_prob=0.3"].reversed()))) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }
}
