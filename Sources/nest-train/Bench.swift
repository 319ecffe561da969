import ArgumentParser
import Foundation
import Tensor
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a training step, encoder inference or the front end on synthetic audio; one JSON line with the fields of NeMo's reference benchmark.")

    @Option(help: "Config file.") var config: String
    @Option(help: "train, infer, features, or loader (the data pipeline on the config's training manifest; --steps batches).") var mode = "train"
    @Option(help: "Utterances per batch.") var batch = 4
    @Option(help: "Seconds per utterance.") var seconds = 10.0
    @Option(help: "Measured steps.") var steps = 5
    @Option(help: "Unmeasured steps before them.") var warmup = 1
    @Option(help: "Worker threads (default: all cores).") var threads: Int?
    @Option(help: "Seed for weights and audio.") var seed: UInt64 = 0
    @Argument(help: "Overrides (key.path=value).") var overrides: [String] = []

    func run() throws {
        guard let m = StepBenchmark.Mode(rawValue: mode) else { throw ValidationError("--mode must be train, infer, features or loader") }
        if let threads { Parallel.threads = max(1, threads) }
        let cfg = try loadConfig(config, overrides: overrides + ["++seed=\(seed)"], requireData: m == .loader)
        if m == .loader {
            print(try StepBenchmark.loader(config: cfg, configName: (config as NSString).lastPathComponent, batches: steps))
            return
        }
        print(StepBenchmark.run(config: cfg, configName: (config as NSString).lastPathComponent, mode: m, batch: batch,
                                seconds: seconds, steps: steps, warmup: warmup, seed: seed))
    }
}
