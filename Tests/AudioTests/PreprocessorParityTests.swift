import Audio
import Foundation
import HDF5
import Tensor
import XCTest
import _TestSupport

/// NeMo's log-mel front end: fixture parity and the spec's reference values (§2, §11.3).
final class PreprocessorParityTests: XCTestCase {
    func testWindowAndFilterbankEqualNeMoBuffers() throws {
        let f = try Fixtures.nemoTiny()
        let features = FilterbankFeatures()
        assertClose(features.window, try f.read("/weights/preprocessor.featurizer.window").floats, atol: 2.5e-7, "window (torch builds it in float32: 1–2 ulp)")
        assertClose(features.filterbank, try f.read("/weights/preprocessor.featurizer.fb").floats, atol: 1e-8, rtol: 1e-5, "filterbank")
        // Spec §2.3 reference values.
        XCTAssertEqual(features.filterbank[1], 0.0225346, accuracy: 1e-6)
        XCTAssertEqual(features.filterbank[2], 0.0086377, accuracy: 1e-6)
        XCTAssertEqual(features.filterbank[0], 0)
        XCTAssertEqual(features.filterbank.max()!, 0.0264066, accuracy: 1e-6)
        let last = Array(features.filterbank[(79 * 257)..<(80 * 257)])
        XCTAssertEqual(last.indices.filter { last[$0] > 0 }, Array(238...255))
    }

    /// The streaming and v2 recipes' front end: 128 mel bands, `normalize: NA` (raw log-mel),
    /// `pad_to: 8`, on the `nemo-streaming` fixture.
    func testRawLogMelWith128BandsMatchesNeMo() throws {
        let f = try Fixtures.file("nemo-streaming")
        var settings = FilterbankFeatures.Settings()
        (settings.features, settings.normalize, settings.padTo) = (128, false, 8)
        let front = FilterbankFeatures(settings: settings)
        assertClose(front.filterbank, try f.read("/weights/preprocessor.featurizer.fb").floats, atol: 1e-8, rtol: 1e-5, "128-band filterbank")
        let audio = try f.read("/input/audio")
        let n = audio.shape[1]
        let batch = (0..<audio.shape[0]).map { Array(audio.floats[($0 * n)..<(($0 + 1) * n)]) }
        let (features, frames) = front(batch, lengths: try f.read("/input/audio_len").ints, dither: nil)
        XCTAssertEqual(features.shape, [2, 128, 176], "padded to a multiple of 8")
        XCTAssertEqual(frames, try f.read("/preprocessor/lengths").ints)
        // Raw log-mel spans about −17…5: the same float differences as normalised features, relative.
        assertClose(features.array, try f.read("/preprocessor/features").floats, atol: 2e-3, rtol: 1e-3, "raw log-mel")
    }

    func testFeaturesMatchNeMoOnFixtureAudio() throws {
        let f = try Fixtures.nemoTiny()
        let audio = try f.read("/input/audio")
        let lengths = try f.read("/input/audio_len").ints
        let n = audio.shape[1]
        let batch = (0..<audio.shape[0]).map { Array(audio.floats[($0 * n)..<(($0 + 1) * n)]) }
        let (features, frames) = FilterbankFeatures()(batch, lengths: lengths, dither: nil)
        XCTAssertEqual(features.shape, try f.read("/preprocessor/features").shape)
        XCTAssertEqual(frames, try f.read("/preprocessor/lengths").ints)
        // Normalised features are O(1); values near the log floor amplify float differences
        // (spec §11.3 suggests 1e-2), the bulk agrees far more closely.
        let expected = try f.read("/preprocessor/features").floats
        assertClose(features.array, expected, atol: 2e-3, rtol: 1e-3, "features")
        let meanError = zip(features.array, expected).map { abs($0 - $1) }.reduce(0, +) / Float(expected.count)
        XCTAssertLessThan(meanError, 1e-4, "mean absolute error")
    }

