import HDF5
import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// Train-mode parity with NeMo's deterministic step (dropout 0, BatchNorm on batch statistics,
/// the stored frame mask): loss, token mask, log-probabilities, every gradient, BatchNorm
/// statistics, and one AdamW update at two learning rates.
final class TrainStepParityTests: XCTestCase {
    func runStep() throws -> (NESTModel, HDF5File, NESTModel.StepResult) {
        let (model, f) = try NeMoTinyFixture.model()
        model.train()
        let result = model.maskedTokenLoss(
            clean: try f.tensor("/preprocessor/features"), noisy: try f.tensor("/train_step/noisy_features"),
            noisyLengths: try f.ints("/train_step/noisy_feature_lengths"), frameMask: FrameMask(try f.tensor("/train_step/frame_mask")))
        result.loss.backward()
        return (model, f, result)
    }

    func testLossTokenMaskTargetsAndLogProbs() throws {
        let (model, f, r) = try runStep()
        XCTAssertEqual(r.loss.scalar, try f.read("/train_step/loss").floats[0], accuracy: 1e-5)
        XCTAssertEqual(r.tokenMask.map { $0 ? Float(1) : 0 }, try f.read("/train_step/token_mask").floats)
        XCTAssertEqual(r.maskedTokens, 12)
        let masked = model.maskProcessor.apply(try f.tensor("/train_step/noisy_features"), frameMask: FrameMask(try f.tensor("/train_step/frame_mask")))
        assertClose(masked.array, try f.tensor("/train_step/masked_features").array, atol: 0, "masked features")
        let logProbs = withoutGrad { model.decoder(r.encoded.detached()) }
        assertClose(logProbs.array, try f.tensor("/train_step/log_probs").array, atol: 1e-4, "train-mode log-probs")
    }

    func testEveryGradientMatchesNeMo() throws {
        let (model, f, _) = try runStep()
        // Zero in exact arithmetic here: a bias just before training-mode BatchNorm, the key bias
        // under softmax (the floor in `assertGradientsMatch`).
        try f.assertGradientsMatch(model.trainableParameters())
    }

    func testBatchNormStatisticsAfterTheStep() throws {
        let (model, f, _) = try runStep()
        let entries = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.key, $0.value) })
        for key in try f.datasetNames(in: "/train_step/bn_after") {
            let expected = try f.read("/train_step/bn_after/\(key)")
            switch entries[key] {
            case .float32(let t): assertClose(t.array, expected.floats, atol: 1e-5, rtol: 1e-5, key)
            case .int64(let t): XCTAssertEqual(t.values.map(Int.init), expected.ints, key)
            default: XCTFail("no buffer \(key)")
            }
        }
    }

    /// The update from NeMo's own gradients: our gradients agree to rounding, but where a
    /// gradient is rounding noise Adam turns it into ±lr, so feeding ours would test noise.
    func testOneAdamWStepMatchesNeMo() throws {
        for group in ["/optimizer_step", "/optimizer_step_peak"] {
            let (model, f) = try NeMoTinyFixture.model()
            try f.assertAdamWStepMatches(model.trainableParameters(), group: group)
        }
    }
}
