/// What a model key means when a config leaves it out, in one table: NeMo's class default (the
/// constructor argument's default, which Hydra uses for an absent key) beside the value NeMo's
/// recipe `nest_fast-conformer.yaml` writes. The two differ for these keys; nest-train's own
/// configs write every key, and `NESTConfig()`'s field defaults are the recipe column.
///
/// A config (or a `.nemo`'s `model_config.yaml`) without the key gets the class default, as in
/// NeMo. Keys the spec gives no class default for are required where they define the
/// architecture (`NemoFile.architectureKeys`).
public enum NeMoDefaults {
    public struct Entry {
        /// Path under `model.`.
        public let key: String
        public let classDefault: String
        public let recipe: String
    }

    public static let table: [Entry] = [
        Entry(key: "masking.block_size", classDefault: "48", recipe: "40"),
        Entry(key: "masking.mask_prob", classDefault: "0.5", recipe: "0.01"),
        Entry(key: "masking.allow_overlap", classDefault: "false", recipe: "true"),
        Entry(key: "masking.max_mask_ratio", classDefault: "0.8", recipe: "0.8"),
        Entry(key: "quantizer.dist_fn", classDefault: "cosine", recipe: "l2"),
        Entry(key: "encoder.subsampling", classDefault: "striding", recipe: "dw_striding"),
        Entry(key: "encoder.subsampling_factor", classDefault: "4", recipe: "8"),
        Entry(key: "encoder.conv_kernel_size", classDefault: "31", recipe: "9"),
        Entry(key: "preprocessor.features", classDefault: "64", recipe: "80"),
        Entry(key: "preprocessor.window_size", classDefault: "0.02", recipe: "0.025"),
        Entry(key: "preprocessor.preemph", classDefault: "0.97", recipe: "0.97"),
    ]

    /// The class default of `key` (under `model.`); a key missing from the table is a
    /// programming error.
    public static func classDefault(_ key: String) -> String {
        guard let entry = table.first(where: { $0.key == key }) else { preconditionFailure("no NeMo default for \(key)") }
        return entry.classDefault
    }
}
