import ArgumentParser
import Foundation
import Tensor
import Training

/// Set by SIGINT/SIGTERM: the loop finishes its step, writes a checkpoint and exits 0.
nonisolated(unsafe) var stopSignalCount: Int32 = 0

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train (the default subcommand). Resumes the run in exp_manager.exp_dir/name when it has a checkpoint.")

    @Option(help: "Config file: NeMo's nest_fast-conformer.yaml layout, or a bare model config.")
    var config: String

    @Option(help: "Continue from this checkpoint instead of the newest one in the run folder.")
    var resume: String?

    @Flag(help: "Start a new run folder (an existing one is kept, never deleted).")
    var fresh = false

    @Argument(help: "Overrides in NeMo/Hydra syntax: model.optim.lr=2.0, ++trainer.max_steps=100.")
    var overrides: [String] = []

    func run() throws {
        do {
            let cfg = try loadConfig(config, overrides: overrides, requireData: true)
            let mode: Trainer.ResumeMode = fresh ? .fresh : resume.map { .from($0) } ?? .auto
            let trainer = try Trainer(config: cfg, resume: mode, log: log)
            installStopHandlers()
            log("run folder: \(trainer.runFolder)")
            log("machine: \(Platform.summary)")
            let last = try trainer.run(stopRequested: { stopSignalCount > 0 })
            if stopSignalCount > 0 { log("stopped by signal; resume with the same command") }
            if let last { print(last) }
        } catch let error as CustomStringConvertible {
            log("error: \(error.description)")
            throw ExitCode.failure
        }
    }

    func installStopHandlers() {
        // A file-size limit (ulimit -f) should fail the write with EFBIG, reported like a full
        // disk, rather than kill the process.
        signal(SIGXFSZ, SIG_IGN)
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { _ in
                stopSignalCount += 1
                // A second signal aborts at once; checkpoints are atomic, so nothing is corrupted.
                if stopSignalCount > 1 { _exit(130) }
            }
        }
    }
}
