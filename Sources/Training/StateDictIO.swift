import HDF5
import NN
import Tensor
import Formats



/// Reads and writes a module's state dict as HDF5 datasets named by NeMo key, under a group
/// (`/weights` in checkpoints and fixtures) or at the file root.
public enum StateDictIO {
    /// Where the state dict lives in `file`: `/weights` if present, else the root.
    public static func defaultGroup(in file: HDF5File) -> String {
        file.exists("/weights") ? "/weights" : "/"
    }

    /// Loads every entry of `module`'s state dict from `group`. Shapes must match exactly;
    /// values convert between float dtypes like PyTorch's `copy_`. With `strict`, a dataset in
    /// the group that the module does not have is an error, as is a missing key (except
    /// `num_batches_tracked`, which NeMo also tolerates).
    public static func load(_ module: Module, from file: HDF5File, group: String? = nil, prefix: String = "",
                            strict: Bool = true, only include: ((String) -> Bool)? = nil) throws {
        let group = group ?? defaultGroup(in: file)
        let base = group == "/" ? "" : group
        let available = Set(try file.datasetNames(in: group))
        let entries = module.stateDict(prefix: prefix).filter { include?($0.key) ?? true }
        var expected = Set<String>()
        for entry in entries {
            expected.insert(entry.key)
            guard available.contains(entry.key) else {
                if entry.key.hasSuffix("num_batches_tracked") || !strict { continue }
                throw NestError("\(file.path): missing key \(entry.key) (in \(group))")
            }
            let array = try file.read("\(base)/\(entry.key)")
            try assign(array, to: entry, file: file.path)
        }
        if strict && include == nil {
            let unexpected = available.subtracting(expected).sorted()
            if !unexpected.isEmpty {
                throw NestError("\(file.path): unexpected keys in \(group): \(unexpected.prefix(5).joined(separator: ", "))\(unexpected.count > 5 ? " and \(unexpected.count - 5) more" : "")")
            }
        }
    }

    static func assign(_ array: ArrayData, to entry: StateEntry, file: String) throws {
        guard array.shape == entry.value.shape else {
            throw NestError("\(file): \(entry.key) has shape \(array.shape), the model expects \(entry.value.shape)")
        }
        switch entry.value {
        case .float32(let t): array.floats.withUnsafeBufferPointer { t.assign($0) }
        case .float64(let t): t.values = array.doubles
        case .int64(let t): t.values = array.ints.map { Int64($0) }
        }
    }

    /// Writes the state dict (optionally filtered) as datasets of `group`, with checksums.
    public static func write(_ module: Module, to file: HDF5File, group: String = "/weights",
                             only include: ((String) -> Bool)? = nil) throws {
        let base = group == "/" ? "" : group
        for entry in module.stateDict() where include?(entry.key) ?? true {
            try file.write("\(base)/\(entry.key)", array(of: entry.value))
        }
    }

    public static func array(of value: StateValue) -> ArrayData {
        switch value {
        case .float32(let t): ArrayData(t.array, shape: t.shape)
        case .float64(let t): ArrayData(t.values, shape: t.shape)
        case .int64(let t): ArrayData(t.values, shape: t.shape)
        }
    }
}
