import Audio
import Foundation
import Tensor
import XCTest
import _TestSupport

/// Manifests and audio files: good input read as NeMo reads it, bad input named precisely.
final class DataInputTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("nest-audio-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) -> String {
        let p = dir + "/" + name
        try? text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func error(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    func testManifestReadingAndFiltering() throws {
        let sine = (0..<16000).map { Float(sin(Double($0) * 0.1)) * 0.1 }
        try AudioFile.writeWAV(sine, sampleRate: 16000, to: dir + "/a.wav")
        let m = write("m.json", """
        {"audio_filepath": "a.wav", "duration": 1.0, "text": "hi"}
        {"audio_filepath": "a.wav", "duration": 0.5}
        {"audio_filepath": "/abs/b.wav", "duration": 90.0, "offset": 1.5}

        {"audio_filepath": "a.wav", "duration": 1.0, "text": "hi"}
        """)
        let manifest = try Manifest(paths: [m], minDuration: 1, maxDuration: 60)
        XCTAssertEqual(manifest.entries.count, 2)
        XCTAssertEqual(manifest.entries[0].audioPath, dir + "/a.wav", "relative to the manifest folder")
        XCTAssertEqual(manifest.entries[0].origin, m + ":1")
        XCTAssertEqual(manifest.droppedTooShort, 1)
        XCTAssertEqual(manifest.droppedTooLong, 1)
        XCTAssertEqual(manifest.warnings, [m + ":5: duplicate of line 1"])
    }

    func testMalformedManifestLinesNameFileAndLine() {
        let cases: [(String, String)] = [
            ("{\"audio_filepath\": \"a.wav\", \"duration\": 1}\n{oops", ":2: invalid JSON"),
            ("{\"duration\": 1.0}", ":1: missing audio_filepath"),
            ("{\"audio_filepath\": \"a.wav\", \"duration\": -3}", ":1: duration -3.0 s is not in (0, 86400]"),
            ("{\"audio_filepath\": \"a.wav\", \"duration\": 1e9}", ":1: duration"),
            ("{\"audio_filepath\": \"a.wav\", \"duration\": \"long\"}", ":1: duration must be a number"),
            ("{\"audio_filepath\": \"a.wav\"}", ":1: missing duration"),
            ("[1, 2]", ":1: expected a JSON object"),
        ]
        for (i, (text, expected)) in cases.enumerated() {
            let p = write("bad\(i).json", text)
            let message = error { _ = try Manifest(paths: [p]) }
            XCTAssertTrue(message.contains(p + expected), "\(message) should contain \(p + expected)")
        }
        XCTAssertTrue(error { _ = try Manifest(paths: [dir + "/missing.json"]) }.contains("missing.json: manifest not found"))
    }

    func testBadAudioFilesAreNamedWithTheReason() throws {
        XCTAssertTrue(error { _ = try AudioFile.read(dir + "/none.wav") }.contains("none.wav: no such file"))
        let junk = write("junk.wav", String(repeating: "not audio ", count: 100))
        XCTAssertTrue(error { _ = try AudioFile.read(junk) }.contains("junk.wav: not a readable audio file"))
        try AudioFile.writeWAV([], sampleRate: 16000, to: dir + "/empty.wav")
        XCTAssertTrue(error { _ = try AudioFile.read(dir + "/empty.wav") }.contains("no audio samples"))
        // A WAV whose header promises more data than the file holds.
        try AudioFile.writeWAV([Float](repeating: 0.1, count: 32000), sampleRate: 16000, to: dir + "/full.wav")
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/full.wav"))
        try data.prefix(data.count / 3).write(to: URL(fileURLWithPath: dir + "/truncated.wav"))
        XCTAssertTrue(error { _ = try AudioFile.read(dir + "/truncated.wav") }.contains("truncated"))
    }

    /// A WAV written to a pipe (ffmpeg, sox) declares its RIFF and data sizes as 0xFFFFFFFF,
    /// "unknown": it is read to its end, as libsndfile, soundfile and NeMo read it.
    func testStreamedWAVWithUnknownSizesIsReadWhole() throws {
        let samples = (0..<16000).map { Float(sin(Double($0) * 0.05)) * 0.5 }
        try AudioFile.writeWAV(samples, sampleRate: 16000, to: dir + "/whole.wav")
        var data = try Data(contentsOf: URL(fileURLWithPath: dir + "/whole.wav"))
        let dataChunk = data.range(of: Data("data".utf8))!.upperBound
        for offset in [4, dataChunk] { data.replaceSubrange(offset..<offset + 4, with: [0xFF, 0xFF, 0xFF, 0xFF]) }
        try data.write(to: URL(fileURLWithPath: dir + "/streamed.wav"))
        XCTAssertEqual(try AudioFile.read(dir + "/streamed.wav"), try AudioFile.read(dir + "/whole.wav"))
    }

    func testIntegerScalingAndChannelAveraging() throws {
        // 16-bit PCM stores round(x·32767); reading divides by 32768 like NeMo.
        try AudioFile.writeWAV([0.5, -0.25, 0], sampleRate: 16000, to: dir + "/s.wav")
        let x = try AudioFile.read(dir + "/s.wav")
        assertClose(x, [16384 / 32768, -8192 / 32768, 0], atol: 1 / 32768, "int16 scaling")
        // Stereo: sox merges two mono files with 0.5 and −0.1 → mean 0.2.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sox")
        try AudioFile.writeWAV([Float](repeating: 0.5, count: 800), sampleRate: 8000, to: dir + "/l.wav")
        try AudioFile.writeWAV([Float](repeating: -0.1, count: 800), sampleRate: 8000, to: dir + "/r.wav")
        p.arguments = ["-D", "-M", dir + "/l.wav", dir + "/r.wav", dir + "/stereo.wav"]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(try AudioFile.info(dir + "/stereo.wav").channels, 2)
        let mono = try AudioFile.read(dir + "/stereo.wav", sampleRate: 8000)
        XCTAssertEqual(mono[400], 0.2, accuracy: 1e-3)
        // An offset/duration window reads only that part.
        let window = try AudioFile.read(dir + "/l.wav", offset: 0.05, duration: 0.02, sampleRate: 8000)
        XCTAssertEqual(window.count, 160)
    }

    /// Power of `x` at `frequency` (single DFT bin with a Hann window), in dB relative to the total.
    func relativePower(_ x: [Float], at frequency: Double, rate: Double) -> Double {
        var re = 0.0, im = 0.0, total = 0.0
        let n = x.count
        for i in 0..<n {
            let w = 0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(n - 1))
            let v = Double(x[i]) * w
            re += v * cos(2 * Double.pi * frequency * Double(i) / rate)
            im -= v * sin(2 * Double.pi * frequency * Double(i) / rate)
            total += v * v
        }
        return 10 * log10((re * re + im * im) / (Double(n) * total / 2.666) + 1e-30)
    }

    func testResamplerKeepsFrequencyAndRejectsAliases() throws {
        let rate44 = 44_100.0
        let tone = (0..<44_100).map { Float(0.5 * sin(2 * Double.pi * 1000 * Double($0) / rate44)) }
        let down = try AudioFile.resample(tone, from: 44_100, to: 16_000)
        XCTAssertEqual(down.count, 16_000)
        XCTAssertGreaterThan(relativePower(down, at: 1000, rate: 16_000), -1, "the 1 kHz tone survives")
        // 10 kHz is above the new Nyquist (8 kHz): it must vanish, not alias to 6 kHz.
        let high = (0..<44_100).map { Float(0.5 * sin(2 * Double.pi * 10_000 * Double($0) / rate44)) }
        let aliased = try AudioFile.resample(high, from: 44_100, to: 16_000)
        let energy = aliased.dropFirst(200).dropLast(200).reduce(0.0) { $0 + Double($1 * $1) } / Double(aliased.count - 400)
        XCTAssertLessThan(10 * log10(energy / 0.125), -90, "stop-band rejection")
        // 8 kHz telephone audio up to 16 kHz: the tone stays at 1 kHz, no image at 7 kHz.
        let tone8 = (0..<8000).map { Float(0.5 * sin(2 * Double.pi * 1000 * Double($0) / 8000)) }
        let up = try AudioFile.resample(tone8, from: 8000, to: 16_000)
        XCTAssertEqual(up.count, 16_000)
        XCTAssertGreaterThan(relativePower(up, at: 1000, rate: 16_000), -1)
        XCTAssertLessThan(relativePower(up, at: 7000, rate: 16_000), -90)
    }

    func testAugmentationSNRSpanAndSources() {
        var settings = MultiSpeakerNoiseAugmentation.Settings()
        settings.prob = 1
        let rng = RandomGenerator(seed: 3)
        let b = 4, n = 16000
        let audio: [[Float]] = (0..<b).map { k in
            let step = 0.01 * Double(k + 1)
            return (0..<n).map { i -> Float in Float(sin(Double(i) * step)) * 0.3 }
        }
        let lengths = [16000, 12000, 14000, 9000]
        let padded = zip(audio, lengths).map { a, l in Array(a.prefix(l)) + [Float](repeating: 0, count: n - l) }
        var noiseModes = 0, speechModes = 0
        for _ in 0..<20 {
            let rngs = (0..<b).map { _ in RandomGenerator(seed: rng.next()) }
            let (noisy, records) = MultiSpeakerNoiseAugmentation(settings: settings)(padded, lengths: lengths, rngs: rngs) { _, count in
                (0..<count).map { _ in Float(rng.normal()) }
            }
            for i in 0..<b {
                let r = records[i]
                let li = lengths[i]
                let added = (0..<li).map { noisy[i][$0] - padded[i][$0] }
                let ea: Double = padded[i].prefix(li).reduce(0.0) { acc, v in acc + Double(v * v) }
                let en: Double = added.reduce(0.0) { acc, v in acc + Double(v * v) }
                XCTAssertEqual(10 * log10(ea / en), r.snrDB, accuracy: 0.05, "SNR over the utterance")
                XCTAssertEqual(r.spans.reduce(0) { $0 + $1.count }, Int(Double(li) * 0.5), "mixed span is mix_rate of the length")
                XCTAssertTrue((0..<li).filter { !r.spans[0].contains($0) }.allSatisfy { added[$0] == 0 }, "nothing outside the span")
                XCTAssertTrue(noisy[i][li...].allSatisfy { $0 == 0 }, "padding stays silent")
                switch r.mode {
                case .noise: noiseModes += 1; XCTAssertTrue((-5...20).contains(r.snrDB))
                case .speech(let sources): speechModes += 1; XCTAssertFalse(sources.contains(i)); XCTAssertTrue((-5...5).contains(r.snrDB))
                case .clean: XCTFail("prob 1 must augment every utterance")
                }
            }
        }
        XCTAssertGreaterThan(noiseModes, 15)
        XCTAssertGreaterThan(speechModes, 15)
    }
}

