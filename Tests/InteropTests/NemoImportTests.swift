import Basics
import Formats
import Interop
import Config
import Foundation
import HDF5
import Model
import NN
import Tensor
import Training
import XCTest
import _TestSupport

/// Reading NVIDIA's `.nemo` files: NeMo's own `save_to()` of the nemo-tiny fixture model
/// imported bit for bit, features from it, training continued from it, and round trips of
/// every format nest-train writes.
final class NemoImportTests: XCTestCase {
    let nemoPath = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.nemo").path

    func testNemoTinyImportsBitForBitInNeMosOrder() throws {
        let nemo = try WeightsFile.open(nemoPath)
        let h5 = try Fixtures.nemoTiny()
        XCTAssertEqual(Set(try nemo.names()), Set(try h5.datasetNames(in: "/weights")))
        XCTAssertEqual(try nemo.names().count, 99)
        for name in try nemo.names() {
            let a = try nemo.read(name), b = try h5.read("/weights/\(name)")
            XCTAssertEqual(a.dtype, b.dtype, name)
            XCTAssertEqual(a, b, name)   // bit for bit: ArrayData compares the stored values
        }
        // The model built from the file's own config takes every tensor.
        let (model, config) = try Exporter.loadNemo(nemoPath)
        XCTAssertEqual(config.model.encoder.dModel, 64)
        XCTAssertEqual(config.model.quantizer.numClasses, 256)
        XCTAssertEqual(model.namedArrays().map(\.name), try nemo.names(), "NeMo's state-dict order")
    }

