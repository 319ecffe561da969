import Config
import Foundation
import Formats
import Model
import NN

/// Applying a `PretrainedInit` (the settings `RunConfig` reads) to a model.
extension PretrainedInit {
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
