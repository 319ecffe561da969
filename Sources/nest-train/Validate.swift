import Interop
import ArgumentParser
import Foundation
import Model
import Training

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a model on a config's validation set exactly as training validates (eval mode, mask_draws fixed masks, baselines): one metrics.jsonl row on stdout.",
        discussion: "The data, seed and masks come from --config; the weights from --checkpoint, --weights (every key of the model) or --nemo (whose model must agree with --config). Scoring NeMo's own checkpoints (exported .nemo files) this way compares them with nest-train's on the same batches and masks.")

    @OptionGroup var model: ModelOptions
    @Argument(help: "Overrides of --config (key=value, ++key=value, ~key).") var overrides: [String] = []

    func run() throws {
        try reportingErrors {
            guard let config = model.config else { throw ValidationError("give --config: its validation_ds, seed and masking are what is scored") }
            let run = try loadConfig(config, overrides: overrides, requireData: false)
            // Overrides shape the run (data, seed); a .nemo keeps its own model, which must agree.
            let nest: NESTModel
            if let nemo = model.nemo {
                guard model.checkpoint == nil, model.weights == nil else { throw ValidationError("--nemo brings its own weights: drop --checkpoint and --weights") }
                try NemoFile(nemo).checkAgreement(with: run, configFile: config)
                nest = try Exporter.loadNemo(nemo).0
            } else {
                nest = try model.load(overrides: overrides, everyKey: true).1
            }
            let (json, summary) = try Validation.score(nest, config: run, log: log)
            log(summary)
            print(json)
        }
    }
}
