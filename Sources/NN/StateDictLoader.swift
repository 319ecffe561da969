import Basics
import Formats
import Tensor

/// Loads a module's state dict from named arrays (any `TensorSource`), by NeMo key.
///
/// Every name and shape is checked before any value is read, so a file for another model
/// changes nothing; then the arrays are read and written into the module one at a time, so
/// loading never holds a second copy of the weights (an XL state dict is 2.5 GB). Sources whose
/// reads can fail after that check verify their data first (checkpoints' seal, torch
/// archives' CRCs). Values convert between float dtypes like PyTorch's `copy_`.
public enum StateDictLoader {
    public struct Policy {
        /// Keys of the module to load; the others are left as they are.
        public var include: (String) -> Bool
        /// A selected key the source lacks is an error (except `num_batches_tracked`, which
        /// NeMo also tolerates), and so is a selected source array the module does not have.
        public var strict: Bool

        public init(strict: Bool, include: @escaping (String) -> Bool = { _ in true }) {
            self.strict = strict
            self.include = include
        }

        /// Every key, nothing missing, nothing extra: checkpoints and fixtures.
        public static let exact = Policy(strict: true)
    }

    /// Returns the keys loaded.
    @discardableResult
    public static func load(_ module: Module, from source: TensorSource, policy: Policy = .exact, prefix: String = "") throws -> [String] {
        let selected = try check(module, against: source, policy: policy, prefix: prefix)
        for entry in selected {
            let array = try source.read(entry.key)
            guard array.shape == entry.value.shape else { throw NestError("\(source.origin): \(entry.key) changed shape while being read") }
            entry.value.assign(array)
        }
        return selected.map(\.key)
    }

    /// The entries `load` would write, after checking every name and shape without reading a
    /// value; a source that does not fit throws `StateDictMismatch`.
    public static func check(_ module: Module, against source: TensorSource, policy: Policy = .exact, prefix: String = "") throws -> [StateEntry] {
        let available = try source.names()
        let availableSet = Set(available)
        var selected: [StateEntry] = []
        for entry in module.stateDict(prefix: prefix) where policy.include(entry.key) {
            guard availableSet.contains(entry.key) else {
                if entry.key.hasSuffix("num_batches_tracked") || !policy.strict { continue }
                throw StateDictMismatch(origin: source.origin, key: entry.key, found: nil, expected: entry.value.shape)
            }
            let shape = try source.shape(entry.key)
            guard shape == entry.value.shape else {
                throw StateDictMismatch(origin: source.origin, key: entry.key, found: shape, expected: entry.value.shape)
            }
            selected.append(entry)
        }
        if policy.strict {
            let known = Set(module.stateDict(prefix: prefix).map(\.key))
            let unexpected = available.filter { policy.include($0) && !known.contains($0) }
            if let first = unexpected.first {
                throw StateDictMismatch(origin: source.origin, key: first, found: try source.shape(first), expected: nil,
                                        more: unexpected.dropFirst().prefix(4) + [], others: unexpected.count - 1)
            }
        }
        return selected
    }
}

/// A state dict that reads correctly but does not fit the module: another model's (another
/// config's sizes, another architecture). It is not damage, and callers that fall back past
/// damaged files must not fall back past it.
public struct StateDictMismatch: Error, CustomStringConvertible {
    public let origin: String
    /// The first key that differs.
    public let key: String
    /// Its shape in the source (nil: the source lacks it) and in the module (nil: the module has no such key).
    public let found: [Int]?
    public let expected: [Int]?
    /// For keys only the source has: the next few of them, and how many in all after `key`.
    var more: [String] = []
    var others = 0

    public init(origin: String, key: String, found: [Int]?, expected: [Int]?, more: [String] = [], others: Int = 0) {
        (self.origin, self.key, self.found, self.expected, self.more, self.others) = (origin, key, found, expected, more, others)
    }

    public var description: String {
        switch (found, expected) {
        case (nil, _): "\(origin): missing \(key)"
        case let (found?, expected?): "\(origin): \(key) has shape \(found), the model expects \(expected) (from a different config?)"
        case (_, nil):
            "\(origin): unexpected \(([key] + more).joined(separator: ", "))\(others > more.count ? " and \(others - more.count) more" : "")"
        }
    }
}

extension StateValue {
    /// The values as a file stores them.
    public var arrayData: ArrayData {
        switch self {
        case .float32(let t): ArrayData(t.array, shape: t.shape)
        case .float64(let t): ArrayData(t.values, shape: t.shape)
        case .int64(let t): ArrayData(t.values, shape: t.shape)
        }
    }

    /// Writes `array` (same shape, any dtype) into the live storage.
    func assign(_ array: ArrayData) {
        switch self {
        case .float32(let t): array.floats.withUnsafeBufferPointer { t.assign($0) }
        case .float64(let t): t.values = array.doubles
        case .int64(let t): t.values = array.ints.map { Int64($0) }
        }
    }
}

extension Module {
    /// The state dict as named arrays, optionally only the keys `include` selects.
    public func namedArrays(include: (String) -> Bool = { _ in true }) -> [NamedArray] {
        stateDict().filter { include($0.key) }.map { (name: $0.key, array: $0.value.arrayData) }
    }
}