/// Compressed formats, float files and out-of-range headers, through libsndfile.
final class AudioFormatTests: XCTestCase {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nest-formats-\(UUID().uuidString)").path

    override func setUp() { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }

    func sox(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sox")
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "sox \(args)")
    }

    func testFLACAndOggReadLikeTheWAVTheyWereMadeFrom() throws {
        let tone = (0..<16000).map { Float(0.4 * sin(2 * Double.pi * 440 * Double($0) / 16000)) }
        try AudioFile.writeWAV(tone, sampleRate: 16000, to: dir + "/t.wav")
        try sox(["-D", dir + "/t.wav", dir + "/t.flac"])
        try sox(["-D", dir + "/t.wav", dir + "/t.ogg"])
        let wav = try AudioFile.read(dir + "/t.wav")
        let flac = try AudioFile.read(dir + "/t.flac")
        XCTAssertEqual(flac, wav, "FLAC is lossless")
        let ogg = try AudioFile.read(dir + "/t.ogg")
        XCTAssertEqual(ogg.count, wav.count)
        let error = zip(ogg, wav).map { Double(($0 - $1) * ($0 - $1)) }.reduce(0, +) / Double(wav.count)
        let power = wav.map { Double($0 * $0) }.reduce(0, +) / Double(wav.count)
        XCTAssertLessThan(10 * log10(error / power), -20, "Vorbis is lossy but close")
    }

    func testNaNSamplesAndImpossibleHeadersAreNamed() throws {
        // A float WAV holding a NaN, written with libsndfile.
        let path = dir + "/nan.wav"
        try AudioFile.writeWAV([0.1, .nan, 0.2] + [Float](repeating: 0, count: 1000), sampleRate: 16000, to: path, float: true)
        XCTAssertThrowsError(try AudioFile.read(path)) { XCTAssertTrue("\($0)".contains("non-finite sample"), "\($0)") }
        // 500 Hz and 300 kHz, 80 channels: sox writes the headers, we refuse them by name.
        try sox(["-D", "-n", "-r", "500", "-b", "16", dir + "/slow.wav", "synth", "0.5", "sine", "100"])
        XCTAssertThrowsError(try AudioFile.read(dir + "/slow.wav")) { XCTAssertTrue("\($0)".contains("unsupported sample rate 500 Hz"), "\($0)") }
        try sox(["-D", "-n", "-r", "8000", "-c", "80", "-b", "16", dir + "/wide.wav", "synth", "0.1", "sine", "100"])
        XCTAssertThrowsError(try AudioFile.read(dir + "/wide.wav")) { XCTAssertTrue("\($0)".contains("unsupported channel count 80"), "\($0)") }
    }
}
