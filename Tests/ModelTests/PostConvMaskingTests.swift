import Basics
import Formats
import Config
import Foundation
import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// `mask_position: post_conv` against one NEST train step of NeMo 3.0.0
/// (`Tests/Interop/make_post_conv_fixture.py`: the nemo-tiny model with masking after the
/// subsampling; NeMo's forward needed one transpose to run at all, its docstring says which).
final class PostConvMaskingTests: XCTestCase {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/Resources/nest-post-conv.safetensors").path
    static let data: Set<String> = ["clean", "noisy", "frame_mask", "tokens"]

    static func reference() throws -> (NESTModel, SafetensorsReader) {
        let file = try SafetensorsReader(try Bytes.mapping(path))
        let config = try ModelConfigReader.read(try ConfigDocument(text: file.metadata["config"] ?? "", file: "nest-post-conv"))
        let model = NESTModel(config: config, window: Tensor(zeros: [400]), filterbank: Tensor(zeros: [1, 80, 257]), seed: 1)
        try StateDictLoader.load(model, from: file, policy: .init(strict: true, include: { !$0.hasPrefix("grad.") && !data.contains($0) }))
        return (model, file)
    }

    /// NeMo's rewriting of the config, and its state dict: the subsampling and the mask
    /// embedding under all of NeMo's keys, counted once.
    func testConfigAndStateDictAreNeMos() throws {
        let (model, file) = try Self.reference()
        let c = model.config
        XCTAssertEqual(c.maskPosition, .postConv)
        XCTAssertEqual(c.quantizer.featIn, c.encoder.dModel)
        XCTAssertEqual(c.masking.featIn, c.encoder.dModel)
        XCTAssertEqual(c.masking.blockSize, 40 / 8)
        XCTAssertEqual(c.loss.combineTimeSteps, 1)
        let nemoKeys = Set(try file.names().filter { !$0.hasPrefix("grad.") && !Self.data.contains($0) })
        XCTAssertEqual(Set(model.stateDict().map(\.key).filter { !$0.hasSuffix("num_batches_tracked") }), nemoKeys)
        XCTAssertTrue(nemoKeys.contains("pre_encoder.pre_encode.out.weight") && nemoKeys.contains("encoder.pre_encode.masking.mask_embedding"))
        let noGrad = try JSONDecoder().decode([String].self, from: Data((file.metadata["no_grad"] ?? "").utf8))
        let trainable = model.trainableParameters().map(\.name)
        XCTAssertEqual(Set(trainable), Set(try file.names().filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) }).union(noGrad),
                       "NeMo's trainable parameters, each once")
    }

    /// Targets from the subsampled clean features, the mask on encoder frames, the loss and
    /// every gradient; the subsampling gets none (NeMo detaches its masked output).
    func testTrainStepMatchesNeMo() throws {
        let (model, file) = try Self.reference()
        func tensor(_ name: String) throws -> Tensor { let a = try file.read(name); return Tensor(a.floats, shape: a.shape) }
        let lengths = try JSONDecoder().decode([Int].self, from: Data((file.metadata["lengths"] ?? "").utf8))
        model.train()
        let frameMask = FrameMask(try tensor("frame_mask"))
        XCTAssertEqual(frameMask.frames, model.config.maskFrames(256), "the mask lies on the encoder frames")
        let r = model.maskedTokenLoss(clean: try tensor("clean"), noisy: try tensor("noisy"), noisyLengths: lengths, frameMask: frameMask)
        let tokens = try file.read("tokens").floats.map { Int($0) }
        let masked = r.tokenMask.indices.filter { r.tokenMask[$0] }
        XCTAssertEqual(r.maskedTokens, frameMask.maskedFrames)
        XCTAssertEqual(r.maskedTargets.array.map { Int($0) }, masked.map { tokens[$0] }, "targets of the subsampled clean features")
        XCTAssertEqual(r.loss.scalar, Float(file.metadata["loss"] ?? "") ?? .nan, accuracy: 1e-5)
        r.loss.backward()
        for (name, p) in model.trainableParameters() {
            if name.contains("pre_encode.") {
                XCTAssertNil(p.grad, "\(name): NeMo's subsampling gets no gradient under post_conv")
                continue
            }
            let expected = try file.read("grad.\(name)").floats
            let scale = expected.map(abs).max() ?? 0
            assertClose(p.grad?.array ?? [], expected, atol: max(1e-4 * scale, 2e-6), rtol: 1e-3, "grad \(name)")
        }
    }

    /// NeMo rewrites the loss's combine_time_steps for post_conv but not the quantizer's.
    func testQuantizerCombiningFramesIsRefusedByName() throws {
        let file = try SafetensorsReader(try Bytes.mapping(Self.path))
        let doc = try ConfigDocument(text: file.metadata["config"] ?? "", file: "x.yaml", overrides: ["model.quantizer.combine_time_steps=8"])
        XCTAssertThrowsError(try ModelConfigReader.read(doc)) { error in
            XCTAssertTrue("\(error)".contains("x.yaml: model.quantizer.combine_time_steps (8) must be 1 with model.mask_position: post_conv"), "\(error)")
        }
    }
}
