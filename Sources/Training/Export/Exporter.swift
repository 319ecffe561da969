import Foundation
import HDF5
import Model
import NN

/// Writes a checkpoint's weights under NeMo state-dict keys for downstream use.
public enum Exporter {
    public enum Format: String, CaseIterable { case h5, safetensors }

    /// Rebuilds the model a checkpoint was trained with (from its stored config) and loads it.
    public static func loadCheckpoint(_ path: String) throws -> (NESTModel, RunConfig) {
        let file = try HDF5File(path: path, mode: .readOnly)
        let yaml = try file.readString("/config/yaml")
        let config = try RunConfig(try ConfigDocument(text: yaml, file: "\(path):/config/yaml"), requireData: false)
        let (model, _) = ModelFactory.make(config)
        _ = try Checkpoint.read(from: path, model: model, optimizer: nil)
        return (model, config)
    }

    /// Keys selected NeMo's way: a key is kept when any `include` string is a substring of it
    /// ("all" keeps everything).
    public static func select(_ model: NESTModel, include: [String]) -> [StateEntry] {
        model.stateDict().filter { e in include.contains("all") || include.contains { e.key.contains($0) } }
    }

    public static func export(checkpoint: String, output: String, format: Format, include: [String]) throws -> Int {
        let (model, config) = try loadCheckpoint(checkpoint)
        let entries = select(model, include: include)
        guard !entries.isEmpty else { throw CheckpointError("--include \(include.joined(separator: ",")) selects no weights") }
        let temporary = output + ".tmp-\(getpid())"
        defer { unlink(temporary) }
        switch format {
        case .h5:
            let file = try HDF5File(path: temporary, mode: .create)
            for e in entries { try file.write("/weights/\(e.key)", StateDictIO.array(of: e.value)) }
            try file.writeString("/config/yaml", config.document.root.yaml())
            try file.setAttribute("source_checkpoint", checkpoint)
            try file.close()
        case .safetensors:
            let data = try SafetensorsWriter.data(entries: entries, metadata: ["format": "pt", "source_checkpoint": checkpoint])
            guard FileManager.default.createFile(atPath: temporary, contents: data) else {
                throw CheckpointError("\(output): cannot write (disk full?)")
            }
        }
        try Checkpoint.durablyRename(temporary, to: output)
        return entries.count
    }
}
