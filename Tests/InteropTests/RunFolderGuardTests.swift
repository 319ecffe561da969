import Interop
import Foundation
import Training
import XCTest
import _TestSupport

/// What a run folder guarantees: one writer at a time, never overwritten by another model's
/// run, never a non-finite checkpoint called good, and no partial files left by dead writers.
final class RunFolderGuardTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func train(_ dir: String, _ extra: [String] = [], environment: [String: String] = [:]) throws -> CLI.Result {
        try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"] + extra, environment: environment)
    }

    /// Every file under `folder` with its bytes.
    func contents(_ folder: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in FileManager.default.subpaths(atPath: folder) ?? [] {
            var isFolder: ObjCBool = false
            FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &isFolder)
            if !isFolder.boolValue { out[name] = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name)) }
        }
        return out
    }

    /// A run folder of one model, resumed with a config of another: refused, naming what
    /// differs and how to start a new run, and not one byte of the folder changes.
    func testAnotherModelsConfigIsRefusedAndTheFolderIsUntouched() throws {
        let dir = CLI.temporaryDirectory(), run = dir + "/NEST-tiny"
        XCTAssertEqual(try train(dir, ["trainer.max_steps=4"]).status, 0)
        let before = try contents(run)
        XCTAssertNotNil(before["checkpoints/step-00000004.h5"])

        let r = try train(dir, ["trainer.max_steps=8", "model.encoder.d_model=48"])
        XCTAssertNotEqual(r.status, 0)
        for expected in ["\(run) holds a run of another model", "\(run)/checkpoints/step-00000004.h5", "is [32, 80] there and [48, 80] in this config's model",
                         "model.encoder.d_model (32 → 48)", "exp_manager.name", "--fresh", "Nothing in the run folder was changed"] {
            XCTAssertTrue(r.stderr.contains(expected), "missing '\(expected)' in: \(r.stderr)")
        }
        XCTAssertFalse(r.stderr.contains("skipping damaged"), r.stderr)
        XCTAssertEqual(try contents(run), before, "the run folder changed")

        // The same config still resumes it.
        let resumed = try train(dir, ["trainer.max_steps=8"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from \(run)/checkpoints/step-00000004.h5"), resumed.stderr)
    }

    /// A second launch on a folder in use is refused naming the holder; a holder killed with
    /// SIGKILL leaves no stuck lock: the next start takes it over and says so.
    func testOneWriterPerRunFolderAndAKilledHolderDoesNotBlock() throws {
        let dir = CLI.temporaryDirectory(), lockFile = dir + "/NEST-tiny/nest-train.lock"
        let first = Process()
        first.executableURL = URL(fileURLWithPath: CLI.binary)
        first.arguments = ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=100000"]
        first.currentDirectoryURL = CLI.root
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(60)
        while (try? String(contentsOfFile: lockFile, encoding: .utf8))?.contains("pid \(first.processIdentifier)") != true {
            XCTAssertTrue(first.isRunning && Date() < deadline, "the first run never took the lock")
            if !first.isRunning || Date() >= deadline { return }
            usleep(50_000)
        }

        let second = try train(dir, ["trainer.max_steps=2"])
        XCTAssertNotEqual(second.status, 0)
        XCTAssertTrue(second.stderr.contains("\(dir)/NEST-tiny is in use by another nest-train process"), second.stderr)
        XCTAssertTrue(second.stderr.contains("pid \(first.processIdentifier)") && second.stderr.contains(ProcessInfo.processInfo.hostName), second.stderr)
        XCTAssertTrue(first.isRunning, "the refused launch must not disturb the running one")

        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        XCTAssertTrue(FileManager.default.fileExists(atPath: lockFile), "a killed holder cannot remove its lock file")
        let third = try train(dir, ["trainer.max_steps=2", "++trainer.val_check_interval=1"])
        XCTAssertEqual(third.status, 0, third.stderr)
        XCTAssertTrue(third.stderr.contains("taking over the run folder's lock from host \(ProcessInfo.processInfo.hostName), pid \(first.processIdentifier)"), third.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: lockFile), "a run that ends releases its lock")
    }

    /// Weights that overflow while the step's loss and gradient are finite are never written as
    /// a checkpoint: the run stops naming the tensor and points at the last finite checkpoint.
    func testNonFiniteWeightsAreNeverCheckpointed() throws {
        let dir = CLI.temporaryDirectory(), run = dir + "/NEST-tiny"
        let every = "exp_manager.checkpoint_callback_params.every_n_train_steps=1"
        XCTAssertEqual(try train(dir, ["trainer.max_steps=2", every]).status, 0)
        // The learning rate of the next update overflows every weight it moves; that step's
        // loss and gradient were computed before, from finite weights.
        let r = try train(dir, ["trainer.max_steps=6", every, "model.optim.lr=1e300"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("the weights went non-finite by step 3 (/weights/"), r.stderr)
        XCTAssertTrue(r.stderr.contains("The last good checkpoint is intact: \(run)/checkpoints/step-00000002.h5"), r.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: run + "/checkpoints")
        XCTAssertEqual(files, ["step-00000002.h5"], "only the finite checkpoint, no partial file")
    }

    /// The non-finite counter: a step without masked tokens neither ends nor extends a run of
    /// non-finite steps; a finite step with tokens ends it.
    func testAStepWithoutMaskedTokensIsNeitherGoodNorBad() {
        var state = TrainingState()
        state.countStep(finite: false, maskedTokens: 12)
        state.countStep(finite: true, maskedTokens: 0)
        XCTAssertEqual(state.consecutiveBadSteps, 1, "a token-less update does not reset the run")
        state.countStep(finite: false, maskedTokens: 0)
        XCTAssertEqual(state.consecutiveBadSteps, 1, "a token-less skipped step does not extend it")
        state.countStep(finite: false, maskedTokens: 3)
        XCTAssertEqual(state.consecutiveBadSteps, 2)
        state.countStep(finite: true, maskedTokens: 3)
        XCTAssertEqual(state.consecutiveBadSteps, 0)
    }

    /// A run killed while writing a checkpoint leaves its partial file; the next start removes
    /// it, saying so, and leaves the partial files of live writers and of other hosts alone.
    func testPartialFilesOfDeadWritersAreRemovedAtStart() throws {
        let dir = CLI.temporaryDirectory(), checkpoints = dir + "/NEST-tiny/checkpoints"
        let killed = try train(dir, ["trainer.max_steps=4"], environment: ["NEST_FAILPOINT": "checkpoint-mid-write"])
        XCTAssertNotEqual(killed.status, 0)
        let partial = try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter { $0.contains(".tmp-") }
        XCTAssertEqual(partial.count, 1, "the kill should leave one partial checkpoint")
        let host = ProcessInfo.processInfo.hostName
        let live = checkpoints + "/step-00000009.h5.tmp-\(host)-\(getpid())", elsewhere = checkpoints + "/step-00000009.h5.tmp-another-host-1"
        for f in [live, elsewhere] { XCTAssertTrue(FileManager.default.createFile(atPath: f, contents: Data([1]))) }

        let r = try train(dir, ["trainer.max_steps=4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("removed \(checkpoints)/\(partial[0]), a partial file left by process"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: live) && FileManager.default.fileExists(atPath: elsewhere))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter { $0.contains(".tmp-") }.count, 2)
    }
}

/// A model that cannot fit is refused before it is allocated, with the estimate, the memory
/// available and the keys behind it; an allocation that still fails is a named error.
final class MemoryGuardTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func testAModelThatCannotFitIsRefusedBeforeAllocating() throws {
        for (overrides, keys) in [(["model.encoder.d_model=65536"], "model.encoder.d_model"),
                                  (["model.encoder.n_layers=1024", "model.encoder.d_model=2048"], "n_layers"),
                                  (["model.num_classes=1048576", "model.code_dim=65536"], "model.code_dim")] {
            let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(CLI.temporaryDirectory())", "trainer.max_steps=1"] + overrides)
            XCTAssertEqual(r.status, 1, "\(overrides): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("error: the model of Configs/tiny.yaml needs about") && r.stderr.contains("available for it"), r.stderr)
            XCTAssertTrue(r.stderr.contains(keys), "\(overrides): \(r.stderr)")
        }
    }

    /// Past the estimate, an allocation the system refuses ends the process with an error that
    /// says what to do, not a trap: here an address-space limit below the model's size. On the
    /// CPU device, whose tensors come from the engine's allocator (the checking device builds
    /// host arrays first, which Swift's runtime allocates).
    func testAnAllocationThatFailsIsANamedError() throws {
        let r = try CLI.run(["-c", "ulimit -v 600000; exec \"$0\" \"$@\"", CLI.binary, "--config", "Configs/tiny.yaml",
                             "exp_manager.exp_dir=\(CLI.temporaryDirectory())", "trainer.max_steps=1", "model.encoder.d_model=4096"],
                            removing: ["NEST_TRAIN_BACKEND"], executable: "/bin/bash")
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("error: out of host memory: a tensor of"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Backtrac"), r.stderr)
    }
}
