import Foundation
import HDF5
import Model
import NN
import Tensor
import Formats

/// Everything besides weights and optimizer moments that a resumed run needs to continue
/// exactly where the interrupted one stood.
public struct TrainingState: Equatable {
    /// Optimizer updates done.
    public var step = 0
    /// The next batch to train on.
    public var position = DataPosition(epoch: 0, index: 0)
    public var dropoutRNG: [UInt64] = []
    public var audioSeconds = 0.0
    public var skippedSteps = 0
    public var consecutiveBadSteps = 0
    /// Validation loss at this checkpoint (nil when none was run), for keeping the best ones.
    public var valLoss: Double? = nil
    public init() {}
}

/// The HDF5 checkpoint: a file per checkpoint, sealed by a header in HDF5's user block (length
/// and CRC-32 of the rest, checked before HDF5 parses anything), every dataset checksummed
/// (Fletcher-32), written
/// under a temporary name, flushed, fsync'ed and renamed, so a crash at any instant leaves the
/// previous checkpoint valid. Layout (readable with h5py):
///
///     /weights/<NeMo state-dict key>         every parameter and buffer
///     /optimizer/exp_avg/<key>, exp_avg_sq/<key>, /optimizer/step
///     /state/{step, epoch, batch_index, dropout_rng, audio_seconds, skipped_steps,
///             consecutive_bad_steps, val_loss}
///     /config/yaml                           the resolved config text
///     root attributes: format, format_version, nest_train_version, created
public enum Checkpoint {
    public static let format = "nest-train checkpoint"
    public static let formatVersion = 1
    public static let projectVersion = "0.1.0"

    public static func write(to path: String, model: NESTModel, optimizer: AdamW, state: TrainingState, configYAML: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        defer { unlink(temporary) }
        do {
            let file = try HDF5File(path: temporary, mode: .create, userBlock: Seal.size)
            try StateDictIO.write(model, to: file, group: "/weights")
            Failpoint.hit("checkpoint-mid-write")
            for (name, _) in optimizer.parameters {
                guard let (m, v) = optimizer.moments[name] else { continue }
                try file.write("/optimizer/exp_avg/\(name)", ArrayData(m.array, shape: m.shape))
                try file.write("/optimizer/exp_avg_sq/\(name)", ArrayData(v.array, shape: v.shape))
            }
            try file.write("/optimizer/step", ArrayData([Int64(optimizer.step)], shape: [1]))
            let s = state
            try file.write("/state/step", ArrayData([Int64(s.step)], shape: [1]))
            try file.write("/state/epoch", ArrayData([Int64(s.position.epoch)], shape: [1]))
            try file.write("/state/batch_index", ArrayData([Int64(s.position.index)], shape: [1]))
            try file.write("/state/dropout_rng", ArrayData(s.dropoutRNG.map { Int64(bitPattern: $0) }, shape: [s.dropoutRNG.count]))
            try file.write("/state/audio_seconds", ArrayData([s.audioSeconds], shape: [1]))
            try file.write("/state/skipped_steps", ArrayData([Int64(s.skippedSteps)], shape: [1]))
            try file.write("/state/consecutive_bad_steps", ArrayData([Int64(s.consecutiveBadSteps)], shape: [1]))
            try file.write("/state/val_loss", ArrayData([s.valLoss ?? .nan], shape: [1]))
            try file.writeString("/config/yaml", configYAML)
            try file.setAttribute("format", format)
            try file.setAttribute("format_version", String(formatVersion))
            try file.setAttribute("nest_train_version", projectVersion)
            try file.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
            try file.close()
            try Seal.write(temporary)
            Failpoint.hit("checkpoint-before-rename")
            try durablyRename(temporary, to: path)
        } catch {
            throw NestError("\(path): writing the checkpoint failed, the previous checkpoint is untouched: \(error)")
        }
    }

