import Config
import Interop
import ArgumentParser
import Model
import Training

/// The model a subcommand reads (`extract`, `probe`): a `.nemo` file with its own config and
/// weights, or a config with a nest-train checkpoint or NeMo-keyed weights.
struct ModelOptions: ParsableArguments {
    @Option(help: "Config file (model sections); not needed with --nemo, and must agree with its model when given.") var config: String?
    @Option(help: "A nest-train checkpoint.") var checkpoint: String?
    @Option(help: "NeMo-keyed weights: HDF5 (root or /weights), safetensors, a torch archive or a .nemo file.") var weights: String?
    @Option(help: "A NeMo .nemo model: its own config and weights.") var nemo: String?

    /// The config and the model; `withWeights: false` keeps the config's (seeded) random
    /// initialisation; `everyKey` loads the whole model from --weights, not only the encoder.
    func load(overrides: [String] = [], withWeights: Bool = true, everyKey: Bool = false) throws -> (RunConfig, NESTModel) {
        if let nemo {
            guard checkpoint == nil, weights == nil else { throw ValidationError("--nemo brings its own weights: drop --checkpoint and --weights") }
            let (model, cfg) = try Exporter.loadNemo(nemo, overrides: overrides)
            if let config { try NemoFile(nemo).checkAgreement(with: try loadConfig(config, overrides: [], requireData: false), configFile: config) }
            return (cfg, model)
        }
        guard let config else { throw ValidationError("give --config (with --checkpoint or --weights), or --nemo") }
        let cfg = try loadConfig(config, overrides: overrides, requireData: false)
        let model = ModelFactory.make(cfg).0
        if withWeights { try WeightsFile.loadEncoder(into: model, checkpoint: checkpoint, weights: weights, everyKey: everyKey) }
        return (cfg, model)
    }
}

/// Runs a subcommand's work: an error from it is logged as "error: …" (after `prefix`), then
/// `cleanup` runs and the process exits 1. Usage errors go to ArgumentParser, which prints them
/// with the usage line.
func reportingErrors(prefix: String = "", cleanup: () -> Void = {}, _ work: () throws -> Void) throws {
    do {
        try work()
    } catch let error where error is ValidationError || error is ExitCode {
        throw error
    } catch {
        log(prefix + "error: \(error)")
        cleanup()
        throw ExitCode.failure
    }
}
