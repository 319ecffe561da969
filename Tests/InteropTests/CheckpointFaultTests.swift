import Basics
import Interop
import DataLoading
import Config
import Foundation
import HDF5
import Tensor
import Training
import XCTest
import _TestSupport

/// Damaged checkpoints are detected on load, named in the error, and auto-resume falls back to
/// the previous valid one.
final class CheckpointFaultTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    /// A run with checkpoints at steps 4 and 8; returns the run folder.
    func trainedRun() throws -> String {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "exp_manager.checkpoint_callback_params.save_top_k=5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir + "/NEST-tiny"
    }

    func damage(_ path: String, _ how: (inout Data) -> Void) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        how(&data)
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// Resuming after damaging the step-8 checkpoint must warn about it and resume from step 4.
    func assertFallsBack(_ what: String, damage how: (inout Data) -> Void) throws {
        let run = try trainedRun()
        let newest = run + "/checkpoints/step-00000008.h5"
        try damage(newest, how)
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(URL(fileURLWithPath: run).deletingLastPathComponent().path)",
                             "trainer.max_steps=4"])
        XCTAssertEqual(r.status, 0, "\(what): \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("skipping damaged checkpoint \(newest)"), "\(what): \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("resumed from \(run)/checkpoints/step-00000004.h5"), "\(what): \(r.stderr)")
    }

    func testTruncatedCheckpoint() throws {
        try assertFallsBack("truncated") { $0 = $0.prefix($0.count / 2) }
    }

    func testFlippedByteInsideADatasetFailsItsChecksum() throws {
        let run = try trainedRun()
        let path = run + "/checkpoints/step-00000008.h5"
        // Locate the raw bytes of a weight tensor in the file and flip one of them.
        let weights = try HDF5File(path: path, mode: .readOnly).read("/weights/decoder.decoder_layers.0.weight")
        let needle = weights.floats.prefix(8).withUnsafeBytes { Data($0) }
        try damage(path) { data in
            guard let range = data.range(of: needle) else { return XCTFail("dataset bytes not found") }
            data[range.lowerBound + 13] ^= 0x10
        }
        XCTAssertThrowsError(try HDF5File(path: path, mode: .readOnly).read("/weights/decoder.decoder_layers.0.weight")) { error in
            XCTAssertTrue("\(error)".contains("decoder.decoder_layers.0.weight"), "\(error)")
        }
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(URL(fileURLWithPath: run).deletingLastPathComponent().path)", "trainer.max_steps=4"])
        XCTAssertTrue(r.stderr.contains("checksum mismatch"), r.stderr)
        XCTAssertTrue(r.stderr.contains("resumed from \(run)/checkpoints/step-00000004.h5"), r.stderr)
    }

    func testCheckpointFromADifferentConfigIsRejectedWithTheKey() throws {
        let run = try trainedRun()
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(URL(fileURLWithPath: run).deletingLastPathComponent().path)",
                             "model.encoder.d_model=48", "--resume", run + "/checkpoints/step-00000008.h5"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("holds a run of another model") && r.stderr.contains("model.encoder.d_model (32 → 48)"), r.stderr)
    }

    /// A sealed checkpoint whose state is out of range (a negative step: edited, or written by
    /// something else) is refused by name when resumed, not trusted into a trap.
    func testOutOfRangeStateIsANamedError() throws {
        let yaml = try String(contentsOfFile: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, encoding: .utf8)
        let config = try RunConfig(try ConfigDocument(text: yaml, file: "tiny.yaml"), requireData: false)
        let (model, _) = ModelFactory.make(config)
        let step = TrainingStep(model: model, config: config)
        var state = TrainingState()
        state.step = -3
        let dir = CLI.temporaryDirectory(), path = dir + "/negative.h5"
        try Checkpoint.write(to: path, model: model, optimizer: step.optimizer, state: state, configYAML: yaml)
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "--resume", path])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(path): state/step is -3.0, outside 0.0…"), r.stderr)
    }

    func testNotACheckpointAndFutureVersion() throws {
        let dir = CLI.temporaryDirectory()
        let fake = dir + "/fake.h5"
        try "not hdf5".write(toFile: fake, atomically: true, encoding: .utf8)
        var r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "--resume", fake])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(fake) && r.stderr.contains("not a nest-train checkpoint"), r.stderr)

        let run = try trainedRun()
        let path = run + "/checkpoints/step-00000008.h5"
        // The seal's format version (bytes 8–11, little-endian) from a future nest-train.
        try damage(path) { data in data[8] = 2 }
        r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "--resume", path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("newer than this nest-train supports"), r.stderr)
    }

    /// The one writer every output goes through: a failing writer leaves the previous file and
    /// no temporary; a successful one replaces the file whole.
    func testAtomicFileKeepsThePreviousFileOnFailure() throws {
        let dir = CLI.temporaryDirectory(), path = dir + "/out.json"
        try AtomicFile.write(Data("old".utf8), to: path)
        XCTAssertThrowsError(try AtomicFile.write(to: path) { temporary in
            try Data("half".utf8).write(to: URL(fileURLWithPath: temporary))
            throw NestError("disk full")
        })
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out.json"], "no temporary left behind")
        try AtomicFile.write(Data("new".utf8), to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new")
        XCTAssertThrowsError(try AtomicFile.write(Data("x".utf8), to: dir + "/no/such/folder/f")) { error in
            XCTAssertTrue("\(error)".contains("no/such/folder/f"), "\(error)")
        }
    }

    /// One codec for the run state: a checkpoint and the replica broadcast carry every field,
    /// set or unset, and give back the same state.
    func testTrainingStateRoundTripsThroughCheckpointsAndTheBroadcastEncoding() throws {
        var full = TrainingState()
        (full.step, full.position, full.audioSeconds) = (1234, DataPosition(epoch: 3, index: 17), 98765.25)
        (full.skippedSteps, full.consecutiveBadSteps, full.valLoss, full.worldSize, full.globalBatchSize) = (5, 2, 4.125, 4, 32)
        let config = try RunConfig(try ConfigDocument(contentsOf: CLI.root.appendingPathComponent("Configs/tiny.yaml").path), requireData: false)
        let dir = CLI.temporaryDirectory()
        for state in [full, TrainingState()] {
            XCTAssertEqual(TrainingState(encoded: state.encoded), state)
            let (model, _) = ModelFactory.make(config)
            let optimizer = AdamW(parameters: model.trainableParameters(), settings: .init(betas: (0.9, 0.98), eps: 1e-8, weightDecay: 1e-3))
            try Checkpoint.write(to: dir + "/c.h5", model: model, optimizer: optimizer, state: state, configYAML: "")
            XCTAssertEqual(try Checkpoint.read(from: dir + "/c.h5", model: model, optimizer: optimizer), state)
        }
    }
}