    /// `extract --nemo` on the fixture's own audio (written to WAV files) reproduces NeMo's eval
    /// encoder layers, front end included, to the encoder parity tests' 1e-4 (measured: 2e-6).
    func testExtractFromNemoMatchesNeMosEvalEncoder() throws {
        let f = try Fixtures.nemoTiny()
        let audio = try f.read("/input/audio"), lengths = try f.read("/input/audio_len").ints
        let dir = CLI.temporaryDirectory()
        var paths: [String] = []
        for (b, n) in lengths.enumerated() {
            let path = dir + "/utt\(b).wav"
            try CLI.writeWAV(Array(audio.floats[(b * audio.shape[1])..<(b * audio.shape[1] + n)]), to: path)
            paths.append(path)
        }
        let manifest = dir + "/manifest.json"
        try paths.enumerated().map { "{\"audio_filepath\": \"\($1)\", \"duration\": \(Double(lengths[$0]) / 16000)}" }
            .joined(separator: "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        let out = dir + "/features"
        let r = try CLI.run(["extract", "--nemo", nemoPath, "--input", manifest, "--output", out, "--layers", "all"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let encodedLengths = try f.read("/encoder/lengths").ints
        for (b, path) in paths.enumerated() {
            let npy = try Data(contentsOf: URL(fileURLWithPath: out + "/" + FeatureExtractor.featureName(path)))
            let headerLength = Int(npy[8]) | Int(npy[9]) << 8
            let values = npy.subdata(in: (10 + headerLength)..<npy.count).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let t = encodedLengths[b]
            XCTAssertEqual(values.count, 2 * 64 * t)
            for layer in 0..<2 {
                let expected = try f.read(String(format: "/encoder/layer_%02d", layer))   // [B, T', d]
                let tMax = expected.shape[1]
                var reference: [Float] = []
                for d in 0..<64 { for i in 0..<t { reference.append(expected.floats[(b * tMax + i) * 64 + d]) } }
                assertClose(Array(values[(layer * 64 * t)..<((layer + 1) * 64 * t)]), reference, atol: 1e-4, "utterance \(b) layer \(layer)")
            }
        }
        // A --config that disagrees with the file's model is named.
        let mismatch = try CLI.run(["extract", "--nemo", nemoPath, "--config", "Configs/tiny.yaml", "--input", manifest, "--output", out])
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("Configs/tiny.yaml: model.encoder."), mismatch.stderr)
    }

    /// init_from_nemo_model: a run started from the .nemo is the run started from the same
    /// weights in HDF5, loss for loss.
    func testContinuePretrainingFromNemoEqualsTheSameWeightsFromHDF5() throws {
        try CLI.ensureTinyCorpus()
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path
        let yaml = CLI.temporaryDirectory() + "/nemo-tiny.yaml"
        try (try Fixtures.nemoTiny().readString("/config/yaml")).write(toFile: yaml, atomically: true, encoding: .utf8)
        func run(_ source: String) throws -> [String] {
            let dir = CLI.temporaryDirectory()
            let r = try CLI.run(["--config", yaml, "++model.train_ds.manifest_filepath=\(manifest)", "++model.train_ds.batch_size=2",
                                 "++model.train_ds.min_duration=0.5", "++trainer.max_steps=3", "++trainer.log_every_n_steps=1",
                                 "++exp_manager.exp_dir=\(dir)", "++init_from_nemo_model=\(source)"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("initialised 99 tensors from \(source)"), r.stderr)
            return try CLI.trainingRows(dir + "/NEST")
        }
        let fromNemo = try run(nemoPath), fromHDF5 = try run(Fixtures.nemoTinyPath)
        XCTAssertEqual(fromNemo.count, 3)
        XCTAssertEqual(fromNemo, fromHDF5)
    }

    /// Under mpirun rank 0 alone reads the .nemo and broadcasts the weights: 2 ranks × 1 train
    /// as one process × 2 from the same file, loss for loss.
    func testContinuePretrainingFromNemoOnTwoRanks() throws {
        try CLI.ensureTinyCorpus()
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path
        let yaml = CLI.temporaryDirectory() + "/nemo-tiny.yaml"
        try (try Fixtures.nemoTiny().readString("/config/yaml")).write(toFile: yaml, atomically: true, encoding: .utf8)
        func losses(ranks: Int) throws -> [Double] {
            let dir = CLI.temporaryDirectory()
            let arguments = ["--config", yaml, "--threads", "1", "++model.train_ds.manifest_filepath=\(manifest)", "++model.train_ds.batch_size=\(2 / ranks)",
                             "++model.train_ds.min_duration=0.5", "++trainer.max_steps=3", "++trainer.log_every_n_steps=1",
                             "++exp_manager.exp_dir=\(dir)", "++init_from_nemo_model=\(nemoPath)"]
            let r = ranks == 1 ? try CLI.run(arguments) : try CLI.mpirun(ranks: ranks, arguments)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("initialised 99 tensors from \(nemoPath)"), r.stderr)
            XCTAssertEqual(r.stderr.components(separatedBy: "initialised 99 tensors").count - 1, 1, "rank 0 alone reads the file")
            return try String(contentsOfFile: dir + "/NEST/metrics.jsonl", encoding: .utf8).split(separator: "\n")
                .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["loss"] as? Double }
        }
        let one = try losses(ranks: 1), two = try losses(ranks: 2)
        XCTAssertEqual(one.count, 3)
        XCTAssertEqual(two.count, 3)
        for (a, b) in zip(one, two) { XCTAssertEqual(a, b, accuracy: 1e-5 * a) }
    }

    func testIncludeAndExcludeFollowNeMosSubstringRule() {
        let p = PretrainedInit(path: "x", include: ["encoder", "decoder"], exclude: ["decoder.decoder_layers"])
        XCTAssertTrue(p.selects("encoder.layers.0.conv.batch_norm.weight"))
        XCTAssertTrue(p.selects("decoder.something"))
        XCTAssertFalse(p.selects("decoder.decoder_layers.0.weight"))
        XCTAssertFalse(p.selects("quantizer.codebooks"))
        XCTAssertTrue(PretrainedInit(path: "x").selects("quantizer.codebooks"), "NeMo's default include [\"\"] takes every key")
        XCTAssertFalse(PretrainedInit(path: "x").selects("decoder_ssl.decoder_layers.0.weight"), "early uploads' unused head is dropped")
    }

    func testPretrainedModelNamesAndExclusionsAreAnswered() throws {
        let base = try String(contentsOfFile: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, encoding: .utf8)
        XCTAssertThrowsError(try RunConfig(try ConfigDocument(text: base + "\ninit_from_pretrained_model: ssl_en_nest_large_v1.0\n", file: "x.yaml"), requireData: false)) {
            XCTAssertTrue("\($0)".contains("init_from_nemo_model: /path/to/model.nemo"), "\($0)")
        }
        let dict = try RunConfig(try ConfigDocument(text: base + "\ninit_from_nemo_model:\n  model0:\n    path: a.nemo\n    include: [encoder]\n    exclude: quantizer\n", file: "x.yaml"), requireData: false)
        XCTAssertEqual(dict.initFrom, [PretrainedInit(path: "a.nemo", include: ["encoder"], exclude: ["quantizer"])])
        // Excluding the frozen quantizer warns: the targets would be new random ones.
        let (model, _) = try Exporter.loadNemo(nemoPath)
        let (_, warnings) = try PretrainedInit(path: nemoPath, exclude: ["quantizer."]).apply(to: model)
        XCTAssertTrue(warnings.contains { $0.contains("different objective") }, "\(warnings)")
        // A model of another size: the first differing key and both shapes.
        let other = ModelFactory.make(try RunConfig(try ConfigDocument(text: base, file: "tiny.yaml"), requireData: false)).0
        XCTAssertThrowsError(try PretrainedInit(path: nemoPath).apply(to: other)) {
            XCTAssertTrue("\($0)".contains("has shape") && "\($0)".contains("the model expects"), "\($0)")
        }
    }

    /// Everything nest-train writes reads back exactly: h5, safetensors and .nemo exports of a
    /// checkpoint, and a gzip-compressed .nemo (NeMo before 1.7).
    func testExportsOfEveryFormatReadBackExactly() throws {
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["export", "--nemo", nemoPath, "--output", dir + "/m.nemo", "--format", "nemo"]).status, 0)
        for format in ["h5", "safetensors"] {
            XCTAssertEqual(try CLI.run(["export", "--nemo", dir + "/m.nemo", "--output", dir + "/m.\(format)", "--format", format, "--include", "all"]).status, 0)
        }
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/bin/sh")
        gz.arguments = ["-c", "gzip -c '\(nemoPath)' > '\(dir)/old.nemo'"]
        try gz.run()
        gz.waitUntilExit()
        let original = try WeightsFile.open(nemoPath)
        for file in ["m.nemo", "m.h5", "m.safetensors", "old.nemo"] {
            let copy = try WeightsFile.open(dir + "/" + file)
            XCTAssertEqual(Set(try copy.names()), Set(try original.names()), file)
            for name in try original.names() { XCTAssertEqual(try copy.read(name), try original.read(name), "\(file) \(name)") }
        }
    }

    /// Thousands of mutated `.nemo` files, pickles and safetensors: each is read correctly or
    /// refused with an error. Figures go to docs/reliability.md.
    func testFuzzedNemoPickleAndSafetensorsInputs() throws {
        let original = try Data(contentsOf: URL(fileURLWithPath: nemoPath))
        let zip = try ZipReader(try TarReader(Bytes(original, origin: "nemo")).member("model_weights.ckpt")!)
        let pickle = try zip.entry("model_weights/data.pkl").array
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["export", "--nemo", nemoPath, "--output", dir + "/m.safetensors", "--format", "safetensors", "--include", "all"]).status, 0)
        let safetensors = try Data(contentsOf: URL(fileURLWithPath: dir + "/m.safetensors"))
        let rng = RandomGenerator(seed: 99)
        func mutate(_ bytes: [UInt8], headerBias: Int) -> [UInt8] {
            var b = bytes
            switch rng.int(in: 0...4) {
            case 0: b = Array(b.prefix(rng.int(in: 0...(b.count - 1))))                                  // truncate
            case 1: for _ in 0..<rng.int(in: 1...8) { b[rng.int(in: 0...min(b.count - 1, headerBias))] ^= UInt8(1 << rng.int(in: 0...7)) }
            case 2: let i = rng.int(in: 0...min(b.count - 4, headerBias)); for k in 0..<4 { b[i + k] = 0xFF }   // a huge length
            case 3: b.insert(contentsOf: (0..<rng.int(in: 1...16)).map { _ in UInt8(rng.int(in: 0...255)) }, at: rng.int(in: 0...min(b.count, headerBias)))
            default: b = (0..<rng.int(in: 0...512)).map { _ in UInt8(rng.int(in: 0...255)) }              // noise
            }
            return b
        }
        var outcomes: [String: (read: Int, refused: Int)] = [:]
        func attempt(_ kind: String, _ body: () throws -> Void) {
            do { try body(); outcomes[kind, default: (0, 0)].read += 1 } catch { outcomes[kind, default: (0, 0)].refused += 1 }
        }
        let originalBytes = Array(original)
        for _ in 0..<1_000 {
            let b = mutate(originalBytes, headerBias: 12_000)   // the tar headers, config and the pickle sit in the first 24 KiB
            let path = dir + "/fuzz.nemo"
            try Data(b).write(to: URL(fileURLWithPath: path))
            attempt("nemo") { let s = try WeightsFile.open(path); for n in try s.names() { _ = try s.read(n) } }
        }
        for _ in 0..<2_000 {
            let b = mutate(pickle, headerBias: pickle.count)
            attempt("pickle") {
                // Through a rebuilt archive (valid CRCs), so the unpickler and the storage checks see it.
                let records = try zip.entries.map { e in (name: e.name, body: e.name.hasSuffix("data.pkl") ? Data(b) : Data(try zip.entry(e.name).array)) }
                let s = try TorchArchiveReader(Bytes(try ZipWriter.stored(records), origin: "fuzz.ckpt"))
                for n in try s.names() { _ = try s.read(n) }
            }
        }
        let safetensorsBytes = Array(safetensors)
        for _ in 0..<1_000 {
            let b = mutate(safetensorsBytes, headerBias: 12_000)
            attempt("safetensors") { let s = try SafetensorsReader(Bytes(Data(b), origin: "fuzz")); for n in try s.names() { _ = try s.read(n) } }
        }
        let summary = outcomes.keys.sorted().map { "\($0): \(outcomes[$0]!.refused) refused, \(outcomes[$0]!.read) read" }.joined(separator: "; ")
        print("nemo import fuzz: \(summary)")
        XCTAssertEqual(outcomes.values.reduce(0) { $0 + $1.read + $1.refused }, 4_000)
        XCTAssertGreaterThan(outcomes["nemo"]?.refused ?? 0, 500, "most mutations of a .nemo must be caught")
    }

    /// NeMo's own `.nemo` files of the streaming FastConformer and the Transformer encoder
    /// restore through the reader (config and weights) and reproduce NeMo's encoder output.
    func testStreamingAndTransformerNemoFilesRestoreAndMatchNeMo() throws {
        for name in ["nemo-streaming", "nemo-transformer"] {
            let (model, config) = try Exporter.loadNemo(Fixtures.directory.appendingPathComponent("\(name)/\(name).nemo").path)
            XCTAssertEqual(config.model.encoder.architecture, name == "nemo-transformer" ? .transformer : .conformer, name)
            let f = try Fixtures.file(name)
            model.eval()
            let out = withoutGrad { model.encoder(try! f.tensor("/preprocessor/features"), lengths: try! f.read("/preprocessor/lengths").ints) }
            assertClose(out.encoded.transposed(1, 2).array, try f.tensor("/encoder/output").array, atol: 1e-4, "\(name): encoder output")
        }
    }
}
