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
                                      noisyLengths: try f.ints("/train_step/noisy_feature_lengths"), frameMask: FrameMask(try f.tensor("/train_step/frame_mask")))
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
        let layer = ConformerLayer(config: config, rng: RandomGenerator(seed: 1), keys: DropoutKeys(seed: 1))
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
        func read(_ overrides: [String]) throws -> EncoderConfig {
            try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath, overrides: overrides)).encoder
        }
        // chunked_limited is read as NeMo's chunks; its constructor's rules are NeMo's.
        XCTAssertTrue(try read(["model.encoder.att_context_style=chunked_limited", "model.encoder.att_context_size=[4,1]"]).attentionChunked)
        for (override, key) in [("model.encoder.att_context_style=sliding", "att_context_style"),
                                ("model.encoder.att_context_style=chunked_limited", "left must be a multiple of right + 1"),
                                ("model.encoder.att_context_size=[4,-1]", "right context cannot be unlimited with chunked_limited"),
                                ("model.encoder.conv_norm_type=groupnorm", "conv_norm_type"),
                                ("model.encoder.conv_norm_type=group_norm5", "divisible by 5 groups"),
                                ("++model.encoder.untie_biases=false", "untie_biases")] {
            let overrides = override.contains("[4,-1]") ? [override, "model.encoder.att_context_style=chunked_limited"] : [override]
            XCTAssertThrowsError(try read(overrides)) { error in
                XCTAssertTrue("\(error)".contains(key), "\(override): \(error)")
            }
        }
    }

    /// Multi-lookahead training: several contexts with `att_context_probs`; each training
    /// forward uses one, drawn from the model's keys ([-1, -1] is full context, also under
    /// chunked_limited); evaluation uses the first.
    func testSeveralContextSizesAreDrawnPerForwardInTraining() throws {
        let multi = ["model.encoder.att_context_style=chunked_limited", "model.encoder.att_context_size=[[4,1],[-1,-1]]", "++model.encoder.att_context_probs=[0.25,0.75]"]
        let config = try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath, overrides: multi))
        XCTAssertEqual(config.encoder.attentionContextChoices.map(\.probability), [0.25, 0.75])
        XCTAssertEqual(config.encoder.attentionContextChoices.map(\.chunked), [true, false])
        XCTAssertTrue(config.encoder.attentionChunked, "the first context is evaluation's")
        let f = try Fixtures.file("nemo-streaming")
        func model(_ overrides: [String]) throws -> NESTModel {
            let c = try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath, overrides: overrides))
            let m = NESTModel(config: c, window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, 128, 257]), seed: 1)
            try StateDictLoader.load(m, from: HDF5Group(file: f, group: "/weights", origin: "nemo-streaming"))
            return m
        }
        let features = try f.tensor("/preprocessor/features"), lengths = try f.ints("/preprocessor/lengths")
        // The fixture model has no dropout and no BatchNorm: train and eval differ only in the draw.
        let references = try [["model.encoder.att_context_style=chunked_limited", "model.encoder.att_context_size=[4,1]"],
                              ["model.encoder.att_context_size=[-1,-1]"]].map { o -> [Float] in
            let m = try model(o)
            m.eval()
            return withoutGrad { m.encoder(features, lengths: lengths).encoded.array }
        }
        XCTAssertNotEqual(references[0], references[1])
        let m = try model(multi)
        m.train()
        var used = [0, 0]
        for update in 1...40 {
            m.dropoutKeys.begin(update: update, microBatch: 0, rows: nil)
            let out = withoutGrad { m.encoder(features, lengths: lengths).encoded.array }
            guard let which = references.firstIndex(of: out) else { return XCTFail("update \(update): neither context's output") }
            used[which] += 1
        }
        XCTAssertTrue(used[0] > 0 && used[1] > used[0], "drawn 1 : 3, got \(used)")
        m.eval()
        XCTAssertEqual(withoutGrad { m.encoder(features, lengths: lengths).encoded.array }, references[0], "evaluation uses the first context")
        for (override, key) in [("++model.encoder.att_context_probs=[0.5]", "one probability per context size"),
                                ("++model.encoder.att_context_probs=[0.5,0.6]", "must be a distribution"),
                                ("model.encoder.att_context_size=[[4,1],[6,-1]]", "right context cannot be unlimited")] {
            XCTAssertThrowsError(try ModelConfigReader.read(try ConfigDocument(contentsOf: Self.configPath, overrides: Array(multi.prefix(2)) + [override]))) { error in
                XCTAssertTrue("\(error)".contains(key), "\(override): \(error)")
            }
        }
    }
}
