import Basics
import Formats
import Foundation
import HDF5
import Model
import NN

/// Weights from a file the user names, whatever its format, as named arrays: nest-train
/// checkpoints and h5 exports (sealed, verified first), HDF5 state dicts from elsewhere (h5py,
/// the fixtures: the foreign path), safetensors, torch archives (`model_weights.ckpt`, a
/// Lightning `.ckpt`) and `.nemo` models. The kind is told by the file's first bytes.
public enum WeightsFile {
    public static func open(_ path: String) throws -> TensorSource {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return try NemoFile(path).weights }
        if Seal.isPresent(path) {
            let file = try SealedHDF5.open(path)
            return HDF5Group(file: file, group: file.exists("/weights") ? "/weights" : "/", origin: "nest-train file \(path)")
        }
        let bytes = try Bytes.mapping(path)
        if bytes.starts(with: [0x89, 0x48, 0x44, 0x46]) || (bytes.count > 520 && (try? bytes.slice(512, 4, "").array) == [0x89, 0x48, 0x44, 0x46]) {
            return try HDF5Group.foreign(path: path)
        }
        if bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) || bytes.starts(with: [0x80, 0x02, 0x8A, 0x0A]) { return try TorchArchiveReader(bytes) }
        if bytes.starts(with: [0x1F, 0x8B]) || (bytes.count >= 512 && (try? bytes.slice(257, 5, "").string) == "ustar") { return try NemoFile(path).weights }
        if bytes.count >= 9, (try? bytes.slice(8, 1, "").array) == [UInt8(ascii: "{")] { return try SafetensorsReader(bytes) }
        throw NestError(file: path, "not a weights file nest-train reads (HDF5, safetensors, torch archive or .nemo)")
    }

    /// Loads the encoder of `model` (every `encoder.` key, none missing) from a checkpoint or a
    /// weights file; other keys of a weights file are ignored unless `everyKey` asks for the
    /// whole model (quantizer, mask embedding, decoder: what scoring the objective needs).
    public static func loadEncoder(into model: NESTModel, checkpoint: String?, weights: String?, everyKey: Bool = false) throws {
        switch (checkpoint, weights) {
        case let (c?, nil): _ = try Checkpoint.read(from: c, model: model, optimizer: nil)
        case let (nil, w?): try StateDictLoader.load(model, from: try open(w), policy: .init(strict: true, include: { everyKey || $0.hasPrefix("encoder.") }))
        default: throw NestError("give exactly one of --checkpoint and --weights")
        }
    }
}
