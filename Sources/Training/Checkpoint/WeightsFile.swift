import Formats
import HDF5
import Model
import NN

/// Weights for a model from a file the user names: a nest-train checkpoint, a nest-train h5
/// export (both sealed and verified first), or an HDF5 state dict from elsewhere (h5py, the
/// fixtures), which goes through the foreign path.
public enum WeightsFile {
    public static func open(_ path: String) throws -> TensorSource {
        guard Seal.isPresent(path) else { return try HDF5Group.foreign(path: path) }
        let file = try SealedHDF5.open(path)
        return HDF5Group(file: file, group: file.exists("/weights") ? "/weights" : "/", origin: "nest-train file \(path)")
    }

    /// Loads the encoder of `model` (every `encoder.` key, none missing) from a checkpoint or a
    /// weights file; other keys of a weights file are ignored.
    public static func loadEncoder(into model: NESTModel, checkpoint: String?, weights: String?) throws {
        switch (checkpoint, weights) {
        case let (c?, nil): _ = try Checkpoint.read(from: c, model: model, optimizer: nil)
        case let (nil, w?): try StateDictLoader.load(model, from: try open(w), policy: .init(strict: true, include: { $0.hasPrefix("encoder.") }))
        default: throw NestError("give exactly one of --checkpoint and --weights")
        }
    }
}
