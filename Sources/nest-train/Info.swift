import ArgumentParser
import Foundation
import Model
import NN
import Training

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Parameter counts and a training-memory estimate for a config.")

    @Option(help: "Config file.") var config: String
    @Option(help: "Batch size for the memory estimate.") var batch = 8
    @Option(help: "Utterance duration in seconds for the memory estimate.") var seconds = 10.0
    @Flag(help: "Print JSON.") var json = false
    @Argument(help: "Overrides (key.path=value).") var overrides: [String] = []

    func run() throws {
        do {
            let cfg = try loadConfig(config, overrides: overrides, requireData: false)
            let (model, _) = ModelFactory.make(cfg)
            let summary = ModelSummary(model: model, config: cfg.model, batch: batch, seconds: seconds)
            if json {
                print(summary.json)
            } else {
                print(summary.text)
            }
        } catch let error as CustomStringConvertible {
            log("error: \(error.description)")
            throw ExitCode.failure
        }
    }
}
