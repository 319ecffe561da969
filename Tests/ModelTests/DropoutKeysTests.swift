import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// Every random draw of a forward (dropout masks, stochastic depth, the attention context
/// choice) is keyed at construction: a model's modules share the model's keys, and an encoder
/// built alone keys its own from the generator it is built with.
final class DropoutKeysTests: XCTestCase {
    func testAModelsModulesShareItsKeys() throws {
        var config = try NeMoTinyFixture.config()
        config.encoder.layerDropProbabilities = StochasticDepth.probabilities(layers: config.encoder.nLayers, p: 0.2, linear: true, startLayer: 1)
        let model = NESTModel(config: config, window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, config.encoder.featIn, 257]), seed: 3)
        let dropouts = model.modules(of: Dropout.self), depths = model.modules(of: StochasticDepth.self)
        XCTAssertGreaterThan(dropouts.count, 5)
        XCTAssertEqual(depths.count, config.encoder.nLayers)
        XCTAssertTrue(dropouts.allSatisfy { $0.keys === model.dropoutKeys } && depths.allSatisfy { $0.keys === model.dropoutKeys })
    }

    func testAnEncoderBuiltAloneKeysItsOwnMasks() throws {
        var config = try NeMoTinyFixture.config().encoder
        (config.dropout, config.dropoutPreEncoder, config.dropoutEmb, config.dropoutAtt) = (0.3, 0.3, 0, 0.3)
        let x = randomTensor([1, config.featIn, 64], seed: 2)
        // The same weights (generator seed 1) with the given keys, or the encoder's own.
        func output(training: Bool, keys: DropoutKeys?) -> [Float] {
            let encoder = makeEncoder(config, rng: RandomGenerator(seed: 1), dropoutKeys: keys)
            let used = encoder.modules(of: Dropout.self).map(\.keys)
            XCTAssertTrue(used.allSatisfy { $0 === used[0] }, "one set of keys per encoder")
            encoder.train(training)
            return withoutGrad { encoder(x, lengths: [64], captureLayers: []).encoded.array }
        }
        XCTAssertEqual(output(training: false, keys: DropoutKeys(seed: 5)), output(training: false, keys: DropoutKeys(seed: 6)), "the same weights")
        XCTAssertNotEqual(output(training: true, keys: DropoutKeys(seed: 5)), output(training: true, keys: DropoutKeys(seed: 6)), "other keys, other masks")
        XCTAssertEqual(output(training: true, keys: nil), output(training: true, keys: nil), "built alone from the same generator: the same masks")
        XCTAssertNotEqual(output(training: true, keys: nil), output(training: true, keys: DropoutKeys(seed: 0)), "not the seed-0 placeholder keys")
    }
}
