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
/// convolution norm, no biases. Layer 0 is run alone on NeMo's own input to it (the causal
/// subsampling in front of it is not built yet), so this checks the layer, not the encoder.
final class StreamingLayerParityTests: XCTestCase {
    func testLimitedContextCausalLayerNormLayerMatchesNeMo() throws {
        let path = Fixtures.directory.appendingPathComponent("nemo-streaming/nemo-streaming.config.yaml").path
        // The layer alone: the subsampling option it does not use is switched off to build it.
        let config = try ModelConfigReader.read(try ConfigDocument(contentsOf: path, overrides: ["model.encoder.causal_downsampling=false"])).encoder
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
        withoutGrad {
            let r1 = x + layer.feedForward1(layer.normFeedForward1(x)) * 0.5
            let attention = layer.selfAttn(layer.normSelfAtt(r1), positions: positions, mask: mask)
            assertClose(attention.array, (try? f.tensor("/encoder/in_layer_00/self_attn").array) ?? [], atol: 1e-4, "limited-context self-attention")
            let conv = layer.conv(layer.normConv(r1 + attention), validSteps: valid)
            assertClose(conv.array, (try? f.tensor("/encoder/in_layer_00/conv").array) ?? [], atol: 1e-4, "causal conv module with LayerNorm")
            let out = layer(x, positions: positions, attentionMask: mask, validSteps: valid)
            assertClose(out.array, (try? f.tensor("/encoder/layer_00").array) ?? [], atol: 1e-4, "layer 0")
        }
    }

    /// What the recipe needs beyond the layer is refused by name, never built as something else.
    func testTheRestOfTheStreamingRecipeIsRefusedByName() throws {
        let path = Fixtures.directory.appendingPathComponent("nemo-streaming/nemo-streaming.config.yaml").path
        XCTAssertThrowsError(try ModelConfigReader.read(try ConfigDocument(contentsOf: path))) { error in
            XCTAssertTrue("\(error)".contains("model.encoder.causal_downsampling"), "\(error)")
        }
        for (override, key) in [("model.encoder.att_context_style=chunked_limited", "att_context_style"),
                                ("model.encoder.att_context_size=[[70,13],[70,0]]", "several context sizes"),
                                ("model.encoder.conv_norm_type=groupnorm", "conv_norm_type"),
                                ("++model.encoder.untie_biases=false", "untie_biases")] {
            XCTAssertThrowsError(try ModelConfigReader.read(try ConfigDocument(contentsOf: path, overrides: ["model.encoder.causal_downsampling=false", override]))) { error in
                XCTAssertTrue("\(error)".contains(key), "\(override): \(error)")
            }
        }
    }
}