    func testSpecReferenceSineRawLogMel() {
        var settings = FilterbankFeatures.Settings()
        settings.normalize = false
        let x = (0..<16000).map { Float(0.5 * sin(2 * Double.pi * 1000 * Double($0) / 16000)) }
        let (features, frames) = FilterbankFeatures(settings: settings)([x], lengths: [16000], dither: nil)
        XCTAssertEqual(features.shape, [1, 80, 112])
        XCTAssertEqual(frames, [100])
        let column = (0..<80).map { features.array[$0 * 112 + 50] }
        assertClose(Array(column[24...29]), [-1.8083, 1.7648, 2.2742, 1.0116, -2.5276, -6.6757], atol: 2e-3, "frame 50, bins 24…29")
        XCTAssertEqual(column.indices.max { column[$0] < column[$1] }, 26)
        XCTAssertEqual(column.min()!, log(Float(5.960464477539063e-08)), accuracy: 1e-3)
        XCTAssertTrue((100..<112).allSatisfy { t in (0..<80).allSatisfy { features.array[$0 * 112 + t] == 0 } })
    }

    func testSpecReferenceChirpNormalised() {
        let x = (0..<16000).map { n -> Float in
            let t = Double(n) / 16000
            return Float(0.3 * sin(2 * Double.pi * (200 * t + 1900 * t * t)))
        }
        let (features, _) = FilterbankFeatures()([x], lengths: [16000], dither: nil)
        func at(_ bin: Int, _ frame: Int) -> Float { features.array[bin * 112 + frame] }
        XCTAssertEqual(at(40, 50), 0.2923, accuracy: 1e-2)
        XCTAssertEqual(at(60, 90), 2.7571, accuracy: 1e-2)
        XCTAssertEqual(at(20, 10), 0.8929, accuracy: 1e-2)
    }

    func testShapesFollowNeMo() {
        let fe = FilterbankFeatures()
        for (n, valid, t) in [(16000, 100, 112), (16159, 100, 112), (16160, 101, 112), (48000, 300, 304), (160000, 1000, 1008)] {
            XCTAssertEqual(fe.validFrames(n), valid)
            XCTAssertEqual(fe.paddedFrames(n), t)
        }
    }

    func testDitherOnlyWhenAGeneratorIsGiven() {
        let x = [Float](repeating: 0.1, count: 4000)
        let fe = FilterbankFeatures()
        let (a, _) = fe([x], lengths: [4000], dither: nil)
        let (b, _) = fe([x], lengths: [4000], dither: nil)
        let (c, _) = fe([x], lengths: [4000], dither: [RandomGenerator(seed: 1)])
        XCTAssertEqual(a.array, b.array)
        XCTAssertNotEqual(a.array, c.array)
    }

    /// What data-parallel training relies on: an utterance's features (dither included) do not
    /// depend on the rest of its batch; a longer neighbour only adds zero frames.
    func testAnUtterancesFeaturesDoNotDependOnItsBatch() {
        let x = (0..<4000).map { Float(sin(Double($0) * 0.05)) * 0.3 }, y = (0..<9000).map { Float(cos(Double($0) * 0.02)) * 0.2 }
        let fe = FilterbankFeatures()
        let (alone, _) = fe([x], lengths: [4000], dither: [RandomGenerator(seed: 7)])
        let (together, _) = fe([x + [Float](repeating: 0, count: 5000), y], lengths: [4000, 9000],
                               dither: [RandomGenerator(seed: 7), RandomGenerator(seed: 8)])
        let (f, t1, t2) = (alone.shape[1], alone.shape[2], together.shape[2])
        XCTAssertGreaterThan(t2, t1)
        for row in 0..<f {
            let a = alone.array[(row * t1)..<((row + 1) * t1)], b = together.array[(row * t2)..<((row + 1) * t2)]
            XCTAssertEqual(Array(b.prefix(t1)), Array(a), "feature \(row)")
            XCTAssertTrue(b.dropFirst(t1).allSatisfy { $0 == 0 })
        }
    }
}
