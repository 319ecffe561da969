import Basics
import Formats
import Config
import Foundation
import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// Parity with NeMo for encoder options the shared fixtures do not cover, against the small
/// files `Tests/Interop/make_variant_fixtures.py` wrote with NeMo 3.0.0 (its docstring says how):
/// `abs_pos`, `rel_pos_local_attn` with windows [4, 2], [2, 5] and [3, 3], the instance and
/// group norms of the convolution module, `striding` subsampling, and the Transformer
/// recipes' `ASRTransformerEncoder` post-LN, pre-LN (with chunked_limited context, no biases)
/// and with abs_pos and GELU. Each checks the encoded input, every layer, the output, and the
/// gradient of a fixed scalar loss for every parameter.
final class EncoderVariantParityTests: XCTestCase {
    struct Reference {
        let file: SafetensorsReader
        let encoder: any SpeechEncoder
        let lengths: [Int]

        init(_ name: String) throws {
            let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Interop/Resources/\(name).safetensors").path
            file = try SafetensorsReader(try Bytes.mapping(path))
            let config = try ModelConfigReader.readEncoder(try ConfigDocument(text: file.metadata["config"] ?? "", file: name))
            encoder = makeEncoder(config, rng: RandomGenerator(seed: 1))
            try StateDictLoader.load(encoder, from: file, policy: .init(strict: true, include: { $0.hasPrefix("encoder.") }), prefix: "encoder.")
            lengths = try JSONDecoder().decode([Int].self, from: Data((file.metadata["lengths"] ?? "").utf8))
        }

        /// The model config the fixture was made from.
        static func config(_ name: String) throws -> String {
            try Reference(name).file.metadata["config"] ?? ""
        }

        func tensor(_ name: String) throws -> Tensor {
            let a = try file.read(name)
            return Tensor(a.floats, shape: a.shape)
        }
    }

    /// `zeroGradient`: parameters whose exact gradient is 0, where both sides hold only rounding
    /// noise (checked to be that small against the model's largest gradient instead).
    func check(_ name: String, zeroGradient: (String) -> Bool = { _ in false }, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Reference(name)
        r.encoder.eval()
        let out = r.encoder(try r.tensor("features"), lengths: r.lengths, captureLayers: [-1, 0, 1])
        let expectedLengths = try JSONDecoder().decode([Int].self, from: Data((r.file.metadata["encoded_lengths"] ?? "").utf8))
        XCTAssertEqual(out.lengths, expectedLengths, "\(name): encoded lengths", file: file, line: line)
        assertClose(out.layerOutputs[-1]!.array, try r.tensor("pos_enc_output").array, atol: 1e-4, "\(name): encoded input", file: file, line: line)
        for i in 0..<2 {
            assertClose(out.layerOutputs[i]!.array, try r.tensor(String(format: "layer_%02d", i)).array, atol: 1e-4, "\(name): layer \(i)", file: file, line: line)
        }
        assertClose(out.encoded.array, try r.tensor("output").array, atol: 1e-4, "\(name): output", file: file, line: line)
        let loss = (out.encoded * (try r.tensor("loss_weights"))).sum()
        XCTAssertEqual(loss.scalar, Float(r.file.metadata["loss"] ?? "") ?? .nan, accuracy: 1e-3, "\(name): loss", file: file, line: line)
        loss.backward()
        let parameters = r.encoder.trainableParameters()
        XCTAssertEqual(parameters.count, try r.file.names().filter { $0.hasPrefix("grad.") }.count, "\(name): trainable parameters", file: file, line: line)
        let largest = try parameters.map { try r.file.read("grad.encoder.\($0.name)").floats.map(abs).max() ?? 0 }.max() ?? 0
        for (key, p) in parameters {
            let expected = try r.file.read("grad.encoder.\(key)").floats
            if zeroGradient(key) {
                for (side, values) in [("nest-train", p.grad?.array ?? []), ("NeMo", expected)] {
                    XCTAssertLessThan(values.map(abs).max() ?? 0, 1e-3 * largest, "\(name): \(side)'s grad \(key) is rounding noise", file: file, line: line)
                }
                continue
            }
            let scale = expected.map(abs).max() ?? 0
            assertClose(p.grad?.array ?? [], expected, atol: max(1e-4 * scale, 2e-6), rtol: 1e-3, "\(name): grad \(key)", file: file, line: line)
        }
    }

