import Config
import Foundation
import Training
import XCTest
import _TestSupport

/// `batch_duration` end to end: NeMo's Lhotse keys read and checked, a run that resumes
/// bit-identically, and N ranks × D seconds training as one process with N·D.
final class DurationBatchingRunTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func config(_ overrides: [String]) throws -> RunConfig {
        try RunConfig(try ConfigDocument(contentsOf: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, overrides: overrides), requireData: false)
    }

    func testLhotseKeysAreReadAndCheckedByName() throws {
        let t = "model.train_ds"
        let c = try config(["++\(t).batch_duration=30", "\(t).batch_size=null", "++\(t).quadratic_duration=20", "++\(t).num_buckets=4",
                            "++\(t).use_lhotse=true", "++\(t).bucket_buffer_size=10000", "++\(t).shuffle_buffer_size=10000"])
        XCTAssertEqual(c.train.duration?.seconds, 30)
        XCTAssertEqual(c.train.duration?.quadraticDuration, 20)
        XCTAssertEqual(c.train.duration?.buckets, 4)
        XCTAssertNil(c.train.duration?.maxUtterances)
        XCTAssertEqual(c.warnings, [], "every Lhotse key is used")
        XCTAssertEqual(try config(["++\(t).batch_duration=30", "++\(t).bucket_duration_bins=[2.5,5,10]"]).train.duration?.bucketEdges, [2.5, 5, 10])
        // Training needs one of batch_size and batch_duration (inspecting a config does not).
        let tiny = CLI.root.appendingPathComponent("Configs/tiny.yaml").path
        XCTAssertThrowsError(try RunConfig(try ConfigDocument(contentsOf: tiny, overrides: ["\(t).batch_size=null"]))) { error in
            XCTAssertTrue("\(error)".contains("\(t).batch_size is null and \(t).batch_duration is not set"), "\(error)")
        }
        XCTAssertEqual(try config(["++\(t).batch_duration=30", "++\(t).use_bucketing=false"]).train.duration?.buckets, 1)
        for (overrides, message) in [(["++\(t).batch_duration=0"], "\(t).batch_duration (0.0) must be"),
                                     (["\(t).batch_size=0"], "\(t).batch_size must be ≥ 1 (or set \(t).batch_duration"),
                                     (["++\(t).batch_duration=30", "++\(t).bucket_duration_bins=[5,2]"], "\(t).bucket_duration_bins must be increasing"),
                                     (["++\(t).batch_duration=30", "++\(t).bucket_duration_bins=[[5,100],[9,200]]"], "\(t).bucket_duration_bins: 2-D bins"),
                                     (["++\(t).quadratic_duration=20"], "\(t).quadratic_duration needs batch_duration")] {
            XCTAssertThrowsError(try config(overrides), "\(overrides)") { error in XCTAssertTrue("\(error)".contains(message), "\(error)") }
        }
    }

    func run(_ dir: String, _ extra: [String], ranks: Int = 1) throws -> CLI.Result {
        let arguments = ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "++model.train_ds.batch_duration=\(ranks == 1 ? 10 : 5)",
                         "model.train_ds.batch_size=\(ranks == 1 ? 4 : 2)", "++model.train_ds.num_buckets=2", "model.train_ds.drop_last=false",
                         "--threads", "1", "model.optim.lr=0.05", "++model.optim.eps=1e-4", "model.encoder.use_bias=false"] + extra
        return ranks == 1 ? try CLI.run(arguments) : try CLI.mpirun(ranks: ranks, arguments)
    }

    func testResumeIsBitIdenticalAndRanksShareEachBatch() throws {
        let full = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory(), two = CLI.temporaryDirectory()
        let r = try run(full, ["trainer.max_steps=8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try run(stopped, ["trainer.max_steps=3"]).status, 0)
        let resumed = try run(stopped, ["trainer.max_steps=8"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"))
        // Batches of up to 10 s (4 utterances): several sizes occur.
        let rows = try CLI.trainingRows(full + "/NEST-tiny").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rows.count, 8)
        let cumulative = [0.0] + rows.map { $0["audio_seconds"] as! Double }
        let perStep = zip(cumulative.dropFirst(), cumulative).map { $0 - $1 }
        XCTAssertTrue(perStep.allSatisfy { $0 <= 10 + 1e-9 }, "a batch over its 10 s budget: \(perStep)")
        XCTAssertGreaterThan(Set(perStep.map { ($0 * 1000).rounded() }).count, 2, "batches of several sizes: \(perStep)")
        // 2 ranks × 5 s (cap 2) is the global batch of 10 s (cap 4): the same losses.
        let r2 = try run(two, ["trainer.max_steps=8"], ranks: 2)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        let rows2 = try CLI.trainingRows(two + "/NEST-tiny").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rows2.count, 8)
        for (a, b) in zip(rows, rows2) {
            XCTAssertEqual(a["audio_seconds"] as? Double, b["audio_seconds"] as? Double, "step \(a["step"]!): the same utterances")
            XCTAssertEqual(a["masked_tokens"] as? Int, b["masked_tokens"] as? Int)
            XCTAssertEqual(a["loss"] as! Double, b["loss"] as! Double, accuracy: 1e-5 * (a["loss"] as! Double), "step \(a["step"]!)")
        }
    }

    /// Tarred shards batched by duration: each rank packs its own shards' order into batches
    /// of the budget, resume is exact.
    func testTarredShardsBatchByDuration() throws {
        let shards = CLI.temporaryDirectory()
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path
        XCTAssertEqual(try CLI.run(["tar", "--manifest", manifest, "--output", shards, "--shards", "3", "--workers", "2"]).status, 0)
        func run(_ dir: String, _ steps: Int) throws -> CLI.Result {
            try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=\(steps)",
                         "model.train_ds.manifest_filepath=\(shards)/tarred_audio_manifest.json", "++model.train_ds.is_tarred=true",
                         "++model.train_ds.tarred_audio_filepaths=\(shards)/audio__OP_0..2_CL_.tar", "++model.train_ds.shuffle_n=4",
                         "++model.train_ds.batch_duration=6", "model.train_ds.batch_size=null", "model.train_ds.drop_last=false"])
        }
        let full = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory()
        let r = try run(full, 6)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try run(stopped, 3).status, 0)
        XCTAssertEqual(try run(stopped, 6).status, 0)
        XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"))
        let rows = try CLI.trainingRows(full + "/NEST-tiny").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let cumulative = [0.0] + rows.map { $0["audio_seconds"] as! Double }
        let perStep = zip(cumulative.dropFirst(), cumulative).map { $0 - $1 }
        XCTAssertTrue(perStep.allSatisfy { $0 <= 6 + 1e-9 }, "batches over their 6-s budget: \(perStep)")
        // Two ranks, each packing its own shard: batches of different sizes train together.
        let two = CLI.temporaryDirectory()
        let r2 = try CLI.mpirun(ranks: 2, ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(two)", "trainer.max_steps=4", "--threads", "1",
                                           "model.train_ds.manifest_filepath=\(shards)/tarred_audio_manifest.json", "++model.train_ds.is_tarred=true",
                                           "++model.train_ds.tarred_audio_filepaths=\(shards)/audio__OP_0..2_CL_.tar",
                                           "++model.train_ds.batch_duration=6", "model.train_ds.batch_size=null", "model.train_ds.drop_last=false"])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertEqual(try CLI.trainingRows(two + "/NEST-tiny").count, 4)
    }
}
