import Foundation
import Formats
import Model
import NN

/// NeMo's `init_from_nemo_model`: a new run starts from the weights of a `.nemo` file (or any
/// weights file nest-train reads), the keys chosen by NeMo's substring rule: a key is taken
/// when some `include` string is in it (default: every key) and no `exclude` string is.
/// Unlike NeMo's non-strict load, a selected key the model lacks, a model key the file lacks,
/// or a shape that differs is an error naming the key. A `.nemo` holds no optimizer state or
/// step, so the run starts at step 0 with fresh AdamW moments and the schedule's warm-up.
public struct PretrainedInit: Equatable {
    public var path: String
    public var keys: KeySelection

    public init(path: String, include: [String] = [""], exclude: [String] = []) {
        self.path = path
        keys = KeySelection(include: include, exclude: exclude)
    }

    /// The keys taken; `decoder_ssl.*` (a head early NEST uploads carry and the model no longer
    /// has) never.
    public func selects(_ key: String) -> Bool { !key.hasPrefix("decoder_ssl.") && keys.selects(key) }

    /// Loads the selected weights into `model`; returns the number of tensors and warnings.
    public func apply(to model: NESTModel) throws -> (loaded: Int, warnings: [String]) {
        let source = try WeightsFile.open(path)
        let loaded = try StateDictLoader.load(model, from: source, policy: .init(strict: true, include: selects))
        var warnings: [String] = []
        let frozen = model.stateDict().map(\.key).filter { $0.hasPrefix("quantizer.") || $0.hasPrefix("mask_processor.") }
        if frozen.contains(where: { !selects($0) }) {
            warnings.append("init_from_nemo_model \(path): the quantizer or mask embedding is excluded, so the targets are new random ones: "
                            + "a different objective from the one the model was pretrained on")
        }
        return (loaded.count, warnings)
    }
}
