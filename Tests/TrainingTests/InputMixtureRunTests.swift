import DataLoading
import Audio
import Config
import Foundation
import Model
import Training
import XCTest
import _TestSupport

/// `input_cfg` end to end: NeMo's keys read and checked by name, the loader's batches drawn by
/// weight, and a mixed run that resumes bit-identically and trains on 2 ranks as on one process.
final class InputMixtureRunTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    /// The tiny corpus split into two inputs (2 and 5 utterances), with absolute audio paths.
    func inputs() throws -> (small: String, large: String) {
        let folder = CLI.root.appendingPathComponent("Data/generated/tiny")
        let lines = try String(contentsOf: folder.appendingPathComponent("train_manifest.json"), encoding: .utf8)
            .split(separator: "\n").map { $0.replacingOccurrences(of: "\"audio_filepath\": \"", with: "\"audio_filepath\": \"\(folder.path)/") }
        let dir = CLI.temporaryDirectory(), small = dir + "/small.json", large = dir + "/large.json"
        try lines.prefix(2).joined(separator: "\n").write(toFile: small, atomically: true, encoding: .utf8)
        try lines.dropFirst(2).joined(separator: "\n").write(toFile: large, atomically: true, encoding: .utf8)
        return (small, large)
    }

    func mixture(_ small: String, _ large: String, weights: (Int, Int) = (3, 1)) -> [String] {
        ["model.train_ds.manifest_filepath=null",
         "++model.train_ds.input_cfg=[{type: nemo, manifest_filepath: \(small), weight: \(weights.0)}, {type: nemo, manifest_filepath: \(large), weight: \(weights.1)}]",
         "++model.train_ds.use_lhotse=true"]
    }

    func config(_ overrides: [String]) throws -> RunConfig {
        try RunConfig(try ConfigDocument(contentsOf: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, overrides: overrides))
    }

    func testInputCfgIsReadAndCheckedByName() throws {
        let (small, large) = try inputs()
        let c = try config(mixture(small, large) + ["++model.train_ds.reweight_temperature=[0.5]"])
        XCTAssertEqual(c.train.manifests, [small, large])
        XCTAssertEqual(c.train.mixture, .init(inputs: [[small], [large]], weights: [3, 1], temperature: 0.5))
        let t = "model.train_ds"
        // One input is that dataset: a manifest, or a tarred dataset.
        let one = try config(["\(t).manifest_filepath=null", "++\(t).input_cfg=[{type: nemo, manifest_filepath: \(small), weight: 2}]"])
        XCTAssertEqual(one.train.manifests, [small])
        XCTAssertNil(one.train.mixture)
        let tarred = try config(["\(t).manifest_filepath=null", "++\(t).input_cfg=[{type: nemo_tarred, manifest_filepath: \(small), tarred_audio_filepaths: 'a_0.tar,a_1.tar'}]"])
        XCTAssertEqual(tarred.train.tarred?.filepaths, ["a_0.tar", "a_1.tar"])
        for (overrides, message) in [
            (["++\(t).input_cfg=[{type: nemo, manifest_filepath: \(small), weight: 3}, {type: nemo, manifest_filepath: \(large)}]"],
             "\(t).input_cfg: every input needs a weight when one has one"),
            (["++\(t).input_cfg=[{type: lhotse_shar, shar_path: x}]"], "\(t).input_cfg.0.type: 'lhotse_shar' is not supported"),
            (["++\(t).input_cfg=[{type: nemo, manifest_filepath: \(small), weight: -1}]"], "\(t).input_cfg.0.weight (-1.0) must be a positive number"),
            (["++\(t).input_cfg=[{type: nemo_tarred, manifest_filepath: \(small), tarred_audio_filepaths: a.tar}, {type: nemo, manifest_filepath: \(large)}]"],
             "mixing nemo_tarred inputs with plain (nemo) inputs is not supported"),
            (["++\(t).input_cfg=[{type: nemo_tarred, manifest_filepath: \(small), tarred_audio_filepaths: a.tar}, {type: nemo_tarred, manifest_filepath: \(large)}]"],
             "\(t).input_cfg.1.tarred_audio_filepaths must name the shards"),
        ] {
            XCTAssertThrowsError(try config(["\(t).manifest_filepath=null"] + overrides), "\(overrides)") { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
        let two = try config(["\(t).manifest_filepath=null", "++\(t).shard_strategy=replicate",
                              "++\(t).input_cfg=[{type: nemo_tarred, manifest_filepath: \(small), tarred_audio_filepaths: 'a_{0..1}.tar', weight: 1},"
                              + " {type: nemo_tarred, manifest_filepath: \(large), tarred_audio_filepaths: [b_0.tar, b_1.tar, b_2.tar], weight: 2}]"])
        XCTAssertEqual(two.train.tarred, .init(filepaths: ["a_{0..1}.tar", "b_0.tar", "b_1.tar", "b_2.tar"], strategy: .replicate, inputPatterns: [1, 3]))
        XCTAssertEqual(two.train.mixture, .init(inputs: [[small], [large]], weights: [1, 2]))
        XCTAssertThrowsError(try config(mixture(small, large).dropFirst().map { $0 })) { error in
            XCTAssertTrue("\(error)".contains("\(t).manifest_filepath and \(t).input_cfg are both set"), "\(error)")
        }
    }

    /// The loader's epoch draws the 2-utterance input three times as often as the 5-utterance
    /// one (batches of 4 over 7 draws per epoch; 40 epochs).
    func testLoaderDrawsInputsByWeight() throws {
        let (small, large) = try inputs()
        let c = try config(mixture(small, large) + ["model.train_ds.drop_last=false"])
        let loader = try BatchLoader(settings: c.train, frontEnd: FilterbankFeatures(settings: c.frontEnd), masks: BlockMaskSampler(model: c.model),
                                     sampleRate: c.sampleRate, seed: c.seed, training: true)
        let drawn = (0..<40).flatMap { loader.batches(epoch: $0).flatMap { $0 } }
        XCTAssertEqual(drawn.count, 40 * 7)
        XCTAssertEqual(Double(drawn.filter { $0 < 2 }.count) / Double(drawn.count), 0.75, accuracy: 0.08)
    }

    /// Two tarred inputs (1 shard of 2 utterances, 2 shards of 2): every input's `shard_id`s
    /// name its own shards, the draws follow the weights, a shard_id beyond the input's own
    /// shards is an error naming the line, and the mixed run resumes bit-identically.
    func testTarredInputsMixByWeightAndResume() throws {
        let (small, large) = try inputs()
        func tar(_ manifest: String, shards: Int) throws -> String {
            let dir = CLI.temporaryDirectory()
            let r = try CLI.run(["tar", "--manifest", manifest, "--output", dir, "--shards", "\(shards)", "--workers", "1"])
            XCTAssertEqual(r.status, 0, r.stderr)
            return dir
        }
        let a = try tar(small, shards: 1), b = try tar(large, shards: 2)
        func input(_ dir: String, _ shards: String, weight: Int) -> String {
            "{type: nemo_tarred, manifest_filepath: \(dir)/tarred_audio_manifest.json, tarred_audio_filepaths: '\(dir)/\(shards)', weight: \(weight)}"
        }
        let overrides = ["model.train_ds.manifest_filepath=null", "model.train_ds.drop_last=false", "++model.train_ds.shuffle_n=2",
                         "++model.train_ds.input_cfg=[\(input(a, "audio_0.tar", weight: 3)), \(input(b, "audio__OP_0..1_CL_.tar", weight: 1))]"]
        let c = try config(overrides)
        let loader = try BatchLoader(settings: c.train, frontEnd: FilterbankFeatures(settings: c.frontEnd), masks: BlockMaskSampler(model: c.model),
                                     sampleRate: c.sampleRate, seed: c.seed, training: true)
        XCTAssertEqual(loader.manifest.entries.map(\.shardID), [0, 0, 1, 1, 2, 2], "the second input's shard_ids follow the first input's shards")
        for e in loader.manifest.entries { XCTAssertNoThrow(try loader.tarred!.member(for: e), e.origin) }
        let drawn = (0..<40).flatMap { loader.batches(epoch: $0).flatMap { $0 } }
        XCTAssertEqual(drawn.count, 40 * 6)
        XCTAssertEqual(Double(drawn.filter { $0 < 2 }.count) / Double(drawn.count), 0.75, accuracy: 0.08)
        XCTAssertEqual(loader.batches(epoch: 3), try BatchLoader(settings: c.train, frontEnd: FilterbankFeatures(settings: c.frontEnd), masks: BlockMaskSampler(model: c.model),
                                                                 sampleRate: c.sampleRate, seed: c.seed, training: true).batches(epoch: 3), "an epoch's draws are a function of (seed, epoch)")

        let narrow = overrides.dropLast() + ["++model.train_ds.input_cfg=[\(input(a, "audio_0.tar", weight: 3)), \(input(b, "audio_0.tar", weight: 1))]"]
        XCTAssertThrowsError(try BatchLoader(settings: try config(Array(narrow)).train, frontEnd: FilterbankFeatures(settings: c.frontEnd),
                                             masks: BlockMaskSampler(model: c.model), sampleRate: c.sampleRate, seed: c.seed, training: true)) { error in
            XCTAssertTrue("\(error)".contains("\(b)/tarred_audio_manifest.json:3: shard_id 1 is not among the 1 shards of this input's tarred_audio_filepaths"), "\(error)")
        }

        func run(_ dir: String, steps: Int) throws -> CLI.Result {
            try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=\(steps)", "model.train_ds.batch_size=2",
                         "--threads", "1"] + overrides)
        }
        let full = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory()
        let r = try run(full, steps: 6)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try run(stopped, steps: 2).status, 0)
        XCTAssertEqual(try run(stopped, steps: 6).status, 0)
        XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"), "resume is bit-identical")
    }

    func testMixedRunResumesBitIdenticallyAndRunsDataParallel() throws {
        let (small, large) = try inputs()
        func run(_ dir: String, steps: Int, ranks: Int = 1) throws -> CLI.Result {
            let arguments = ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=\(steps)", "model.train_ds.drop_last=false",
                             "model.train_ds.batch_size=\(4 / ranks)", "--threads", "1", "model.optim.lr=0.05", "++model.optim.eps=1e-4",
                             "model.encoder.use_bias=false"] + mixture(small, large)
            return ranks == 1 ? try CLI.run(arguments) : try CLI.mpirun(ranks: ranks, arguments)
        }
        let full = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory(), two = CLI.temporaryDirectory()
        let r = try run(full, steps: 6)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try run(stopped, steps: 2).status, 0)
        XCTAssertEqual(try run(stopped, steps: 6).status, 0)
        XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"), "resume is bit-identical")
        let r2 = try run(two, steps: 6, ranks: 2)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        let rows = { (dir: String) in try CLI.trainingRows(dir + "/NEST-tiny").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } }
        for (a, b) in zip(try rows(full), try rows(two)) where a["loss"] != nil {
            XCTAssertEqual(a["loss"] as! Double, b["loss"] as! Double, accuracy: 1e-5 * abs(a["loss"] as! Double), "step \(a["step"]!): 2 × 2 against 1 × 4")
        }
    }
}
