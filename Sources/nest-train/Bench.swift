import ArgumentParser
import Distributed
import Foundation
import Tensor
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a training step, encoder inference or the front end on synthetic audio; one JSON line with the fields of NeMo's reference benchmark.")

    @Option(help: "Config file.") var config: String
    @OptionGroup var compute: DeviceOptions
    @Option(help: "train, infer, features, loader (the data pipeline on the config's training manifest; --steps batches), or allreduce (under mpirun: the training step with gradients summed across the ranks, timed).") var mode = "train"
    @Option(help: "Utterances per batch.") var batch = 4
    @Option(help: "Seconds per utterance.") var seconds = 10.0
    @Option(help: "Measured steps.") var steps = 5
    @Option(help: "Unmeasured steps before them.") var warmup = 1
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "Seed for weights and audio.") var seed: UInt64 = 0
    @Argument(help: "Overrides (key.path=value).") var overrides: [String] = []

    func run() throws {
        guard let m = StepBenchmark.Mode(rawValue: mode) else { throw ValidationError("--mode must be train, infer, features, loader or allreduce") }
        let group = m == .allreduce ? try ProcessGroup.fromLauncher() : .single
        guard m != .allreduce || group.isDistributed else { throw ValidationError("--mode allreduce runs under mpirun with at least 2 ranks") }
        defer { group.finalize() }
        if let threads { Parallel.configure(threads: threads) }
        try reportingErrors { try compute.select() }
        let cfg = try loadConfig(config, overrides: overrides + ["++seed=\(seed)"], requireData: m == .loader)
        if m == .loader {
            print(try StepBenchmark.loader(config: cfg, configName: (config as NSString).lastPathComponent, batches: steps))
            return
        }
        let result = StepBenchmark.run(config: cfg, configName: (config as NSString).lastPathComponent, mode: m, batch: batch,
                                       seconds: seconds, steps: steps, warmup: warmup, seed: seed, group: group)
        if group.isLeader { print(result) }
        if group.isLeader { ComputeDevice.reportProfile() }
    }
}
