import Foundation
import XCTest
import _TestSupport

/// Training on a GPU as the CLI does it, with the CUDA backend on the host emulation of its
/// kernels (`NEST_TRAIN_CUDA_RUNTIME=host-emulation`: the same Swift backend and kernel
/// sources, host threads for GPU threads), so that CI without a GPU checks the path: per-step
/// losses against the CPU, bit-identical resume on the device, checkpoints crossing between the
/// GPU and the CPU, extraction, one rank per GPU under mpirun, and Lightning's accelerator and
/// devices rules with their errors.
final class GPUTrainingTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    let emulated = ["NEST_TRAIN_CUDA_RUNTIME": "host-emulation"]

    func train(_ dir: String, steps: Int, accelerator: String, extra: [String] = [], environment: [String: String] = [:]) throws -> CLI.Result {
        try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=\(steps)", "++trainer.accelerator=\(accelerator)",
                     "--threads", "1"] + extra, environment: environment)
    }

    func losses(_ dir: String) throws -> [Double] {
        try CLI.trainingRows(dir + "/NEST-tiny").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .compactMap { $0["loss"] as? Double }
    }

    func testTrainingOnTheGPUMatchesTheCPUResumesExactlyAndCheckpointsCrossOver() throws {
        let cpu = CLI.temporaryDirectory(), gpu = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory()
        XCTAssertEqual(try train(cpu, steps: 4, accelerator: "cpu").status, 0)
        let r = try train(gpu, steps: 4, accelerator: "gpu", environment: emulated)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("device: cuda:0 on the host emulation") && r.stderr.contains("peak device memory:"), r.stderr)
        let (a, b) = (try losses(cpu), try losses(gpu))
        XCTAssertEqual(a.count, 4)
        XCTAssertEqual(b.count, 4)
        for (step, (x, y)) in zip(a, b).enumerated() { XCTAssertEqual(y, x, accuracy: 1e-4 * abs(x), "step \(step + 1): GPU against CPU") }

        // Stopped after 2 steps and resumed on the GPU: the uninterrupted GPU run, bit for bit.
        XCTAssertEqual(try train(stopped, steps: 2, accelerator: "gpu", environment: emulated).status, 0)
        let resumed = try train(stopped, steps: 4, accelerator: "gpu", environment: emulated)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST-tiny"), try CLI.trainingRows(gpu + "/NEST-tiny"), "resume on the GPU is bit-identical")

        // The GPU's step-4 checkpoint scored on the CPU gives the GPU's own validation row.
        let scored = try CLI.run(["validate", "--config", "Configs/tiny.yaml", "--checkpoint", gpu + "/NEST-tiny/checkpoints/step-00000004.h5"])
        XCTAssertEqual(scored.status, 0, scored.stderr)
        let onCPURow = try JSONSerialization.jsonObject(with: Data(scored.stdout.utf8)) as! [String: Any]
        let gpuRows = try String(contentsOfFile: gpu + "/NEST-tiny/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("val_loss") }
        let onGPURow = try JSONSerialization.jsonObject(with: Data(gpuRows.last!.utf8)) as! [String: Any]
        XCTAssertEqual(onCPURow["val_loss"] as! Double, onGPURow["val_loss"] as! Double, accuracy: 1e-5 * (onGPURow["val_loss"] as! Double))

        // The GPU's step-4 checkpoint continues on the CPU, and a CPU checkpoint on the GPU.
        let crossed = CLI.temporaryDirectory()
        let onCPU = try train(crossed, steps: 6, accelerator: "cpu", extra: ["--resume", gpu + "/NEST-tiny/checkpoints/step-00000004.h5"])
        XCTAssertEqual(onCPU.status, 0, onCPU.stderr)
        XCTAssertTrue(onCPU.stderr.contains("resumed from"), onCPU.stderr)
        let back = try train(CLI.temporaryDirectory(), steps: 5, accelerator: "gpu", extra: ["--resume", cpu + "/NEST-tiny/checkpoints/step-00000004.h5"],
                             environment: emulated)
        XCTAssertEqual(back.status, 0, back.stderr)

        // Features extracted on the GPU are the CPU's.
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/dev_manifest.json").path
        func extract(_ device: String) throws -> [[Float]] {
            let out = CLI.temporaryDirectory()
            let x = try CLI.run(["extract", "--config", "Configs/tiny.yaml", "--checkpoint", gpu + "/NEST-tiny/checkpoints/step-00000004.h5",
                                 "--input", manifest, "--output", out, "--layers", "last", "--device", device], environment: emulated)
            XCTAssertEqual(x.status, 0, x.stderr)
            return try String(contentsOfFile: out + "/features.json", encoding: .utf8).split(separator: "\n").map { row in
                let obj = try JSONSerialization.jsonObject(with: Data(row.utf8)) as! [String: Any]
                let npy = try Data(contentsOf: URL(fileURLWithPath: obj["feature_path"] as! String))
                let headerLength = Int(npy[8]) | Int(npy[9]) << 8
                return npy.subdata(in: (10 + headerLength)..<npy.count).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
        }
        let (onHost, onDevice) = (try extract("cpu"), try extract("cuda"))
        XCTAssertEqual(onHost.count, onDevice.count)
        for (a, b) in zip(onHost, onDevice) {
            XCTAssertEqual(a.count, b.count)
            XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max() ?? 1, 1e-4)
        }
    }

    /// The run's safety nets on the GPU: non-finite steps skipped and then the run stopped with
    /// finite checkpoints, SIGTERM ending a step with a checkpoint and exit 0, TensorBoard events.
    func testNonFiniteStepsSignalsAndReportsOnTheGPU() throws {
        let bad = CLI.temporaryDirectory()
        let r = try train(bad, steps: 6, accelerator: "gpu", extra: ["model.optim.lr=1e30", "++trainer.max_consecutive_bad_steps=2"], environment: emulated)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("step skipped; utterances: ") && r.stderr.contains("2 non-finite steps in a row; stopping"), r.stderr)
        for c in (try? FileManager.default.contentsOfDirectory(atPath: bad + "/NEST-tiny/checkpoints")) ?? [] {
            XCTAssertTrue(try CLI.tensors(bad + "/NEST-tiny/checkpoints/" + c).values.allSatisfy { $0.doubles.allSatisfy(\.isFinite) }, c)
        }

        let dir = CLI.temporaryDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)", "trainer.max_steps=100000", "trainer.val_check_interval=100000",
                             "exp_manager.checkpoint_callback_params.every_n_train_steps=100000", "++trainer.accelerator=gpu", "--threads", "1"]
        process.environment = ProcessInfo.processInfo.environment.merging(emulated) { $1 }
        process.currentDirectoryURL = CLI.root
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let metrics = dir + "/NEST-tiny/metrics.jsonl"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && ((try? String(contentsOfFile: metrics, encoding: .utf8))?.count ?? 0) < 800 { usleep(50_000) }
        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny/checkpoints")
        XCTAssertEqual(files.filter { $0.hasSuffix(".h5") }.count, 1, "\(files)")
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: dir + "/NEST-tiny").contains { $0.hasPrefix("events.out.tfevents.") })
    }

    /// Two ranks under mpirun, each on its own GPU (local rank r takes cuda:r), train as one CPU
    /// process with their global batch: gradients cross through host buffers.
    func testTwoGPURanksTrainAsOneProcessWithTheirGlobalBatch() throws {
        let one = CLI.temporaryDirectory(), two = CLI.temporaryDirectory()
        XCTAssertEqual(try train(one, steps: 4, accelerator: "cpu", extra: ["model.train_ds.batch_size=4"]).status, 0)
        let r = try CLI.mpirun(ranks: 2, ["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(two)", "trainer.max_steps=4", "++trainer.accelerator=gpu",
                                          "model.train_ds.batch_size=2", "--threads", "1"], environment: emulated)
        XCTAssertEqual(r.status, 0, r.stderr)
        let (a, b) = (try losses(one), try losses(two))
        XCTAssertEqual(a.count, 4)
        XCTAssertEqual(b.count, 4)
        for (step, (x, y)) in zip(a, b).enumerated() { XCTAssertEqual(y, x, accuracy: 1e-4 * abs(x), "step \(step + 1): 2 GPUs × 2 against 1 CPU × 4") }
    }

    /// One visible GPU per task (Slurm's --gpus-per-task=1, Kubernetes, CUDA_VISIBLE_DEVICES set
    /// per rank): each rank takes the one device it sees. More ranks than visible GPUs is refused.
    func testEachRankTakesTheOneGPUItSees() throws {
        let args = ["--config", "Configs/tiny.yaml", "trainer.max_steps=2", "++trainer.accelerator=gpu", "--threads", "1"]
        let one = try CLI.mpirun(ranks: 2, args + ["exp_manager.exp_dir=\(CLI.temporaryDirectory())"],
                                 environment: emulated.merging(["CUDA_VISIBLE_DEVICES": "0"]) { $1 })
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertTrue(one.stderr.contains("device: cuda:0"), one.stderr)
        let few = try CLI.mpirun(ranks: 3, args + ["exp_manager.exp_dir=\(CLI.temporaryDirectory())"],
                                 environment: emulated.merging(["CUDA_VISIBLE_DEVICES": "0,1"]) { $1 })
        XCTAssertNotEqual(few.status, 0)
        XCTAssertTrue(few.stderr.contains("3 processes on this machine and 2 GPUs visible to each"), few.stderr)
    }

    /// `info` with no flag says what `auto` would train on, and why not a GPU when it would not;
    /// the shipped configs carry trainer.accelerator and trainer.devices, so no `++` is needed.
    func testInfoSaysWhatAutoUsesAndTheConfigsCarryTheKeys() throws {
        let none = try CLI.run(["info"], environment: ["NEST_TRAIN_CUDA_LIBS": "/nonexistent"])
        XCTAssertEqual(none.status, 0, none.stderr)
        XCTAssertTrue(none.stdout.contains("device:     cpu (trainer.accelerator: auto finds no usable GPU: cannot load the CUDA driver"), none.stdout)
        let gpu = try CLI.run(["info", "--json"], environment: emulated)
        XCTAssertTrue(gpu.stdout.contains("cuda:0 on the host emulation") && gpu.stdout.contains("what trainer.accelerator: auto uses"), gpu.stdout)
        for config in ["tiny", "demo", "large", "xl"] {
            let text = try String(contentsOfFile: CLI.root.appendingPathComponent("Configs/\(config).yaml").path, encoding: .utf8)
            XCTAssertTrue(text.contains("\n  devices: -1") && text.contains("\n  accelerator: auto"), config)
        }
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(CLI.temporaryDirectory())", "trainer.max_steps=1",
                             "trainer.accelerator=gpu", "trainer.devices=1", "--threads", "1"], environment: emulated)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("device: cuda:0"), r.stderr)
    }

    /// `bench` on the CUDA device reports what the measured steps asked of the GPU, per step,
    /// and the front end apart from the step; the device pool returns nothing to the driver.
    /// The counts `bench` reports, and the step they describe: a handful of reads (the
    /// metrics and the gradient norm), no memory returned to the driver, and as many products
    /// and launches for 4 utterances as for 2 (attention batched over utterances and heads).
    func testBenchCountsWhatAStepAsksOfTheGPU() throws {
        var perBatch: [Int: [String: Double]] = [:]
        for batch in [2, 4] {
            let r = try CLI.run(["bench", "--config", "Configs/tiny.yaml", "--device", "cuda", "--batch", "\(batch)", "--seconds", "2", "--steps", "2",
                                 "--threads", "1"], environment: emulated)
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let counts = try XCTUnwrap(json["gpu_counts_per_step"] as? [String: Double], r.stdout)
            XCTAssertEqual(Set(counts.keys), ["launches", "gemms", "device_to_host", "host_to_device", "driver_allocations", "driver_frees"])
            XCTAssertGreaterThan(counts["launches"]!, 0)
            XCTAssertGreaterThan(counts["gemms"]!, 0)
            XCTAssertEqual(counts["driver_frees"], 0, "a step returns no memory to the driver")
            XCTAssertLessThanOrEqual(counts["device_to_host"]!, 8, "blocking reads per step at batch \(batch)")
            XCTAssertNotNil(json["front_end_median_s"] as? Double)
            perBatch[batch] = counts
        }
        for key in ["gemms", "launches", "device_to_host"] {
            XCTAssertEqual(perBatch[2]?[key], perBatch[4]?[key], "\(key) per step do not grow with the batch")
        }
        let cpu = try CLI.run(["bench", "--config", "Configs/tiny.yaml", "--batch", "2", "--seconds", "2", "--steps", "1", "--threads", "1"])
        XCTAssertFalse(cpu.stdout.contains("gpu_counts_per_step"), "the CPU counts nothing")
    }

    func testAcceleratorAndDevicesFollowLightning() throws {
        let dir = CLI.temporaryDirectory()
        // No GPU and no driver here: gpu is an error naming what is missing, auto says why it uses the CPU.
        let gpu = try train(dir, steps: 1, accelerator: "gpu", environment: ["NEST_TRAIN_CUDA_LIBS": "/nonexistent"])
        XCTAssertNotEqual(gpu.status, 0)
        XCTAssertTrue(gpu.stderr.contains("trainer.accelerator: gpu:") && gpu.stderr.contains("CUDA driver"), gpu.stderr)
        let auto = try train(CLI.temporaryDirectory(), steps: 1, accelerator: "auto")
        XCTAssertEqual(auto.status, 0, auto.stderr)
        XCTAssertTrue(auto.stderr.contains("device: cpu (trainer.accelerator: auto found no usable GPU:"), auto.stderr)
        for (override, message) in [("++trainer.devices=2", "trainer.devices: 2 needs one process per GPU"),
                                    ("++trainer.devices=[1,2]", "trainer.devices lists 2 GPUs"),
                                    ("++trainer.accelerator=tpu", "trainer.accelerator: tpu is not one nest-train has")] {
            let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(CLI.temporaryDirectory())", "trainer.max_steps=1",
                                 "++trainer.accelerator=gpu", override], environment: emulated)
            XCTAssertNotEqual(r.status, 0, override)
            XCTAssertTrue(r.stderr.contains(message), "\(override): \(r.stderr)")
        }
    }
}
