import Interop
import Audio
import Config
import Foundation
import Formats
import Training
import XCTest
import _TestSupport

/// Inputs written to crash, hang or exhaust memory: each must end in an error naming the file
/// and the key (or line), quickly and without allocating from what the input claims.
final class HostileInputTests: XCTestCase {
    let tiny = CLI.root.appendingPathComponent("Configs/tiny.yaml").path
    var tinyYAML: String { (try? String(contentsOfFile: tiny, encoding: .utf8)) ?? "" }

    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    private func configError(_ text: String, overrides: [String] = []) -> String {
        message { _ = try RunConfig(try ConfigDocument(text: text, file: "hostile.yaml", overrides: overrides), requireData: false) }
    }

    private func shell(_ command: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, command)
    }

    /// "Billion laughs": each level lists the previous one `fanout` times.
    static func aliasBomb(levels: Int, fanout: Int, under key: String = "bomb") -> String {
        var lines = ["\(key):", "  l0: &l0 [\"ha\", \"ha\", \"ha\", \"ha\", \"ha\", \"ha\", \"ha\", \"ha\", \"ha\", \"ha\"]"]
        for i in 1...levels {
            lines.append("  l\(i): &l\(i) [" + Array(repeating: "*l\(i - 1)", count: fanout).joined(separator: ", ") + "]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // 1. Alias expansion

    func testAliasBombsAreRefusedNamingTheFileAndKey() {
        for (levels, fanout) in [(6, 10), (9, 10), (30, 2)] {
            let text = tinyYAML + Self.aliasBomb(levels: levels, fanout: fanout)
            let started = Date()
            let error = configError(text)
            XCTAssertTrue(error.contains("hostile.yaml: bomb.l"), "\(levels)×\(fanout): \(error)")
            XCTAssertTrue(error.contains("more than \(YAMLLimits.maxNodes) nodes"), error)
            print("alias bomb \(levels) levels × \(fanout): refused in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        }
        // Many aliases of a small node: refused by count before parsing.
        let many = tinyYAML + "small: &s [1]\nmany: [" + Array(repeating: "*s", count: YAMLLimits.maxAliases + 1).joined(separator: ", ") + "]\n"
        XCTAssertTrue(configError(many).contains("more than \(YAMLLimits.maxAliases) YAML aliases"), configError(many))
        // A few aliases are fine.
        let fine = tinyYAML + "shared: &s {a: 1, b: [2, 3]}\nuses: [*s, *s]\n"
        XCTAssertEqual(configError(fine), "")
    }

    func testInterpolationBombsAreRefused() {
        // The same doubling through whole-value and in-text interpolations.
        var tree = "ibomb:\n  k0: [1, 2, 3, 4, 5, 6, 7, 8]\n"
        for i in 1...24 { tree += "  k\(i): [\"${ibomb.k\(i - 1)}\", \"${ibomb.k\(i - 1)}\"]\n" }
        XCTAssertTrue(configError(tinyYAML + tree).contains("more than \(YAMLLimits.maxNodes) nodes"), configError(tinyYAML + tree))
        var text = "tbomb:\n  s0: hahahahahahahahahahahahahahahaha\n"
        for i in 1...40 { text += "  s\(i): \"${tbomb.s\(i - 1)}${tbomb.s\(i - 1)}\"\n" }
        XCTAssertTrue(configError(tinyYAML + text).contains("longer than"), configError(tinyYAML + text))
    }

    // 2. Depth

    func testDeepNestingIsRefusedBeforeParsing() {
        let n = 5_000
        let cases = [
            ("flow lists", "deep: " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + "\n"),
            ("flow maps", "deep: " + String(repeating: "{a: ", count: n) + "1" + String(repeating: "}", count: n) + "\n"),
            ("compact block lists", "deep:\n  " + String(repeating: "- ", count: n) + "x\n"),
            ("indented maps", "deep:\n" + (1...300).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1\n"),
            ("flow over lines", "deep:\n" + String(repeating: "  [\n", count: n) + String(repeating: "  ]\n", count: n)),
        ]
        for (name, yaml) in cases {
            let error = configError(tinyYAML + yaml)
            XCTAssertTrue(error.contains("hostile.yaml: line ") && error.contains("nesting deeper than \(YAMLLimits.maxDepth)"), "\(name): \(error)")
        }
        // Depth below the limit parses; a `|` block scalar's text is not nesting.
        XCTAssertEqual(configError(tinyYAML + "ok: " + String(repeating: "[", count: 60) + String(repeating: "]", count: 60) + "\n"), "")
        XCTAssertEqual(configError(tinyYAML + "note: |\n" + String(repeating: "  [[[[[[[[[[ ' \" {{{{{{{{\n", count: 100)), "")
        // Overrides are YAML too.
        XCTAssertTrue(message { _ = try ConfigDocument(contentsOf: tiny, overrides: ["++x=" + String(repeating: "[", count: n)]) }
            .contains("nesting deeper"))
    }

    /// A `.nemo` whose `model_config.yaml` is a bomb or nested 5,000 deep: `info --nemo` refuses it.
    func testHostileConfigInsideANemoArchive() throws {
        let dir = CLI.temporaryDirectory()
        let original = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.nemo").path
        for (name, extra) in [("bomb", Self.aliasBomb(levels: 8, fanout: 10)), ("deep", "deep: " + String(repeating: "[", count: 5_000) + "\n")] {
            try shell("""
                set -e; cd '\(dir)'; rm -rf x && mkdir x && tar -xf '\(original)' -C x
                cfg=$(find x -name model_config.yaml); printf '%s' '\(extra)' >> "$cfg"
                (cd x && tar -cf ../\(name).nemo .)
                """)
            let r = try CLI.run(["info", "--nemo", "\(dir)/\(name).nemo"])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("\(name).nemo:model_config.yaml"), r.stderr)
            XCTAssertTrue(r.stderr.contains(name == "bomb" ? "nodes" : "nesting deeper"), r.stderr)
        }
    }

    // 3. Front-end sizes

    func testFrontEndSizesAreCheckedAtConfigTime() {
        let p = "model.preprocessor"
        for (overrides, key) in [(["\(p).n_fft=128"], "n_fft (128) must be at least the window"),
                                 (["\(p).n_fft=256", "\(p).window_size=0.02"], "n_fft (256) must be at least the window (window_size × sample_rate = 320"),
                                 (["\(p).window_size=0.00001"], "window_size gives 0 samples"),
                                 (["\(p).window_stride=0"], "window_stride gives 0 samples"),
                                 (["\(p).n_fft=0"], "n_fft (0)"),
                                 (["\(p).n_fft=-512"], "n_fft (-512)"),
                                 (["\(p).pad_to=0"], "pad_to (0)"),
                                 (["\(p).dither=-1"], "dither"),
                                 (["\(p).sample_rate=0"], "sample_rate (0)"),
                                 (["\(p).features=300", "model.encoder.feat_in=300", "model.quantizer.feat_in=300", "model.masking.feat_in=300"],
                                  "features (300) must be in 1…n_fft/2+1 (257)")] {
            let error = configError(tinyYAML, overrides: overrides)
            XCTAssertTrue(error.contains("hostile.yaml: \(p).\(key)"), "\(overrides): \(error)")
        }
        XCTAssertEqual(configError(tinyYAML, overrides: ["\(p).n_fft=400"]), "", "a window as long as the FFT is fine")
    }

    func testInfoRefusesATooShortFFTBeforeAnyRun() throws {
        let r = try CLI.run(["info", "--config", "Configs/tiny.yaml", "model.preprocessor.n_fft=128"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("Configs/tiny.yaml: model.preprocessor.n_fft (128)"), r.stderr)
    }

    // 4. Compressed archives

    func testGzipBombsAreRefusedByRatio() throws {
        let dir = CLI.temporaryDirectory()
        // 512 MiB of zeros as a weights member, and as the whole stream, each about 0.5 MB gzip'd.
        try shell("""
            set -e; cd '\(dir)'; mkdir m; echo 'sample_rate: 16000' > m/model_config.yaml
            head -c 536870912 /dev/zero > m/model_weights.ckpt; (cd m && tar -cf - . | gzip -1 > ../member.nemo); rm m/model_weights.ckpt
            head -c 536870912 /dev/zero | gzip -1 > zeros.nemo
            """)
        for name in ["member", "zeros"] {
            let path = "\(dir)/\(name).nemo"
            let error = message { _ = try NemoFile(path) }
            XCTAssertTrue(error.contains("\(path): gzip data inflates past") && error.contains("decompression bomb"), error)
            let r = try CLI.run(["info", "--nemo", path])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("decompression bomb"), r.stderr)
        }
    }

    // 5. Files that are not regular files

    func testFIFOsDevicesAndFoldersAreRefusedBeforeOpening() throws {
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(mkfifo(dir + "/pipe.wav", 0o600), 0)
        try FileManager.default.createDirectory(atPath: dir + "/folder.wav", withIntermediateDirectories: true)
        for (path, kind) in [(dir + "/pipe.wav", "a FIFO"), ("/dev/zero", "a device"), (dir + "/folder.wav", "a folder")] {
            XCTAssertTrue(message { _ = try AudioFile.read(path) }.contains("\(path): \(kind)"), message { _ = try AudioFile.read(path) })
            XCTAssertTrue(message { _ = try Manifest(paths: [path]) }.contains("\(path): \(kind)"))
            XCTAssertTrue(message { _ = try ConfigDocument(contentsOf: path) }.contains("\(path): \(kind)"))
            XCTAssertTrue(message { _ = try NemoFile(path == dir + "/folder.wav" ? "/dev/null" : path) }.contains("not a regular file"))
        }
        // A link to a FIFO is followed, then refused.
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.wav", withDestinationPath: dir + "/pipe.wav")
        XCTAssertTrue(message { _ = try AudioFile.read(dir + "/link.wav") }.contains("a FIFO"))
    }

    /// A manifest naming a FIFO trains on: the entry is skipped and reported like broken audio.
    func testTrainingSkipsAFIFOInTheManifest() throws {
        try CLI.ensureTinyCorpus()
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(mkfifo(dir + "/pipe.wav", 0o600), 0)
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path
        var lines = Manifest.lines(of: try String(contentsOfFile: manifest, encoding: .utf8)).map(\.text)
        let folder = CLI.root.appendingPathComponent("Data/generated/tiny").path
        lines = lines.map { $0.replacingOccurrences(of: "\"audio_filepath\": \"", with: "\"audio_filepath\": \"\(folder)/") }
        lines.insert("{\"audio_filepath\": \"\(dir)/pipe.wav\", \"duration\": 1.5}", at: 1)
        try lines.joined(separator: "\n").write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=5", "model.train_ds.drop_last=false",
                             "model.train_ds.manifest_filepath=\(dir)/m.json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(dir)/pipe.wav: a FIFO (named pipe), not a regular file"), r.stderr)
    }

    // 6. Line endings

    func testCRLFAndCRManifestsReadAsNeMoReadsThem() throws {
        let dir = CLI.temporaryDirectory()
        let rows = (0..<4).map { "{\"audio_filepath\": \"/a/\($0).wav\", \"duration\": \(1 + $0)}" }
        for (name, separator) in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")] {
            try (rows.joined(separator: separator) + separator).write(toFile: "\(dir)/\(name).json", atomically: true, encoding: .utf8)
        }
        let lf = try Manifest(paths: ["\(dir)/lf.json"]).entries
        XCTAssertEqual(lf.count, 4)
        for name in ["crlf", "cr"] {
            let entries = try Manifest(paths: ["\(dir)/\(name).json"]).entries
            XCTAssertEqual(entries.map(\.audioPath), lf.map(\.audioPath), name)
            XCTAssertEqual(entries.map(\.duration), lf.map(\.duration), name)
            XCTAssertEqual(entries.last?.origin, "\(dir)/\(name).json:4", name)
        }
        // A bad line is named by its number whatever the line ends are.
        var bad = rows
        bad[2] = "{\"audio_filepath\": \"/a/x.wav\", \"duration\": }"
        for (name, separator) in [("crlf-bad", "\r\n"), ("mixed-bad", "\n")] {
            let text = name == "mixed-bad" ? bad[0] + "\r\n" + bad[1] + "\n" + bad[2] + "\r\n" + bad[3] : bad.joined(separator: separator)
            try text.write(toFile: "\(dir)/\(name).json", atomically: true, encoding: .utf8)
            XCTAssertTrue(message { _ = try Manifest(paths: ["\(dir)/\(name).json"]) }.contains("\(name).json:3: invalid JSON"), name)
        }
    }

    // 7. Degenerate objectives

    func testDegenerateObjectivesAreRefusedNamingTheKey() {
        for (overrides, key) in [(["model.num_classes=1"], "model.quantizer.num_classes (1)"),
                                 (["model.quantizer.num_classes=0", "model.decoder.num_classes=0"], "model.quantizer.num_classes (0)"),
                                 (["model.quantizer.code_dim=0"], "model.quantizer.code_dim (0)"),
                                 (["model.num_books=0"], "model.quantizer.num_books (0)"),
                                 (["model.quantizer.combine_time_steps=0"], "model.quantizer.combine_time_steps (0)"),
                                 (["model.num_classes=4000000000"], "model.quantizer.num_classes (4000000000)"),
                                 (["model.encoder.d_model=100000000", "model.encoder.n_heads=1"], "model.encoder.d_model (100000000)")] {
            let error = configError(tinyYAML, overrides: overrides)
            XCTAssertTrue(error.contains("hostile.yaml: \(key) must be in"), "\(overrides): \(error)")
        }
        XCTAssertTrue(configError(tinyYAML, overrides: ["model.num_classes=1"]).contains("trivial"))
    }

    // 8. Interpolation cycles

    func testInterpolationCyclesNameTheirKeys() {
        for (yaml, cycle) in [("cyc:\n  b: ${cyc.c}\n  c: ${cyc.b}\n", "cyc.b → cyc.c → cyc.b"),
                              ("self: ${self}\n", "self → self"),
                              ("t:\n  a: x${t.b}\n  b: y${t.c}\n  c: z${t.a}\n", "t.a → t.b → t.c → t.a"),
                              ("m:\n  x:\n    y: ${m.x}\n", "m.x → m.x.y → m.x")] {
            let error = configError(tinyYAML + yaml)
            XCTAssertTrue(error.contains("hostile.yaml: interpolation cycle: \(cycle)"), "\(yaml): \(error)")
        }
    }

    // 9. Overrides below a null section

    func testOverridesCreateSectionsThatAreNullInABareModelConfig() throws {
        let bare = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.config.yaml").path
        let doc = try ConfigDocument(contentsOf: bare, overrides: ["++train_ds.manifest_filepath=/data/m.json", "++train_ds.batch_size=2",
                                                                   "++trainer.max_steps=3"])
        XCTAssertEqual(try doc.string("model.train_ds.manifest_filepath"), "/data/m.json")
        XCTAssertEqual(try doc.int("model.train_ds.batch_size"), 2)
        XCTAssertEqual(try doc.int("trainer.max_steps"), 3)
        XCTAssertNil(doc.node("train_ds"), "nothing lands beside model")
        let config = try RunConfig(doc)
        XCTAssertEqual(config.train.manifests, ["/data/m.json"])
        XCTAssertEqual(config.train.batchSize, 2)
        // An empty path is an error naming the key.
        for value in ["''", "\"\"", "null"] {
            let error = message { _ = try RunConfig(try ConfigDocument(contentsOf: bare, overrides: ["++train_ds.manifest_filepath=\(value)", "++trainer.max_steps=3"])) }
            XCTAssertTrue(error.contains("model.train_ds.manifest_filepath is empty or missing"), "\(value): \(error)")
        }
    }

    func testABareModelConfigTrainsWithDataGivenAsOverrides() throws {
        try CLI.ensureTinyCorpus()
        let dir = CLI.temporaryDirectory()
        let bare = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.config.yaml").path
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path
        let r = try CLI.run(["--config", bare, "++train_ds.manifest_filepath=\(manifest)", "++train_ds.batch_size=2", "++trainer.max_steps=3",
                             "++exp_manager.exp_dir=\(dir)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("step-00000003"), r.stdout)
    }

    /// Too few utterances for the batch settings: a clear error before training, where an
    /// empty epoch used to crash the data loader.
    func testAnEpochWithoutACompleteBatchIsAnError() throws {
        try CLI.ensureTinyCorpus()
        for extra in [["model.train_ds.batch_size=16"], ["++model.train_ds.batch_duration=10", "model.train_ds.batch_size=null"]] {
            let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(CLI.temporaryDirectory())", "trainer.max_steps=2"] + extra)
            XCTAssertEqual(r.status, 1, "\(extra): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("train_manifest.json: 7 utterances make no complete batch"), r.stderr)
        }
        // Inspecting a recipe that leaves the batch to the user (batch_size: null) needs no batch setting.
        XCTAssertNoThrow(try RunConfig(try ConfigDocument(text: tinyYAML, file: "x.yaml", overrides: ["model.train_ds.batch_size=null"]), requireData: false))
    }
}
