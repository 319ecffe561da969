import Interop
import ArgumentParser
import Audio
import Foundation
import Model
import Training

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's (or a .nemo model's) weights under NeMo state-dict keys: h5 or safetensors (the --include subset), or a .nemo archive (the complete SSL model, loadable by NeMo's restore_from).")

    @Option(help: "A nest-train checkpoint (.h5).") var checkpoint: String?
    @Option(help: "A NeMo .nemo model (e.g. NVIDIA's ssl_en_nest_large_v1.0), converted without training.") var nemo: String?
    @Option(help: "A training config: its seeded initial model, the weights a run with it starts from at step 0.") var config: String?
    @Option(help: "Output file.") var output: String
    @Option(help: "h5, safetensors or nemo.") var format = "h5"
    @Option(help: "Comma-separated substrings of the keys to keep (NeMo's include rule), or 'all'. Ignored for nemo, which always holds every key.") var include = "encoder"
    @Argument(help: "Overrides of --config (key=value, ++key=value, ~key), e.g. seed=7.") var overrides: [String] = []

    func run() throws {
        try reportingErrors {
            guard let f = Exporter.Format(rawValue: format) else {
                throw ValidationError("--format must be one of \(Exporter.Format.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let source: Exporter.Source
            guard config != nil || overrides.isEmpty else { throw ValidationError("overrides apply to --config only") }
            switch (checkpoint, nemo, config) {
            case let (c?, nil, nil): source = .checkpoint(c)
            case let (nil, n?, nil): source = .nemo(n)
            case let (nil, nil, c?): source = .initial(try loadConfig(c, overrides: overrides, requireData: false), file: c)
            default: throw ValidationError("give exactly one of --checkpoint, --nemo and --config")
            }
            let n = try Exporter.export(source, output: output, format: f, include: include.split(separator: ",").map(String.init))
            log("exported \(n) tensors to \(output)")
        }
    }
}

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Eval-mode Conformer layer features as .npy files plus features.json (NeMo's extract_features layout).")

    @OptionGroup var model: ModelOptions
    @Option(help: "A manifest, a folder, or one audio file.") var input: String
    @OptionGroup var compute: DeviceOptions

    @Option(help: "Output folder.") var output: String
    @Option(help: "all, last, or comma-separated 0-based layer indices.") var layers = "all"
    @Option(name: .customLong("batch-size"), help: "Utterances per batch.") var batchSize = 8
    @Option(help: "File extension searched in a folder input.") var type = "wav"
    @Argument(help: "Overrides (key.path=value).") var overrides: [String] = []

    func run() throws {
        try reportingErrors {
            try compute.select()
            let (cfg, model) = try self.model.load(overrides: overrides)
            let frontEnd = FilterbankFeatures(settings: cfg.frontEnd)
            let n = cfg.model.encoder.nLayers
            let selected: [Int]
            switch layers {
            case "all": selected = Array(0..<n)
            case "last": selected = [n - 1]
            default:
                selected = try layers.split(separator: ",").map { s in
                    guard let i = Int(s.trimmingCharacters(in: .whitespaces)), (0..<n).contains(i) else { throw ValidationError("--layers: '\(s)' is not a layer index in 0..<\(n)") }
                    return i
                }
            }
            let inputs = try FeatureExtractor.inputs(input, fileType: type)
            let count = try FeatureExtractor(model: model, frontEnd: frontEnd, sampleRate: cfg.sampleRate)
                .run(inputs: inputs, output: output, layers: selected, batchSize: batchSize)
            log("features for \(count) inputs in \(output) (features.json lists them)")
        }
    }
}

