import Config
import HDF5
import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// Layer parity with NeMo's `nemo-streaming` fixture (NeMo 3.0.0, the streaming v2 recipe at
/// tiny size) for the options a Conformer layer of that recipe uses: limited attention context
/// [4, 2], a causal depthwise convolution (`conv_context_size: causal`), the LayerNorm
/// convolution norm, no biases; then the causal subsampling, the whole encoder and a train step.
final class StreamingParityTests: XCTestCase {
    static let configPath = Fixtures.directory.appendingPathComponent("nemo-streaming/nemo-streaming.config.yaml").path

    /// The whole fixture model (causal subsampling included) with NeMo's weights.
    static func model() throws -> (NESTModel, HDF5File) {
        let f = try Fixtures.file("nemo-streaming")
        let config = try ModelConfigReader.read(try ConfigDocument(contentsOf: configPath))
        let model = NESTModel(config: config, window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, 128, 257]), seed: 1)
        try StateDictLoader.load(model, from: HDF5Group(file: f, group: "/weights", origin: "nemo-streaming"))
        return (model, f)
    }

    /// Causal subsampling (T′ = T/8 + 1, lengths ⌊n/2⌋ + 1 per stage), every layer, the output
    /// and the decoder, in eval mode.
    func testCausalEncoderMatchesNeMo() throws {
        let (model, f) = try Self.model()
        model.eval()
        let features = try f.tensor("/preprocessor/features")
        let lengths = try f.ints("/preprocessor/lengths")
        try withoutGrad {
            let conformer = try XCTUnwrap(model.encoder as? ConformerEncoder)
            let (sub, subLengths) = conformer.preEncode(features, lengths: lengths)
            XCTAssertEqual(sub.shape, [2, 23, 64], "T/8 + 1 frames")
            assertClose(sub.array, try f.tensor("/encoder/pre_encode").array, atol: 1e-4, "causal pre_encode")
            XCTAssertEqual(subLengths, try f.ints("/encoder/pre_encode_lengths"))
            let out = model.encoder(features, lengths: lengths, captureLayers: [0, 1])
            for i in 0..<2 {
                assertClose(out.layerOutputs[i]!.array, try f.tensor(String(format: "/encoder/layer_%02d", i)).array, atol: 1e-4, "layer \(i)")
            }
            assertClose(out.encoded.transposed(1, 2).array, try f.tensor("/encoder/output").array, atol: 1e-4, "encoder output")
            XCTAssertEqual(out.lengths, try f.ints("/encoder/lengths"))
            assertClose(model.decoder(out.encoded).array, try f.tensor("/decoder/log_probs").array, atol: 1e-4, "decoder log-probs")
        }
    }

    /// The train step of NeMo's current MultiMLMLoss (outputs, masks and targets cut to the
    /// shortest: the last encoder frame never enters the loss): loss, every gradient, AdamW.
    func testTrainStepMatchesNeMo() throws {
        let (model, f) = try Self.model()
        model.train()
        let r = model.maskedTokenLoss(clean: try f.tensor("/preprocessor/features"), noisy: try f.tensor("/train_step/noisy_features"),
                                      noisyLengths: try f.ints("/train_step/noisy_feature_lengths"), frameMask: try f.tensor("/train_step/frame_mask"))
        XCTAssertEqual(r.tokenMask.map { $0 ? Float(1) : 0 }, try f.read("/train_step/token_mask").floats)
        XCTAssertEqual(r.maskedTokens, 8)
        XCTAssertEqual(r.loss.scalar, try f.read("/train_step/loss").floats[0], accuracy: 1e-5)
        r.loss.backward()
        try f.assertGradientsMatch(model.trainableParameters())
        try f.assertAdamWStepMatches(try Self.model().0.trainableParameters(), group: "/optimizer_step_peak")
    }

    func testLimitedContextCausalLayerNormLayerMatchesNeMo() throws {
        let config = try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath)).encoder
        XCTAssertEqual(config.convNormType, .layerNorm)
        XCTAssertEqual(config.attentionContext?.left, 4)
        XCTAssertEqual(config.attentionContext?.right, 2)
        XCTAssertEqual(config.convContext.left, 8)
        XCTAssertEqual(config.convContext.right, 0)
        let f = try Fixtures.file("nemo-streaming")
        let layer = ConformerLayer(config: config, rng: RandomGenerator(seed: 1))
        let prefix = "encoder.layers.0."
        let loaded = try StateDictLoader.load(layer, from: HDF5Group(file: f, group: "/weights", origin: "nemo-streaming"),
                                              policy: .init(strict: true, include: { $0.hasPrefix(prefix) }), prefix: prefix)
        XCTAssertTrue(loaded.contains(prefix + "conv.batch_norm.weight") && !loaded.contains(prefix + "conv.batch_norm.running_mean"),
                      "the conv norm is a LayerNorm under NeMo's name batch_norm")
        layer.eval()
        let x = try f.tensor("/encoder/pos_enc_output")
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let positions = try f.tensor("/encoder/pos_emb").reshaped([2 * t - 1, d])
        let lengths = try f.ints("/encoder/pre_encode_lengths")
        let mask = TimeMask.attention(lengths, length: t, context: config.attentionContext)
        XCTAssertEqual(mask.array, try f.read("/encoder/att_mask").ints.map(Float.init), "NeMo's mask: [i − 4, i + 2] among valid frames")
        let valid = TimeMask.rows(lengths, length: t, shape: [b, t, 1])
        // NeMo's way (the masked T × T matrix) and the banded one (W = 7 of T = 23) alike.
        let banded = AttentionMask.make(lengths: lengths, length: t, context: config.attentionContext)
        guard case .band(let band, 4, 2) = banded else { return XCTFail("a [4, 2] context over 23 frames is computed banded") }
        XCTAssertEqual(band.shape, [b, 1, t, 7])
        for (how, m) in [("dense", AttentionMask.dense(mask)), ("banded", banded)] {
            withoutGrad {
                let r1 = x + layer.feedForward1(layer.normFeedForward1(x)) * 0.5
                let attention = layer.selfAttn(layer.normSelfAtt(r1), positions: positions, mask: m)
                assertClose(attention.array, (try? f.tensor("/encoder/in_layer_00/self_attn").array) ?? [], atol: 1e-4, "\(how) limited-context self-attention")
                let conv = layer.conv(layer.normConv(r1 + attention), validSteps: valid)
                assertClose(conv.array, (try? f.tensor("/encoder/in_layer_00/conv").array) ?? [], atol: 1e-4, "causal conv module with LayerNorm")
                let out = layer(x, positions: positions, attentionMask: m, validSteps: valid)
                assertClose(out.array, (try? f.tensor("/encoder/layer_00").array) ?? [], atol: 1e-4, "\(how): layer 0")
            }
        }
    }

    /// `group_normN` builds torch's GroupNorm under NeMo's name `batch_norm`: a weight and a bias,
    /// no running statistics.
    func testGroupNormConvolutionNorm() throws {
        let doc = try ConfigDocument(contentsOf: Self.configPath, overrides: ["model.encoder.conv_norm_type=group_norm4"])
        let config = try ModelConfigReader.read(doc)
        XCTAssertEqual(config.encoder.convNormType, .groupNorm(groups: 4))
        let model = NESTModel(config: config, window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, 128, 257]), seed: 1)
        let keys = model.stateDict().map(\.key).filter { $0.hasPrefix("encoder.layers.0.conv.batch_norm.") }
        XCTAssertEqual(Set(keys), ["encoder.layers.0.conv.batch_norm.weight", "encoder.layers.0.conv.batch_norm.bias"])
    }

    /// What the recipe's options beyond these would build is refused by name, never built as
    /// something else.
    func testUnbuiltStreamingOptionsAreRefusedByName() throws {
        // chunked_limited is read as NeMo's chunks, and as a plain left window when the right
        // side is unlimited (as NeMo does).
        let chunked = try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath, overrides: ["model.encoder.att_context_style=chunked_limited"])).encoder
        XCTAssertTrue(chunked.attentionChunked)
        let window = try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath, overrides: ["model.encoder.att_context_style=chunked_limited",
                                                                                                       "model.encoder.att_context_size=[4,-1]"])).encoder
        XCTAssertFalse(window.attentionChunked)
        for (override, key) in [("model.encoder.att_context_style=sliding", "att_context_style"),
                                ("model.encoder.att_context_size=[[70,13],[70,0]]", "several context sizes"),
                                ("model.encoder.conv_norm_type=groupnorm", "conv_norm_type"),
                                ("model.encoder.conv_norm_type=group_norm5", "divisible by 5 groups"),
                                ("++model.encoder.untie_biases=false", "untie_biases")] {
            XCTAssertThrowsError(try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath, overrides: [override]))) { error in
                XCTAssertTrue("\(error)".contains(key), "\(override): \(error)")
            }
        }
    }
}
