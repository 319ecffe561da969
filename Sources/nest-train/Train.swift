import ArgumentParser
import Distributed
import Foundation
import Tensor
import Training

/// Set by SIGINT/SIGTERM/SIGUSR1: the loop finishes its step, writes a checkpoint and exits 0
/// (under MPI, every rank after the same step).
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

    @Option(help: "Worker threads per process (default: the cores this process may run on, which a launcher's binding sets).")
    var threads: Int?

    @Argument(help: "Overrides in NeMo/Hydra syntax: model.optim.lr=2.0, ++trainer.max_steps=100.")
    var overrides: [String] = []

    func run() throws {
        // Under mpirun or srun this process is one rank of a data-parallel job; otherwise the
        // group is this process alone and MPI is never initialised.
        let group = try ProcessGroup.fromLauncher()
        // Rank 0 speaks for the job; the others report only what goes wrong on them.
        let say: (String) -> Void = group.isLeader ? log : { message in
            if message.hasPrefix("warning") || message.hasPrefix("skipped") || message.hasPrefix("error") { log("rank \(group.rank): \(message)") }
        }
        // The other ranks would wait for a failed one in their next collective: end the job.
        try reportingErrors(prefix: group.isDistributed ? "rank \(group.rank): " : "", cleanup: { if group.isDistributed { group.abort(code: 1) } }) {
            if let threads { Parallel.configure(threads: threads) }
            let cfg = try loadConfig(config, overrides: overrides, requireData: true)
            let compute = try ComputeDevice.forTraining(cfg, local: ComputeDevice.localRank)
            if let device = compute.device { Device.default = device }
            let mode: Trainer.ResumeMode = fresh ? .fresh : resume.map { .from($0) } ?? .auto
            installStopHandlers()
            let trainer = try Trainer(config: cfg, resume: mode, group: group, log: say)
            say("run folder: \(trainer.runFolder)")
            say("machine: \(Platform.summary)")
            say("device: \(compute.description)")
            if group.isDistributed {
                say("data parallel: \(group.size) processes × \(Parallel.threads) threads; global batch \(group.size) × \(cfg.train.batchDescription)"
                    + (cfg.accumulateGradBatches > 1 ? " × \(cfg.accumulateGradBatches) accumulated" : "") + "; \(group.libraryVersion)")
            }
            let last = try trainer.run(stopRequested: { stopSignalCount > 0 })
            if stopSignalCount > 0 || trainer.stoppedEarly { say("stopped by signal; resume with the same command") }
            if group.isLeader { ComputeDevice.reportProfile() }
            if let device = compute.device {
                say(String(format: "peak device memory: %.1f MiB held by tensors, %.1f MiB with the allocator's idle blocks",
                           Double(device.backend.memory.peakLive) / 1_048_576, Double(device.backend.memory.peakTotal) / 1_048_576))
            }
            if let last, group.isLeader { print(last) }
            group.finalize()
        }
    }

    func installStopHandlers() {
        // A file-size limit (ulimit -f) should fail the write with EFBIG, reported like a full
        // disk, rather than kill the process.
        signal(SIGXFSZ, SIG_IGN)
        // SIGUSR1: what Slurm's `--signal=USR1@300` sends ahead of a time limit.
        for sig in [SIGINT, SIGTERM, SIGUSR1] {
            signal(sig) { _ in
                stopSignalCount += 1
                // A second signal aborts at once; checkpoints are atomic, so nothing is corrupted.
                if stopSignalCount > 1 { _exit(130) }
            }
        }
    }
}
