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
}
