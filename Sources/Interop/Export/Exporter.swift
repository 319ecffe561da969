import Basics
import Formats
import Config
import Foundation
import HDF5
import Model
import NN

/// Writes a checkpoint's weights under NeMo state-dict keys for downstream use.
public enum Exporter {
    public enum Format: String, CaseIterable { case h5, safetensors, nemo }

    /// Rebuilds the model a checkpoint was trained with (from its stored config) and loads it.
    public static func loadCheckpoint(_ path: String) throws -> (NESTModel, RunConfig) {
        let checkpoint = try CheckpointFile(path)
        let config = try RunConfig(try ConfigDocument(text: try checkpoint.configYAML(), file: "\(path):/config/yaml"), requireData: false)
        let (model, _) = ModelFactory.make(config)
        _ = try Checkpoint.read(checkpoint, model: model, optimizer: nil)
        return (model, config)
    }

    /// Keys selected NeMo's way (`KeySelection`); "all" keeps everything.
    public static func select(_ model: NESTModel, include: [String]) -> [StateEntry] {
        let selection = KeySelection(include: include.contains("all") ? [""] : include)
        return model.stateDict().filter { selection.selects($0.key) }
    }

    /// Builds the model a `.nemo` file describes (its own config) and loads every weight.
    public static func loadNemo(_ path: String, overrides: [String] = []) throws -> (NESTModel, RunConfig) {
        let nemo = try NemoFile(path)
        let config = try nemo.runConfig(overrides: overrides)
        let (model, _) = ModelFactory.make(config)
        try StateDictLoader.load(model, from: nemo.weights, policy: .init(strict: true, include: { !$0.hasPrefix("decoder_ssl.") }))
        return (model, config)
    }

    /// A checkpoint, a `.nemo` file, or the seeded initial model of a config (step 0 of a run
    /// with that config and seed: how another trainer starts from the same weights).
    public enum Source { case checkpoint(String), nemo(String), initial(RunConfig, file: String) }

    /// Writes the model of a checkpoint or of a `.nemo` file in `format`.
    public static func export(_ source: Source, output: String, format: Format, include: [String]) throws -> Int {
        let (model, config): (NESTModel, RunConfig)
        let origin: String
        switch source {
        case .checkpoint(let path): (model, config) = try loadCheckpoint(path); origin = path
        case .nemo(let path): (model, config) = try loadNemo(path); origin = path
        case .initial(let run, let file): (model, config) = (ModelFactory.make(run).0, run); origin = "\(file) (initial weights, seed \(run.seed))"
        }
        // A .nemo must hold the complete SSL state dict: NeMo restores it strictly.
        let entries = format == .nemo ? model.stateDict() : select(model, include: include)
        guard !entries.isEmpty else { throw NestError("--include \(include.joined(separator: ",")) selects no weights") }
        let arrays = entries.map { (name: $0.key, array: $0.value.arrayData) }
        switch format {
        case .h5:
            try SealedHDF5.write(to: output, kind: "export") { file in
                for (name, array) in arrays { try file.write("/weights/\(name)", array) }
                try file.writeString("/config/yaml", config.document.root.yaml())
                try file.setAttribute("source_checkpoint", origin)
            }
        case .safetensors:
            try AtomicFile.write(try SafetensorsWriter.data(arrays, metadata: ["format": "pt", "source_checkpoint": origin]), to: output)
        case .nemo:
            let archive = TarWriter.archive([
                ("model_config.yaml", Data(nemoModelConfig(config).yaml().utf8)),
                ("model_weights.ckpt", try TorchArchiveWriter.data(arrays)),
            ])
            try AtomicFile.write(archive, to: output)
        }
        return entries.count
    }

    /// `model_config.yaml` of a `.nemo`: the resolved model section with the class to build
    /// (`target`), every section's `_target_`, a disabled spec_augment where missing (NeMo's
    /// constructor needs one), and no data sections (restoring never sets up data loaders).
    public static func nemoModelConfig(_ config: RunConfig) -> ConfigNode {
        var model = config.document.node("model") ?? .map([])
        model.set(["train_ds"], .null)
        model.set(["validation_ds"], .null)
        if model["spec_augment"] == nil {
            for (k, v) in [("freq_masks", "0"), ("time_masks", "0"), ("freq_width", "27")] { model.set(["spec_augment", k], .scalar(v, tag: "int")) }
            model.set(["spec_augment", "time_width"], .scalar("0.05", tag: "float"))
        }
        for (section, target) in ModelConfigReader.sectionClasses where model[section]?.isMap == true && model[section]?["_target_"] == nil {
            model.set([section, "_target_"], .scalar(target, tag: "str"))
        }
        model.set(["target"], .scalar("nemo.collections.asr.models.ssl_models.EncDecDenoiseMaskedTokenPredModel", tag: "str"))
        model.set(["nemo_version"], .scalar("2.6.0rc0", tag: "str"))
        return model
    }
}
