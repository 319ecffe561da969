import Foundation
import Model
import Tensor
import XCTest

/// RandomBlockMasking (spec §4) and the token mask of MultiMLMLoss (§7), statistically and by rule.
final class MaskingTests: XCTestCase {
    func masking(_ configure: (inout MaskingConfig) -> Void = { _ in }) -> BlockMaskSampler {
        var c = MaskingConfig()
        c.blockSize = 40; c.maskProb = 0.01; c.allowOverlap = true
        configure(&c)
        return BlockMaskSampler(config: c)
    }

    func testOverlapModeFractionsMatchNeMosMeasurements() {
        let m = masking()
        let rng = RandomGenerator(seed: 2)
        let loss = MultiMLMLoss(config: LossConfig())
        var frames = 0.0, tokens = 0.0
        let runs = 400
        for _ in 0..<runs {
            let mask = m.drawMask(featureLengths: [1000], featureFrames: 1008, rngs: [rng])
            frames += Double(mask.values.prefix(1000).reduce(0, +)) / 1000
            let t = loss.tokenMask(frameMask: mask)
            tokens += Double(t.prefix(125).filter { $0 }.count) / 125
            XCTAssertEqual(mask.values[999], 0, "the last valid frame is never masked")
            XCTAssertTrue(mask.values[1000...].allSatisfy { $0 == 0 }, "padding is never masked")
        }
        // NeMo measured 31.6 % of frames and 28.6 % of tokens for 10 s utterances.
        XCTAssertEqual(frames / Double(runs), 0.316, accuracy: 0.01)
        XCTAssertEqual(tokens / Double(runs), 0.286, accuracy: 0.01)
    }

    func testShortUtterancesMaskTheFirstEightFrames() {
        let m = masking()
        for length in [20, 50] {   // 40 ≥ 0.8·L
            let mask = m.drawMask(featureLengths: [length], featureFrames: 64, rngs: [RandomGenerator(seed: 3)])
            XCTAssertEqual(Array(mask.values.prefix(10)), [1, 1, 1, 1, 1, 1, 1, 1, 0, 0], "L = \(length)")
        }
        // L = 100 (1 s): P(no block) = 0.99^60 ≈ 0.55.
        let rng = RandomGenerator(seed: 4)
        let empty = (0..<2000).filter { _ in m.drawMask(featureLengths: [100], featureFrames: 112, rngs: [rng]).values.allSatisfy { $0 == 0 } }.count
        XCTAssertEqual(Double(empty) / 2000, 0.547, accuracy: 0.03)
    }

    func testMaskedFramesTakeTheFrozenEmbedding() {
        let m = RandomBlockMasking(config: masking().config, rng: RandomGenerator(seed: 1))
        XCTAssertFalse(m.maskEmbedding.requiresGrad)
        let std = (m.maskEmbedding.array.map { $0 * $0 }.reduce(0, +) / 80).squareRoot()
        XCTAssertEqual(std, 0.1, accuracy: 0.03, "N(0, 0.1²)")
        let features = Tensor(repeating: 7, shape: [1, 80, 16])
        var maskValues = [Float](repeating: 0, count: 16)
        maskValues[3] = 1
        let out = m.apply(features, frameMask: FrameMask(maskValues, batch: 1, frames: 16))
        for f in 0..<80 {
            XCTAssertEqual(out.array[f * 16 + 3], m.maskEmbedding.array[f])
            XCTAssertEqual(out.array[f * 16 + 4], 7)
        }
    }

    func testTokenMaskNeedsSevenOfEightFrames() {
        let loss = MultiMLMLoss(config: LossConfig())
        var v = [Float](repeating: 0, count: 16)
        for i in 0..<7 { v[i] = 1 }          // token 0: 7 of 8
        for i in 8..<14 { v[i] = 1 }         // token 1: 6 of 8
        XCTAssertEqual(loss.tokenMask(frameMask: FrameMask(v, batch: 1, frames: 16)), [true, false])
    }

    /// `allow_overlap: false` (RandomBlockMasking's class default) masks what NeMo 3.0.0 masks:
    /// for every (L, mask_prob, block_size) of the fixture (Tests/Interop/make_masking_fixture.py)
    /// exactly NeMo's number of frames on every draw (NeMo's count depends on L, p and bs
    /// alone), all inside [0, L).
    func testNonOverlapModeMasksWhatNeMoMasks() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/Resources/masking-without-overlap.json")
        let fixture = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try XCTUnwrap(fixture["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 144)
        let rng = RandomGenerator(seed: 5)
        for c in cases {
            let (length, p, bs) = (c["length"] as! Int, c["mask_prob"] as! Double, c["block_size"] as! Int)
            let m = masking { $0.allowOverlap = false; $0.maskProb = p; $0.blockSize = bs }
            for _ in 0..<100 {
                let mask = m.drawMask(featureLengths: [length], featureFrames: 1024, rngs: [rng])
                XCTAssertEqual(mask.maskedFrames, c["masked_frames"] as? Int, "L \(length), p \(p), bs \(bs)")
                XCTAssertLessThan(mask.values.lastIndex(of: 1) ?? -1, length, "L \(length), p \(p), bs \(bs): a frame past L")
            }
        }
    }
}
