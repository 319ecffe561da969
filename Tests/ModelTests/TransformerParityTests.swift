import Config
import HDF5
import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// Parity with NeMo 3.0.0's `TransformerEncoder` on the `nemo-transformer` fixture (the
/// `nest_transformer.yaml` recipe at tiny size, with qk_norm and qkv_bias on): feature stacking,
/// relative positions, embed_norm, every block and its parts, final_norm, the decoder, the
/// train step's loss and gradients, and AdamW.
final class TransformerParityTests: XCTestCase {
    static let configPath = Fixtures.directory.appendingPathComponent("nemo-transformer/nemo-transformer.config.yaml").path

    static func model() throws -> (NESTModel, TransformerEncoder, HDF5File) {
        let f = try Fixtures.file("nemo-transformer")
        let config = try ModelConfigReader.read(try ConfigDocument(contentsOf: configPath))
        let model = NESTModel(config: config, window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, 128, 257]), seed: 1)
        try StateDictLoader.load(model, from: HDF5Group(file: f, group: "/weights", origin: "nemo-transformer"))
        return (model, try XCTUnwrap(model.encoder as? TransformerEncoder), f)
    }

    func testStateDictKeysAndOrderMatchNeMo() throws {
        let (model, _, f) = try Self.model()
        let keys = model.stateDict().map(\.key)
        XCTAssertEqual(Set(keys), Set(try f.datasetNames(in: "/weights")))
        XCTAssertEqual(Array(keys[2...9]), ["encoder.pre_encode.proj.weight", "encoder.embed_norm.weight", "encoder.embed_norm.bias",
                                           "encoder.layers.0.norm1.weight", "encoder.layers.0.norm1.bias", "encoder.layers.0.attn.pos_bias_u",
                                           "encoder.layers.0.attn.pos_bias_v", "encoder.layers.0.attn.w_qkv.weight"])
        XCTAssertEqual(model.trainableParameters().map(\.tensor.count).reduce(0, +), 190_976)
    }

    func testEncoderMatchesNeMoBlockByBlock() throws {
        let (model, encoder, f) = try Self.model()
        model.eval()
        let features = try f.tensor("/preprocessor/features")
        let lengths = try f.ints("/preprocessor/lengths")
        try withoutGrad {
            let (stacked, stackedLengths) = encoder.preEncode(features, lengths: lengths)
            assertClose(stacked.array, try f.tensor("/encoder/pre_encode").array, atol: 1e-4, "feature stacking")
            XCTAssertEqual(stackedLengths, try f.ints("/encoder/pre_encode_lengths"))
            let (x, positions) = encoder.posEnc(stacked)
            assertClose(x.array, try f.tensor("/encoder/pos_enc_output").array, atol: 1e-3, rtol: 1e-5, "xscaled")
            let normed = encoder.embedNorm!(x)
            assertClose(normed.array, try f.tensor("/encoder/embed_norm").array, atol: 1e-4, "embed_norm")
            let t = x.shape[1]
            let mask = Tensor.keyMask(lengths: stackedLengths, length: t)
            XCTAssertEqual(mask.array, try f.read("/encoder/att_mask").ints.map(Float.init), "only keys past the length are masked")
            let block = encoder.layers[0]
            let attention = block.attn(block.norm1(normed), positions: try XCTUnwrap(positions), mask: mask)
            assertClose(attention.array, try f.tensor("/encoder/in_layer_00/attn").array, atol: 1e-4, "block 0 attention")
            let ffn = block.ffn(block.norm2(normed + attention))
            assertClose(ffn.array, try f.tensor("/encoder/in_layer_00/ffn").array, atol: 1e-4, "block 0 feed-forward")
            let out = encoder(features, lengths: lengths, captureLayers: [0, 1])
            for i in 0..<2 {
                assertClose(out.layerOutputs[i]!.array, try f.tensor(String(format: "/encoder/layer_%02d", i)).array, atol: 1e-4, "block \(i)")
            }
            assertClose(out.encoded.array, try f.tensor("/encoder/final_norm").array, atol: 1e-4, "final_norm")
            XCTAssertEqual(out.lengths, try f.ints("/encoder/lengths"))
            assertClose(model.decoder(out.encoded).array, try f.tensor("/decoder/log_probs").array, atol: 1e-4, "decoder log-probs")
        }
    }

    func testTrainStepMatchesNeMo() throws {
        let (model, _, f) = try Self.model()
        model.train()
        let r = model.maskedTokenLoss(clean: try f.tensor("/preprocessor/features"), noisy: try f.tensor("/train_step/noisy_features"),
                                      noisyLengths: try f.ints("/train_step/noisy_feature_lengths"), frameMask: FrameMask(try f.tensor("/train_step/frame_mask")))
        XCTAssertEqual(r.maskedTokens, 8)
        XCTAssertEqual(r.loss.scalar, try f.read("/train_step/loss").floats[0], accuracy: 1e-5)
        r.loss.backward()
        // k_norm's bias has a zero gradient in exact arithmetic (the softmax cancels it): both
        // sides hold rounding noise there, within the absolute floor.
        try f.assertGradientsMatch(model.trainableParameters())
        try f.assertAdamWStepMatches(try Self.model().0.trainableParameters(), group: "/optimizer_step_peak")
    }
}
