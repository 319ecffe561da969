import HDF5
import Model
import NN
import Tensor
import XCTest
import _TestSupport

/// Eval-mode parity with NeMo on the `nemo-tiny` fixture.
///
/// Tolerances: activations are O(1) after every LayerNorm; an independent float32
/// implementation differs from PyTorch by summation order only (~1e-6 per op), so 1e-4
/// absolute is ~100× the noise yet far below what a transposed weight, a swapped GLU half or
/// a wrong relative-position sign produces (errors of order 0.1–1).
final class EncoderParityTests: XCTestCase {
    func testStateDictKeysShapesAndOrderMatchNeMo() throws {
        let (model, f) = try NeMoTinyFixture.model()
        let ours = model.stateDict()
        XCTAssertEqual(Set(ours.map(\.key)), Set(try f.datasetNames(in: "/weights")))
        XCTAssertEqual(ours.count, 99)
        for e in ours { XCTAssertEqual(e.value.shape, try f.shape(of: "/weights/\(e.key)"), e.key) }
        // NeMo's state-dict order (spot checks across module boundaries).
        let keys = ours.map(\.key)
        XCTAssertEqual(keys.first, "preprocessor.featurizer.window")
        XCTAssertEqual(keys[2], "encoder.pre_encode.out.weight")
        XCTAssertEqual(Array(keys.suffix(5)), ["quantizer.codebooks", "quantizer.proj.weight", "mask_processor.mask_embedding",
                                               "decoder.decoder_layers.0.weight", "decoder.decoder_layers.0.bias"])
    }

    func testEncoderMatchesNeMoLayerByLayer() throws {
        let (model, f) = try NeMoTinyFixture.model()
        model.eval()
        let features = try f.tensor("/preprocessor/features")
        let lengths = try f.ints("/preprocessor/lengths")
        try withoutGrad {
            let conformer = try XCTUnwrap(model.encoder as? ConformerEncoder)
            let (sub, subLengths) = conformer.preEncode(features, lengths: lengths)
            assertClose(sub.array, try f.tensor("/encoder/pre_encode").array, atol: 1e-4, "pre_encode")
            XCTAssertEqual(subLengths, try f.ints("/encoder/pre_encode_lengths"))
            let (scaled, positions) = conformer.posEnc(sub)
            assertClose(scaled.array, try f.tensor("/encoder/pos_enc_output").array, atol: 1e-3, rtol: 1e-5, "xscaled")
            assertClose(try XCTUnwrap(positions).array, try f.tensor("/encoder/pos_emb").array, atol: 1e-6, "position table")

            let out = model.encoder(features, lengths: lengths, captureLayers: [0, 1])
            for i in 0..<2 {
                assertClose(out.layerOutputs[i]!.array, try f.tensor(String(format: "/encoder/layer_%02d", i)).array, atol: 1e-4, "layer \(i)")
            }
            assertClose(out.encoded.transposed(1, 2).array, try f.tensor("/encoder/output").array, atol: 1e-4, "encoder output [B, D, T′]")
            XCTAssertEqual(out.lengths, try f.ints("/encoder/lengths"))

            let logProbs = model.decoder(out.encoded)
            assertClose(logProbs.array, try f.tensor("/decoder/log_probs").array, atol: 1e-4, "decoder log-probs")
        }
    }

    func testQuantizerMatchesNeMo() throws {
        let (model, f) = try NeMoTinyFixture.model()
        let features = try f.tensor("/preprocessor/features")
        assertClose(model.quantizer.stack(features).array, try f.tensor("/quantizer/stacked_features").array, atol: 0, "time-major stacking")
        assertClose(model.quantizer.projectNormalized(features).array, try f.tensor("/quantizer/projected_normalized").array,
                    atol: 1e-5, "projected, normalised")
        let tokens = model.quantizer.tokens(features).array.map { Int($0) }
        let expected = try f.ints("/quantizer/tokens")
        let lengths = try f.ints("/preprocessor/lengths")
        let perUtterance = expected.count / lengths.count
        for (b, l) in lengths.enumerated() {
            let valid = (l + 7) / 8
            XCTAssertEqual(Array(tokens[(b * perUtterance)..<(b * perUtterance + valid)]),
                           Array(expected[(b * perUtterance)..<(b * perUtterance + valid)]), "tokens of utterance \(b)")
        }
    }

    /// The code search keeps its codebooks on the device between batches, and takes loaded ones:
    /// tokens after a state-dict load are those of a quantizer built with the loaded codes.
    func testTheCodeSearchFollowsLoadedCodebooks() throws {
        let (model, f) = try NeMoTinyFixture.model()
        let features = try f.tensor("/preprocessor/features")
        let before = model.quantizer.tokens(features).array
        XCTAssertEqual(model.quantizer.tokens(features).array, before, "the same codes twice")
        // Codes in reversed order: the tokens of a search over the new codes, not the cached ones.
        let codes = model.quantizer.codebooks.values, c = 16
        let loaded = (0..<256).reversed().flatMap { Array(codes[($0 * c)..<(($0 + 1) * c)]) }
        model.quantizer.codebooks.values = loaded
        let after = model.quantizer.tokens(features).array
        let x = model.quantizer.projectNormalized(features)
        XCTAssertEqual(after, x.nearestCodes(codebooks: Tensor(doubles: loaded, on: x.device), books: 1, classes: 256, cosine: model.quantizer.config.cosineDistance).array)
        XCTAssertNotEqual(after, before)
    }

    /// `dist_fn: cosine` (NeMo's einsum then max): the largest dot product. With NeMo's unit
    /// codes and unit projections it picks the codes l2 picks, so the fixture's tokens hold.
    func testCosineDistancePicksTheLargestDotProduct() throws {
        let (model, f) = try NeMoTinyFixture.model()
        let features = try f.tensor("/preprocessor/features")
        let x = model.quantizer.projectNormalized(features)
        let codes = model.quantizer.codebooks.values
        let cosine = x.nearestCodes(codebooks: Tensor(doubles: codes, on: x.device), books: 1, classes: 256, cosine: true).array.map { Int($0) }
        let values = x.array, c = 16
        for (pos, token) in cosine.enumerated() {
            let dots = (0..<256).map { code in (0..<c).reduce(0.0) { $0 + Double(values[pos * c + $1]) * codes[code * c + $1] } }
            XCTAssertEqual(token, dots.indices.max { dots[$0] < dots[$1] || (dots[$0] == dots[$1] && $0 > $1) }, "position \(pos)")
        }
        let expected = try f.ints("/quantizer/tokens"), lengths = try f.ints("/preprocessor/lengths")
        let perUtterance = expected.count / lengths.count
        for (b, l) in lengths.enumerated() {
            let valid = (l + 7) / 8
            XCTAssertEqual(Array(cosine[(b * perUtterance)..<(b * perUtterance + valid)]), Array(expected[(b * perUtterance)..<(b * perUtterance + valid)]))
        }
    }
}
