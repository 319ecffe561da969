import Foundation
import HDF5
import Tensor
import XCTest
import _TestSupport

/// Faults a long run must survive without losing or corrupting work (issue 6).
final class ReliabilityTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    /// A tiny run with frequent checkpoints and validations, long enough to be killed often.
    let schedule = ["trainer.max_steps=40", "trainer.val_check_interval=5",
                    "exp_manager.checkpoint_callback_params.every_n_train_steps=2",
                    "exp_manager.checkpoint_callback_params.save_top_k=2"]

    func start(_ dir: String, _ extra: [String] = []) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"] + schedule + extra
        p.currentDirectoryURL = CLI.root
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func finalCheckpoint(_ run: String) -> String { run + "/checkpoints/step-00000040.h5" }

    /// SIGKILL at random instants (training, validation, checkpoint writes) until the run
    /// completes by auto-resuming; the result must equal an uninterrupted run bit for bit.
    func testRandomSIGKILLsThenResumeEqualsUninterrupted() throws {
        let reference = CLI.temporaryDirectory()
        let r = try start(reference)
        r.waitUntilExit()
        XCTAssertEqual(r.terminationStatus, 0)

        let dir = CLI.temporaryDirectory()
        let rng = RandomGenerator(seed: 2026)
        var kills = 0, attempts = 0
        while attempts < 300 {
            attempts += 1
            let p = try start(dir)
            if kills < 25 {
                usleep(UInt32(rng.int(in: 20_000...160_000)))
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            }
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal { kills += 1; continue }
            XCTAssertEqual(p.terminationStatus, 0)
            if FileManager.default.fileExists(atPath: finalCheckpoint(dir + "/NEST-tiny")) { break }
        }
        print("random SIGKILL test: \(kills) kills in \(attempts) starts")
        XCTAssertGreaterThanOrEqual(kills, 20)
        XCTAssertEqual(try CLI.trainingRows(dir + "/NEST-tiny"), try CLI.trainingRows(reference + "/NEST-tiny"))
        let a = try CLI.tensors(finalCheckpoint(reference + "/NEST-tiny")), b = try CLI.tensors(finalCheckpoint(dir + "/NEST-tiny"))
        XCTAssertEqual(a.count, b.count)
        for (k, v) in a { XCTAssertEqual(v, b[k], "\(k) differs after \(kills) kills") }
        let validation = { (run: String) in
            try String(contentsOfFile: run + "/NEST-tiny/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("val_loss") }
        }
        XCTAssertEqual(try validation(dir), try validation(reference), "validation rows")
    }

    /// Killing an export at any instant leaves either no output or a complete one.
    func testKilledExportNeverLeavesAPartialFile() throws {
        let dir = CLI.temporaryDirectory()
        let p = try start(dir, ["trainer.max_steps=2"])
        p.waitUntilExit()
        let ckpt = dir + "/NEST-tiny/checkpoints/step-00000002.h5"
        let rng = RandomGenerator(seed: 7)
        for i in 0..<10 {
            let out = dir + "/export-\(i).safetensors"
            let e = Process()
            e.executableURL = URL(fileURLWithPath: CLI.binary)
            e.arguments = ["export", "--checkpoint", ckpt, "--output", out, "--format", "safetensors", "--include", "all"]
            e.standardError = FileHandle.nullDevice
            try e.run()
            usleep(UInt32(rng.int(in: 0...60_000)))
            if e.isRunning { kill(e.processIdentifier, SIGKILL) }
            e.waitUntilExit()
            if FileManager.default.fileExists(atPath: out) {
                let data = try Data(contentsOf: URL(fileURLWithPath: out))
                let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
                let end = header.values.compactMap { ($0 as? [String: Any])?["data_offsets"] as? [Int] }.map { $0[1] }.max()!
                XCTAssertEqual(data.count, 8 + headerLength + end, "export \(i) is complete")
            }
        }
    }

    /// A file-size limit stands in for a full disk: the write fails with a clear error, the
    /// previous checkpoint stays valid, no temporary file is left, and the run resumes later.
    func testDiskFullDuringCheckpointWrite() throws {
        let dir = CLI.temporaryDirectory()
        let first = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=4"])
        XCTAssertEqual(first.status, 0, first.stderr)
        // 1,000 KiB per file: less than one tiny checkpoint (~1.6 MB).
        func limited(_ extra: [String]) throws -> CLI.Result {
            let args = (["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"] + extra).map { "'\($0)'" }.joined(separator: " ")
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-c", "ulimit -f 1000; exec '\(CLI.binary)' \(args)"]
            p.currentDirectoryURL = CLI.root
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return CLI.Result(status: p.terminationStatus, stdout: "", stderr: String(decoding: e, as: UTF8.self))
        }
        let full = try limited([])
        XCTAssertNotEqual(full.status, 0)
        XCTAssertTrue(full.stderr.contains("writing the checkpoint failed, the previous checkpoint is untouched"), full.stderr)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny/checkpoints")
        XCTAssertEqual(files, ["step-00000004.h5"], "no partial or temporary file: \(files)")

        let continuing = try limited(["++exp_manager.continue_on_checkpoint_error=true"])
        XCTAssertEqual(continuing.status, 0, continuing.stderr)
        XCTAssertTrue(continuing.stderr.contains("training continues"), continuing.stderr)

        let resumed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=12"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
    }

    /// Exploding weights give non-finite losses: each such step is skipped and logged with its
    /// utterances, and after the configured number in a row the run stops, checkpoint intact.
    func testNonFiniteStepsAreSkippedThenTheRunStops() throws {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "model.optim.lr=1e30",
                             "++trainer.max_consecutive_bad_steps=3", "trainer.max_steps=20"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("step skipped; utterances: "), r.stderr)
        XCTAssertTrue(r.stderr.contains("tiny/train_manifest.json:"), "utterances are named by manifest line")
        XCTAssertTrue(r.stderr.contains("3 non-finite steps in a row; stopping"), r.stderr)
        for c in (try? FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny/checkpoints")) ?? [] {
            let t = try CLI.tensors(dir + "/NEST-tiny/checkpoints/" + c)
            XCTAssertTrue(t.values.allSatisfy { $0.doubles.allSatisfy(\.isFinite) }, "\(c) holds only finite values")
        }
    }

    func testBrokenCorpusIsReportedSkippedOrFatalPerConfig() throws {
        let dir = CLI.temporaryDirectory()
        let tiny = CLI.root.appendingPathComponent("Data/generated/tiny").path
        try "RIFF....WAVEjunk".write(toFile: dir + "/junk.wav", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: dir + "/empty.wav", contents: Data())
        var lines = try String(contentsOfFile: tiny + "/train_manifest.json", encoding: .utf8).split(separator: "\n").map {
            $0.replacingOccurrences(of: "\"train/", with: "\"\(tiny)/train/")
        }
        lines.insert("{\"audio_filepath\": \"\(dir)/junk.wav\", \"duration\": 2.0}", at: 1)
        lines.insert("{\"audio_filepath\": \"\(dir)/missing.wav\", \"duration\": 2.0}", at: 3)
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/mixed.json", atomically: true, encoding: .utf8)
        let mixed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "model.train_ds.manifest_filepath=\(dir)/mixed.json"])
        XCTAssertEqual(mixed.status, 0, mixed.stderr)
        XCTAssertTrue(mixed.stderr.contains("skipped: \(dir)/mixed.json:2: \(dir)/junk.wav: not a readable audio file"), mixed.stderr)
        XCTAssertTrue(mixed.stderr.contains("mixed.json:4: \(dir)/missing.wav: no such file"), mixed.stderr)

        // The same file in the validation manifest is reported by validation too.
        let validation = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)/val", "trainer.max_steps=1",
                                      "model.validation_ds.manifest_filepath=\(dir)/mixed.json"])
        XCTAssertEqual(validation.status, 0, validation.stderr)
        XCTAssertTrue(validation.stderr.contains("skipped: \(dir)/mixed.json:2: \(dir)/junk.wav"), validation.stderr)

        let fatal = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)/fatal", "model.train_ds.manifest_filepath=\(dir)/mixed.json",
                                 "++model.train_ds.skip_bad_audio=false"])
        XCTAssertNotEqual(fatal.status, 0)
        XCTAssertTrue(fatal.stderr.contains("manifest line \(dir)/mixed.json:"), fatal.stderr)

        let broken = (0..<6).map { "{\"audio_filepath\": \"\(dir)/\($0 % 2 == 0 ? "junk" : "empty").wav\", \"duration\": 2.0}" }
        try (broken.joined(separator: "\n") + "\n").write(toFile: dir + "/broken.json", atomically: true, encoding: .utf8)
        let all = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)/all", "model.train_ds.manifest_filepath=\(dir)/broken.json"])
        XCTAssertNotEqual(all.status, 0)
        XCTAssertTrue(all.stderr.contains("batches in a row had no readable audio"), all.stderr)

        FileManager.default.createFile(atPath: dir + "/none.json", contents: Data())
        let empty = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)/none", "model.train_ds.manifest_filepath=\(dir)/none.json"])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.stderr.contains("none.json: no usable entries"), empty.stderr)
    }

    /// A second signal aborts at once; whatever is on disk is still valid.
    func testSecondSignalAbortsWithoutCorruption() throws {
        let dir = CLI.temporaryDirectory()
        let p = try start(dir, ["trainer.max_steps=100000"])
        let metrics = dir + "/NEST-tiny/metrics.jsonl"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && ((try? String(contentsOfFile: metrics, encoding: .utf8))?.count ?? 0) < 2000 { usleep(20_000) }
        kill(p.processIdentifier, SIGTERM)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertTrue([0, 130].contains(p.terminationStatus), "exit \(p.terminationStatus)")
        let resumed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"] + schedule)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertFalse(resumed.stderr.contains("damaged"), resumed.stderr)
    }
}
