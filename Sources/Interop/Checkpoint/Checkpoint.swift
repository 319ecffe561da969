import Basics
import Formats
import Foundation
import HDF5
import Model
import NN
import Tensor

/// The HDF5 checkpoint: a file per checkpoint, sealed by a header in HDF5's user block (length
/// and CRC-32 of the rest, checked before HDF5 parses anything), every dataset checksummed
/// (Fletcher-32), written
/// under a temporary name, flushed, fsync'ed and renamed, so a crash at any instant leaves the
/// previous checkpoint valid. Layout (readable with h5py):
///
///     /weights/<NeMo state-dict key>         every parameter and buffer
///     /optimizer/exp_avg/<key>, exp_avg_sq/<key>, /optimizer/step
///     /state/{step, epoch, batch_index, audio_seconds, skipped_steps,
///             consecutive_bad_steps, val_loss, world_size, global_batch}
///     (dropout masks are keyed by step and row, so no generator state is needed)
///     /config/yaml                           the resolved config text
///     root attributes: format, format_version, nest_train_version, created
public enum Checkpoint {
    public static let format = "nest-train checkpoint"
    public static let formatVersion = 1
    public static let projectVersion = "0.1.0"

    /// A weight or optimizer moment that is NaN or infinite is never sealed as a checkpoint: the
    /// write stops at it with `NonFiniteTensor` and the previous checkpoint stays the newest.
    public static func write(to path: String, model: NESTModel, optimizer: AdamW, state: TrainingState, configYAML: String) throws {
        try SealedHDF5.write(to: path, kind: "checkpoint") { file in
            func writeFinite(_ name: String, _ array: ArrayData) throws {
                if let index = array.firstNonFinite { throw NonFiniteTensor(name: name, index: index, value: array.doubles[index]) }
                try file.write(name, array)
            }
            for (name, array) in model.namedArrays() { try writeFinite("/weights/\(name)", array) }
            Failpoint.hit("checkpoint-mid-write")
            for (name, _) in optimizer.parameters {
                guard let (m, v) = optimizer.moments[name] else { continue }
                try writeFinite("/optimizer/exp_avg/\(name)", ArrayData(m.array, shape: m.shape))
                try writeFinite("/optimizer/exp_avg_sq/\(name)", ArrayData(v.array, shape: v.shape))
            }
            try file.write("/optimizer/step", ArrayData([Int64(optimizer.step)], shape: [1]))
            for field in TrainingState.fields {
                let value = field.get(state)
                if field.integer {
                    if let value { try file.write("/state/\(field.name)", ArrayData([Int64(value)], shape: [1])) }
                } else {
                    try file.write("/state/\(field.name)", ArrayData([value ?? .nan], shape: [1]))
                }
            }
            try file.writeString("/config/yaml", configYAML)
            try file.setAttribute("format", format)
            try file.setAttribute("format_version", String(formatVersion))
            try file.setAttribute("nest_train_version", projectVersion)
            try file.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
        }
    }

    /// Loads a checkpoint into `model` and `optimizer`; every dataset's checksum, every key
    /// and every shape is verified, and nothing is changed unless all of it loads.
    public static func read(from path: String, model: NESTModel, optimizer: AdamW?) throws -> TrainingState {
        try read(try CheckpointFile(path), model: model, optimizer: optimizer)
    }

    public static func read(_ checkpoint: CheckpointFile, model: NESTModel, optimizer: AdamW?) throws -> TrainingState {
        let state = try checkpoint.state()
        // Another model's checkpoint is told apart from a damaged one before anything is read.
        _ = try StateDictLoader.check(model, against: checkpoint.weights)
        let moments = try optimizer.map { try checkpoint.moments(for: $0) }
        let optimizerStep = try checkpoint.optimizerStep()
        try StateDictLoader.load(model, from: checkpoint.weights, policy: .exact)
        if let optimizer, let moments { optimizer.restore(step: optimizerStep, moments: moments) }
        return state
    }
}

/// A tensor about to be checkpointed holds a NaN or an infinity: the model diverged.
public struct NonFiniteTensor: Error, CustomStringConvertible {
    /// Its path in the checkpoint (`/weights/<key>`, `/optimizer/exp_avg/<key>`, ...).
    public let name: String
    public let index: Int
    public let value: Double
    public var description: String { "\(name) holds \(value) at flat index \(index)" }
}

/// A nest-train checkpoint opened for reading, the only way one is read: its seal is verified
/// before libhdf5 parses anything, then its format and version.
public final class CheckpointFile {
    public let path: String
    let file: HDF5File

    public init(_ path: String) throws {
        self.path = path
        file = try SealedHDF5.open(path)
        guard try file.stringAttribute("format") == Checkpoint.format else { throw NestError("\(path): not a nest-train checkpoint") }
        guard let version = try file.stringAttribute("format_version").flatMap(Int.init), version <= Checkpoint.formatVersion else {
            throw NestError("\(path): checkpoint format version \(try file.stringAttribute("format_version") ?? "?") is newer than this nest-train supports (\(Checkpoint.formatVersion))")
        }
    }

    /// The state dict under `/weights`.
    public var weights: TensorSource { HDF5Group(file: file, group: "/weights", origin: "nest-train checkpoint \(path)") }

    public func configYAML() throws -> String { try file.readString("/config/yaml") }

    /// Validation loss at this checkpoint, nil when none was run.
    public func valLoss() throws -> Double? { try state().valLoss }

    public func state() throws -> TrainingState {
        try TrainingState(origin: path) { field in
            guard file.exists("/state/\(field.name)") else { return nil }
            let array = try file.read("/state/\(field.name)")
            return field.integer ? array.ints.first.map(Double.init) : array.doubles.first
        }
    }

    func optimizerStep() throws -> Int {
        let step = try file.read("/optimizer/step").ints.first ?? 0
        guard step >= 0 else { throw NestError("\(path): optimizer/step is \(step); it counts updates, so it cannot be negative") }
        return step
    }

    /// AdamW moments saved for `optimizer`'s parameters, shapes checked.
    func moments(for optimizer: AdamW) throws -> [String: (m: Tensor, v: Tensor)] {
        var moments: [String: (m: Tensor, v: Tensor)] = [:]
        for (name, p) in optimizer.parameters where file.exists("/optimizer/exp_avg/\(name)") {
            let m = try file.read("/optimizer/exp_avg/\(name)"), v = try file.read("/optimizer/exp_avg_sq/\(name)")
            guard m.shape == p.shape, v.shape == p.shape else {
                throw StateDictMismatch(origin: "\(path): optimizer state", key: name, found: m.shape == p.shape ? v.shape : m.shape, expected: p.shape)
            }
            moments[name] = (Tensor(m.floats, shape: m.shape), Tensor(v.floats, shape: v.shape))
        }
        return moments
    }
}