    func testAbsolutePositionConformer() throws { try check("conformer-abs-pos") }

    /// `conv_norm_type` `instance_norm` (no parameters) and `group_norm4`, both over each
    /// utterance's frames, padded ones included, as torch's norms compute them.
    func testInstanceAndGroupNormConformer() throws {
        // A depthwise-conv bias is constant over each utterance's frames, which the instance
        // norm subtracts: its exact gradient is 0.
        try check("conformer-instance-norm", zeroGradient: { $0.hasSuffix("depthwise_conv.bias") })
        try check("conformer-group-norm4")
        XCTAssertFalse(try Reference("conformer-instance-norm").encoder.stateDict().contains { $0.key.contains("batch_norm") })
    }

    /// NeMo's local attention pairs offsets with positions exactly only for a symmetric window;
    /// the asymmetric ones test that nest-train pairs them as NeMo does (`localPosition`).
    func testLocalAttentionConformer() throws {
        for name in ["conformer-local-attn-3-3", "conformer-local-attn-4-2", "conformer-local-attn-2-5"] { try check(name) }
    }

    func testASRTransformerEncoder() throws {
        for name in ["asr-transformer-post-ln", "asr-transformer-pre-ln", "asr-transformer-abs-pos-gelu"] { try check(name) }
    }

    /// The layouts NeMo's state dicts have: abs_pos attention has no position parts; the
    /// Transformer layer has no convolution module and two norms.
    /// NeMo's `striding` subsampling (ConformerEncoder's class default): full 3×3 convolutions,
    /// `subsampling_conv_channels: -1` as d_model channels, and its causal form.
    func testStridingSubsamplingConformer() throws {
        try check("conformer-striding")
        try check("conformer-striding-causal")
        let keys = try Reference("conformer-striding").encoder.stateDict().map(\.key).filter { $0.hasPrefix("pre_encode.conv.") }
        XCTAssertEqual(keys, ["pre_encode.conv.0.weight", "pre_encode.conv.0.bias", "pre_encode.conv.2.weight", "pre_encode.conv.2.bias"])
    }

    func testStateDictLayouts() throws {
        let abs = try Reference("conformer-abs-pos").encoder.stateDict().map(\.key)
        XCTAssertFalse(abs.contains { $0.contains("pos_bias") || $0.contains("linear_pos") })
        let asr = try Reference("asr-transformer-post-ln").encoder.stateDict().map(\.key).filter { $0.hasPrefix("layers.0.") }
        XCTAssertEqual(Set(asr.map { $0.split(separator: ".")[2] }), ["norm_self_att", "self_attn", "norm_feed_forward", "feed_forward"])
    }

    /// What these classes would build beyond the fixtures is refused by name, never built as
    /// something else.
    func testUnbuiltOptionsAreRefusedByName() throws {
        let local = try Reference.config("conformer-local-attn-4-2"), asr = try Reference.config("asr-transformer-post-ln")
        for (yaml, override, message) in [
            (local, "model.encoder.att_context_size=[-1,4]", "rel_pos_local_attn needs a window"),
            (local.replacingOccurrences(of: "att_context_size: [4, 2]", with: "att_context_size: [4, 1]"),
             "model.encoder.att_context_style=chunked_limited", "only 'regular' is supported"),
            (local, "model.encoder.att_context_size=[[4,2],[2,2]]", "rel_pos_local_attn takes one window"),
            (local, "++model.encoder.global_tokens=2", "model.encoder.global_tokens: '2' is not supported (supported: 0)"),
            (local, "model.encoder.self_attention_model=rel_pos_longformer", "'rel_pos_longformer' is not supported"),
            (asr, "model.encoder.ffn_act=tanh", "model.encoder.ffn_act: 'tanh'"),
            (asr, "++model.encoder.conv_norm_type=layer_norm", "conv_norm_type is a ConformerEncoder argument; ASRTransformerEncoder does not take it"),
        ] {
            XCTAssertThrowsError(try ModelConfigReader.readEncoder(try ConfigDocument(text: yaml, file: "x.yaml", overrides: [override])), override) { error in
                XCTAssertTrue("\(error)".contains(message), "\(override): \(error)")
            }
        }
    }
}
