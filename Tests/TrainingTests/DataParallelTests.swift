import Foundation
import XCTest
import Formats
import _TestSupport

/// End-to-end data parallelism under Open MPI's `mpirun` (the tiny config, one thread per rank,
/// BatchNorm, dropout 0.1 and speaker-mixing augmentation on): N ranks × batch b train the
/// model one process trains with batch N·b, replicas stay identical, and kills, signals and
/// changes of world size resume as promised.
final class DataParallelTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    /// 10 steps, checkpoints every 4 (and at the end), validation at 4 and 8 and 10. The tiny
    /// corpus has 7 utterances and `drop_last` is off, so every other global batch of 4 is the
    /// short last batch of its epoch (3 utterances): with 4 ranks × 1, rank 3 holds nothing.
    ///
    /// The optimiser is tamed so that weights can be compared to 1e-5: with the tiny recipe
    /// (Noam peak 0.25, AdamW eps 1e-8) AdamW amplifies rounding differences, which two thread
    /// counts of one process show as much as two layouts of processes, to ~1e-3 of a weight in
    /// 10 steps, and biases ahead of a BatchNorm (zero true gradient) take steps of the full
    /// learning rate in a direction set by rounding. Measured: losses agree to 1e-7 either way.
    func overrides(_ dir: String, batch: Int, accumulate: Int = 1, steps: Int = 10) -> [String] {
        ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "model.train_ds.batch_size=\(batch)",
         "trainer.accumulate_grad_batches=\(accumulate)", "trainer.max_steps=\(steps)", "--threads", "1",
         "model.optim.lr=0.05", "++model.optim.eps=1e-4", "model.encoder.use_bias=false", "model.train_ds.drop_last=false"]
    }

    func train(ranks: Int, _ arguments: [String], environment: [String: String] = [:]) throws -> CLI.Result {
        ranks == 1 ? try CLI.run(arguments, environment: environment) : try CLI.mpirun(ranks: ranks, arguments, environment: environment)
    }

    func rows(_ dir: String) throws -> [[String: Any]] {
        try String(contentsOfFile: dir + "/NEST-tiny/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["loss"] != nil }
    }

    func validationRows(_ dir: String) throws -> [[String: Any]] {
        try String(contentsOfFile: dir + "/NEST-tiny/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["val_loss"] != nil }
    }

    /// Losses per step within 1e-5 relative; every tensor of the final checkpoints (weights,
    /// BatchNorm statistics, AdamW moments) within 1e-5 of its largest magnitude.
    func assertEquivalent(_ a: String, _ b: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ra = try rows(a), rb = try rows(b)
        XCTAssertEqual(ra.count, rb.count, what, file: file, line: line)
        for (x, y) in zip(ra, rb) {
            let la = x["loss"] as! Double, lb = y["loss"] as! Double
            XCTAssertEqual(la, lb, accuracy: 1e-5 * abs(la), "\(what): loss at step \(x["step"]!)", file: file, line: line)
            XCTAssertEqual(x["masked_tokens"] as? Int, y["masked_tokens"] as? Int, "\(what): masked tokens at step \(x["step"]!)", file: file, line: line)
            XCTAssertEqual(x["codebook_usage"] as? Double, y["codebook_usage"] as? Double, "\(what): codes seen at step \(x["step"]!)", file: file, line: line)
            XCTAssertEqual(x["audio_seconds"] as? Double, y["audio_seconds"] as? Double, "\(what): audio at step \(x["step"]!)", file: file, line: line)
        }
        let ta = try CLI.tensors(a + "/NEST-tiny/checkpoints/step-00000010.h5"), tb = try CLI.tensors(b + "/NEST-tiny/checkpoints/step-00000010.h5")
        var worst = (0.0, "")
        for (name, x) in ta where !name.hasPrefix("/state/") {
            guard let y = tb[name] else { XCTFail("\(what): \(name) missing", file: file, line: line); continue }
            let u = x.doubles, v = y.doubles
            let scale = max(u.map(abs).max() ?? 0, 1e-12)
            let error = zip(u, v).map { abs($0 - $1) }.max() ?? 0
            if error / scale > worst.0 { worst = (error / scale, name) }
        }
        XCTAssertLessThanOrEqual(worst.0, 1e-5, "\(what): largest relative difference in \(worst.1)", file: file, line: line)
        XCTAssertGreaterThan(ta.count, 100)
    }

    func testRanksTimesBatchEqualsOneProcessWithTheGlobalBatch() throws {
        let one = CLI.temporaryDirectory(), two = CLI.temporaryDirectory(), four = CLI.temporaryDirectory()
        let r1 = try train(ranks: 1, overrides(one, batch: 4))
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let r2 = try train(ranks: 2, overrides(two, batch: 2))
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(r2.stderr.contains("data parallel: 2 processes × 1 threads; global batch 2 × 2"), r2.stderr)
        let r4 = try train(ranks: 4, overrides(four, batch: 1))
        XCTAssertEqual(r4.status, 0, r4.stderr)
        try assertEquivalent(one, two, "2 ranks × 2 against 1 × 4")
        try assertEquivalent(one, four, "4 ranks × 1 against 1 × 4")
        // Validation shares its 2 batches out among the ranks and sums every statistic.
        let v1 = try validationRows(one), v2 = try validationRows(two)
        XCTAssertEqual(v1.count, 4)
        XCTAssertEqual(v1.map { $0["val_masked_tokens"] as? Int }, v2.map { $0["val_masked_tokens"] as? Int })
        XCTAssertEqual(v1.map { $0["val_prior_acc"] as? Double }, v2.map { $0["val_prior_acc"] as? Double }, "target counts summed across ranks")
        XCTAssertEqual(v1.map { $0["val_target_entropy"] as? Double }, v2.map { $0["val_target_entropy"] as? Double })
        for (a, b) in zip(v1, v2) {
            XCTAssertEqual(a["val_loss"] as! Double, b["val_loss"] as! Double, accuracy: 1e-5 * (a["val_loss"] as! Double))
        }
        // Every rank compared its weights' checksum after every step (log_every_n_steps 1).
        for dir in [two, four] {
            let r = try rows(dir)
            XCTAssertEqual(r.count, 10)
            XCTAssertTrue(r.allSatisfy { ($0["replicas_agree"] as? Bool) == true }, "replicas drifted apart")
        }
        // Only rank 0 writes: one metrics file and one set of checkpoints.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: two + "/NEST-tiny/checkpoints").sorted(),
                       try FileManager.default.contentsOfDirectory(atPath: one + "/NEST-tiny/checkpoints").sorted())
    }

    func testAccumulationAcrossRanks() throws {
        // 2 ranks × 1 × accumulate 2 is 1 × 2 × accumulate 2 (BatchNorm sees each micro-batch),
        // here with noise clips too (the corpus itself as the noise manifest, noise mostly).
        let noise = ["model.train_ds.noise_manifest=Data/generated/tiny/train_manifest.json",
                     "++model.train_ds.batch_augmentor.noise_ratio=0.8", "++model.train_ds.batch_augmentor.prob=0.9"]
        let one = CLI.temporaryDirectory(), two = CLI.temporaryDirectory()
        XCTAssertEqual(try train(ranks: 1, overrides(one, batch: 2, accumulate: 2) + noise).status, 0)
        let r = try train(ranks: 2, overrides(two, batch: 1, accumulate: 2) + noise)
        XCTAssertEqual(r.status, 0, r.stderr)
        try assertEquivalent(one, two, "2 ranks × 1 × 2 against 1 × 2 × 2")
    }

    /// Unreadable files in the manifest: every process skips the same utterances, so a rank's
    /// share may be empty or short (it then joins the collectives with nothing) and the run
    /// still equals one process's. A non-finite loss stops all ranks alike, without a hang.
    func testBrokenAudioAndNonFiniteStepsKeepTheRanksTogether() throws {
        let dir = CLI.temporaryDirectory()
        try "RIFF....WAVEjunk".write(toFile: dir + "/junk.wav", atomically: true, encoding: .utf8)
        var lines = try String(contentsOfFile: CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path, encoding: .utf8)
            .split(separator: "\n").map { $0.replacingOccurrences(of: "\"train/", with: "\"\(CLI.root.path)/Data/generated/tiny/train/") }
        for at in [0, 3, 5] { lines.insert("{\"audio_filepath\": \"\(dir)/junk.wav\", \"duration\": 2.0}", at: at) }
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/mixed.json", atomically: true, encoding: .utf8)
        let one = CLI.temporaryDirectory(), two = CLI.temporaryDirectory()
        let manifest = "model.train_ds.manifest_filepath=\(dir)/mixed.json"
        let r1 = try train(ranks: 1, overrides(one, batch: 4) + [manifest])
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let r2 = try train(ranks: 2, overrides(two, batch: 2) + [manifest])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(r2.stderr.contains("junk.wav: not a readable audio file"), r2.stderr)
        try assertEquivalent(one, two, "2 ranks × 2 against 1 × 4 with unreadable files")

        // 8 ranks on 7 utterances: rank 7 never holds anything, which is not "no readable audio".
        let idle = try train(ranks: 8, overrides(CLI.temporaryDirectory(), batch: 1, steps: 22))
        XCTAssertEqual(idle.status, 0, idle.stderr)

        let exploding = try train(ranks: 2, overrides(CLI.temporaryDirectory(), batch: 2, steps: 20)
                                  + ["model.optim.lr=1e30", "++trainer.max_consecutive_bad_steps=3"])
        XCTAssertNotEqual(exploding.status, 0)
        XCTAssertTrue(exploding.stderr.contains("3 non-finite steps in a row; stopping"), exploding.stderr)
    }

    /// A rank killed mid-run ends the job within seconds; rerunning the command resumes from
    /// the last checkpoint (step 4) and ends bit-identical to an uninterrupted 2-rank run.
    func testKilledRankEndsTheJobAndTheRerunResumesBitIdentically() throws {
        let full = CLI.temporaryDirectory(), dir = CLI.temporaryDirectory()
        XCTAssertEqual(try train(ranks: 2, overrides(full, batch: 2)).status, 0)
        let started = Date()
        let killed = try train(ranks: 2, overrides(dir, batch: 2), environment: ["NEST_FAILPOINT": "rank-1-after-step-6"])
        XCTAssertNotEqual(killed.status, 0, "a job that lost a rank must fail")
        XCTAssertLessThan(Date().timeIntervalSince(started), 60, "the job must end soon after the kill, not hang")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny/checkpoints"), ["step-00000004.h5"])
        let resumed = try train(ranks: 2, overrides(dir, batch: 2))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
        XCTAssertEqual(try CLI.trainingRows(dir + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"))
        let a = try CLI.tensors(full + "/NEST-tiny/checkpoints/step-00000010.h5"), b = try CLI.tensors(dir + "/NEST-tiny/checkpoints/step-00000010.h5")
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (k, v) in a { XCTAssertEqual(v, b[k], "\(k) differs after the kill and resume") }
    }

    /// A checkpoint of 2 ranks × 2 resumed by 1 process × 4, and one of 1 × 4 by 2 × 2: the
    /// global batch is the same, so the runs end as the uninterrupted one (to rounding).
    func testResumeWithAnotherWorldSize() throws {
        let full = CLI.temporaryDirectory()
        XCTAssertEqual(try train(ranks: 1, overrides(full, batch: 4)).status, 0)
        for (first, then) in [(2, 1), (1, 2)] {
            let dir = CLI.temporaryDirectory()
            XCTAssertEqual(try train(ranks: first, overrides(dir, batch: 4 / first, steps: 4)).status, 0)
            let resumed = try train(ranks: then, overrides(dir, batch: 4 / then))
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
            XCTAssertFalse(resumed.stderr.contains("global batch of"), "same global batch: no warning expected: \(resumed.stderr)")
            try assertEquivalent(full, dir, "\(first) → \(then) ranks")
        }
        // Another global batch continues at the same batch index, with a warning.
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try train(ranks: 2, overrides(dir, batch: 2, steps: 4)).status, 0)
        let changed = try train(ranks: 1, overrides(dir, batch: 2, steps: 5))
        XCTAssertEqual(changed.status, 0, changed.stderr)
        XCTAssertTrue(changed.stderr.contains("written with a global batch of 4 (2 × 2), this run's is 2 (1 × 2)"), changed.stderr)
    }

    /// SIGTERM to every rank (what Slurm sends): all stop after the same step, rank 0 writes
    /// one checkpoint there, every rank exits 0, and the same command finishes the run.
    func testSIGTERMStopsAllRanksAtOneStepWithACheckpoint() throws {
        let dir = CLI.temporaryDirectory()
        let job = try CLI.startMPIRun(ranks: 2, overrides(dir, batch: 2, steps: 100_000))
        let metrics = dir + "/NEST-tiny/metrics.jsonl"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "").split(separator: "\n").count < 8 {
            usleep(50_000)
        }
        let ranks = CLI.childProcesses(of: job.processIdentifier)
        XCTAssertEqual(ranks.count, 2, "expected the two ranks as mpirun's children")
        for pid in ranks { kill(pid, SIGTERM) }
        job.waitUntilExit()
        XCTAssertEqual(job.terminationStatus, 0)
        let stepsDone = try rows(dir).count
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny/checkpoints")
        XCTAssertTrue(checkpoints.contains(String(format: "step-%08d.h5", stepsDone)), "a checkpoint at the stop step \(stepsDone): \(checkpoints)")
        let resumed = try train(ranks: 2, overrides(dir, batch: 2, steps: stepsDone + 2))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from \(dir)/NEST-tiny/checkpoints/" + String(format: "step-%08d.h5", stepsDone)), resumed.stderr)
        XCTAssertEqual(try rows(dir).count, stepsDone + 2)
    }
}
