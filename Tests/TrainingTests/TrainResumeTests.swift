import Foundation
import HDF5
import XCTest
import _TestSupport

/// End-to-end: the binary trains the tiny config; interrupted runs resume bit-identically.
final class TrainResumeTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func trainUninterrupted() throws -> (String, String) {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (dir + "/NEST-tiny", r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func testStopAndResumeIsBitIdentical() throws {
        let (full, fullLast) = try trainUninterrupted()
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=3"]).status, 0)
        let resumed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
        XCTAssertFalse(resumed.stderr.contains("whose config differs"), "only max_steps changed: \(resumed.stderr)")
        XCTAssertEqual(try CLI.trainingRows(dir + "/NEST-tiny"), try CLI.trainingRows(full))
        let a = try CLI.tensors(fullLast), b = try CLI.tensors(resumed.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (k, v) in a { XCTAssertEqual(v, b[k], "\(k) differs after resume") }
        XCTAssertGreaterThan(a.count, 150)
    }

    /// SIGKILL half-way through writing a checkpoint and again after writing but before the
    /// rename: the previous checkpoint stays valid and the resumed run ends bit-identical.
    func testKillDuringCheckpointWriteThenResume() throws {
        let (full, fullLast) = try trainUninterrupted()
        for point in ["checkpoint-mid-write", "checkpoint-before-rename"] {
            let dir = CLI.temporaryDirectory()
            // Step 4 writes the first checkpoint (every_n_train_steps 4): it dies there.
            let killed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"], environment: ["NEST_FAILPOINT": point])
            XCTAssertEqual(killed.status, 9, "expected death by SIGKILL at \(point)")
            let checkpoints = try FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny/checkpoints")
            XCTAssertFalse(checkpoints.contains { $0.hasPrefix("step-") && $0.hasSuffix(".h5") }, "no checkpoint may appear before its rename: \(checkpoints)")
            let resumed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(try CLI.trainingRows(dir + "/NEST-tiny"), try CLI.trainingRows(full), point)
            let a = try CLI.tensors(fullLast), b = try CLI.tensors(resumed.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            for (k, v) in a { XCTAssertEqual(v, b[k], "\(k) differs after kill at \(point)") }
        }
    }

    /// Resuming under a changed recipe continues with the current config and names what changed.
    func testResumeUnderAChangedConfigNamesTheChangedKeys() throws {
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=2"]).status, 0)
        let resumed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=3", "model.masking.mask_prob=0.03"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("whose config differs in model.masking.mask_prob"), resumed.stderr)
    }

    func testFreshStartsANewFolderAndKeepsTheOld() throws {
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=2"]).status, 0)
        let fresh = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=2", "--fresh"])
        XCTAssertEqual(fresh.status, 0, fresh.stderr)
        XCTAssertTrue(fresh.stderr.contains("run folder: \(dir)/NEST-tiny-1"), fresh.stderr)
        XCTAssertFalse(fresh.stderr.contains("resumed"), fresh.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/NEST-tiny/checkpoints/step-00000002.h5"), "the old run is kept")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/NEST-tiny-1/checkpoints/step-00000002.h5"))
    }

    /// Lightning's float val_check_interval is a fraction of an epoch (NeMo's yaml says 1.0).
    func testFloatValidationIntervalIsAFractionOfAnEpoch() throws {
        let dir = CLI.temporaryDirectory()
        // The tiny corpus has 3 batches per epoch (7 utterances, batch 2, drop_last).
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.val_check_interval=1.0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try String(contentsOfFile: dir + "/NEST-tiny/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("val_loss") }
        XCTAssertEqual(rows.map { $0.components(separatedBy: ",")[0] }, ["{\"step\": 0", "{\"step\": 3", "{\"step\": 6", "{\"step\": 8"])
    }

    func testSIGTERMWritesACheckpointAndExitsCleanly() throws {
        let dir = CLI.temporaryDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=100000", "trainer.val_check_interval=100000",
                             "exp_manager.checkpoint_callback_params.every_n_train_steps=100000"]
        process.currentDirectoryURL = CLI.root
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait until training is under way (metrics appear), then ask it to stop.
        let metrics = dir + "/NEST-tiny/metrics.jsonl"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && ((try? String(contentsOfFile: metrics, encoding: .utf8))?.count ?? 0) < 200 { usleep(50_000) }
        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny/checkpoints")
        XCTAssertEqual(files.filter { $0.hasSuffix(".h5") }.count, 1, "\(files)")
    }

    /// Stochastic depth draws from the step's keys: a resumed run skips the same layers.
    func testStochasticDepthResumesBitIdentically() throws {
        let full = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory()
        func run(_ dir: String, _ steps: Int) throws -> CLI.Result {
            try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=\(steps)",
                         "model.encoder.stochastic_depth_drop_prob=0.5", "model.encoder.stochastic_depth_mode=uniform"])
        }
        XCTAssertEqual(try run(full, 6).status, 0)
        XCTAssertEqual(try run(stopped, 3).status, 0)
        let resumed = try run(stopped, 6)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"))
        let plain = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(plain)", "trainer.max_steps=6"]).status, 0)
        XCTAssertNotEqual(try CLI.trainingRows(plain + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"), "layers were dropped")
    }
}