    /// fsync the file, rename it into place, fsync the folder.
    static func durablyRename(_ from: String, to: String) throws {
        let fd = open(from, O_RDONLY)
        guard fd >= 0 else { throw NestError("\(from): cannot reopen for fsync") }
        let synced = fsync(fd)
        close(fd)
        guard synced == 0 else { throw NestError("\(from): fsync failed (errno \(errno))") }
        guard rename(from, to) == 0 else { throw NestError("\(to): rename failed (errno \(errno))") }
        let dir = open(URL(fileURLWithPath: to).deletingLastPathComponent().path, O_RDONLY)
        if dir >= 0 { fsync(dir); close(dir) }
    }

    /// Loads a checkpoint into `model` and `optimizer`; every dataset's checksum, every key
    /// and every shape is verified, and nothing is changed unless all of it loads.
    public static func read(from path: String, model: NESTModel, optimizer: AdamW?) throws -> TrainingState {
        // libhdf5 is not hardened against hostile files: only a file whose seal (length and
        // CRC-32 of everything after the header) verifies is handed to it.
        try Seal.verify(path)
        let file = try HDF5File(path: path, mode: .readOnly)
        guard try file.stringAttribute("format") == format else { throw NestError("\(path): not a nest-train checkpoint") }
        guard let version = try file.stringAttribute("format_version").flatMap(Int.init), version <= formatVersion else {
            throw NestError("\(path): checkpoint format version \(try file.stringAttribute("format_version") ?? "?") is newer than this nest-train supports (\(formatVersion))")
        }
        // Read everything first into a staging model so a bad file cannot leave a half-loaded one.
        func scalar(_ name: String) throws -> Int { try file.read("/state/\(name)").ints.first ?? 0 }
        var state = TrainingState()
        state.step = try scalar("step")
        state.position = DataPosition(epoch: try scalar("epoch"), index: try scalar("batch_index"))
        state.dropoutRNG = try file.read("/state/dropout_rng").ints.map { UInt64(bitPattern: Int64($0)) }
        state.audioSeconds = try file.read("/state/audio_seconds").doubles.first ?? 0
        state.skippedSteps = try scalar("skipped_steps")
        state.consecutiveBadSteps = try scalar("consecutive_bad_steps")
        let val = try file.read("/state/val_loss").doubles.first ?? .nan
        state.valLoss = val.isNaN ? nil : val
        guard state.dropoutRNG.count == 4, state.dropoutRNG.contains(where: { $0 != 0 }) else {
            throw NestError("\(path): /state/dropout_rng must hold four words")
        }
        var moments: [String: (m: Tensor, v: Tensor)] = [:]
        if let optimizer {
            for (name, p) in optimizer.parameters where file.exists("/optimizer/exp_avg/\(name)") {
                let m = try file.read("/optimizer/exp_avg/\(name)"), v = try file.read("/optimizer/exp_avg_sq/\(name)")
                guard m.shape == p.shape, v.shape == p.shape else {
                    throw NestError("\(path): optimizer state for \(name) has shape \(m.shape), the model expects \(p.shape)")
                }
                moments[name] = (Tensor(m.floats, shape: m.shape), Tensor(v.floats, shape: v.shape))
            }
        }
        let optimizerStep = try file.read("/optimizer/step").ints.first ?? 0
        let staged = try stagedWeights(file, model: model, path: path)
        for (entry, array) in staged { try StateDictIO.assign(array, to: entry, file: path) }
        optimizer?.restore(step: optimizerStep, moments: moments)
        return state
    }

    private static func stagedWeights(_ file: HDF5File, model: NESTModel, path: String) throws -> [(StateEntry, ArrayData)] {
        let available = Set(try file.datasetNames(in: "/weights"))
        var out: [(StateEntry, ArrayData)] = []
        for entry in model.stateDict() {
            guard available.contains(entry.key) else { throw NestError("\(path): missing /weights/\(entry.key)") }
            let array = try file.read("/weights/\(entry.key)")
            guard array.shape == entry.value.shape else {
                throw NestError("\(path): /weights/\(entry.key) has shape \(array.shape), the model expects \(entry.value.shape) (checkpoint from a different config?)")
            }
            out.append((entry, array))
        }
        let unexpected = available.subtracting(out.map(\.0.key))
        if !unexpected.isEmpty { throw NestError("\(path): unexpected weights \(unexpected.sorted().prefix(3).joined(separator: ", "))") }
        return out
    }
}


