import Basics
import Foundation

/// A NeMo-structured config: parsed, interpolations resolved, overrides applied, and read
/// through typed accessors whose errors name the key path and the file.
///
/// Accepts NeMo's full layout (`name`, `model`, `trainer`, `exp_manager`) and a bare model
/// config (as in a `.nemo` file's `model_config.yaml`), which is wrapped under `model`.
public struct ConfigDocument {
    public private(set) var root: ConfigNode
    public let file: String
    /// Keys read through the accessors (to warn about the ones never used).
    public private(set) var warnings: [String] = []

    public init(text: String, file: String, overrides: [String] = []) throws {
        self.file = file
        var node = try ConfigNode.parse(text, file: file)
        guard node.isMap else { throw NestError("\(file): the top level must be a map") }
        if node["model"] == nil && (node["encoder"] != nil || node["preprocessor"] != nil) {
            node = .map([(key: "model", value: node)])
        }
        for o in overrides { try Self.apply(override: o, to: &node, file: file) }
        root = try Self.resolveInterpolations(node, file: file)
    }

    public init(contentsOf path: String, overrides: [String] = []) throws {
        let data = try RegularFile.contents(path, what: "config file")
        guard let text = String(data: data, encoding: .utf8) else { throw NestError("\(path): not UTF-8 text") }
        try self.init(text: text, file: path, overrides: overrides)
    }

    /// Hydra-style override: `a.b=v` (key must exist), `+a.b=v` (must not exist), `++a.b=v` (either).
    static func apply(override: String, to node: inout ConfigNode, file: String) throws {
        guard let eq = override.firstIndex(of: "=") else { throw NestError("override '\(override)': expected key.path=value") }
        var key = String(override[..<eq])
        let valueText = String(override[override.index(after: eq)...])
        var mode = 0
        if key.hasPrefix("++") { mode = 2; key.removeFirst(2) } else if key.hasPrefix("+") { mode = 1; key.removeFirst() }
        let value = try ConfigNode.parse(valueText.isEmpty ? "''" : valueText, file: "override \(key)")
        // Keys of a bare model config may be given as written in that file (no `model.`), also
        // below a section that is null there (`.nemo` files have `train_ds: null`).
        let head = String(key.prefix { $0 != "." })
        if node[head] == nil, !key.hasPrefix("model."), node.at("model." + head) != nil { key = "model." + key }
        let exists = node.at(key) != nil
        if mode == 0 && !exists {
            throw NestError("override \(key): no such key in \(file) (use ++\(key)=… to add it)")
        }
        if mode == 1 && exists { throw NestError("override +\(key): the key already exists in \(file) (use ++ to replace it)") }
        if mode == 0, let old = node.at(key) { try checkSameKind(old, value, key: key, file: file) }
        node.set(key.split(separator: ".").map(String.init), value)
    }

    private static func checkSameKind(_ old: ConfigNode, _ new: ConfigNode, key: String, file: String) throws {
        switch (old, new) {
        case (.map, .map), (.list, .list), (.null, _), (_, .null): return
        case let (.scalar(_, t1), .scalar(_, t2)):
            let numeric: Set<String> = ["int", "float"]
            if t1 == t2 || (numeric.contains(t1) && numeric.contains(t2)) || t1 == "str" { return }
            throw NestError("override \(key): \(file) has a \(t1) there, got a \(t2)")
        default:
            throw NestError("override \(key): the value's kind does not match the one in \(file)")
        }
    }

    /// Resolves `${a.b}` (from the root; a path that does not exist from the root is tried
    /// under `model.`, so bare model configs' `${encoder.d_model}` work). A cycle is an error
    /// naming its keys; the resolved tree is bounded like a parsed one (`YAMLLimits`), since
    /// interpolations can copy a subtree as aliases do.
    static func resolveInterpolations(_ root: ConfigNode, file: String) throws -> ConfigNode {
        var resolver = InterpolationResolver(root: root, file: file, budget: YAMLLimits.NodeBudget(file: file))
        return try resolver.resolve(root, path: [], chain: [])
    }

    // MARK: typed access

    public func node(_ path: String) -> ConfigNode? { root.at(path) }

    /// Sets `path` (absent until now) to `value`: a class default (`ClassDefaults`).
    mutating func setAbsent(_ path: String, _ value: ConfigNode) {
        precondition(root.at(path) == nil, "\(path) is in \(file)")
        root.set(path.split(separator: ".").map(String.init), value)
    }

    public func has(_ path: String) -> Bool {
        if let n = root.at(path), n != .null { return true }
        return false
    }

    private func scalar(_ path: String) throws -> (String, String)? {
        guard let n = root.at(path) else { return nil }
        switch n {
        case .null: return nil
        case .scalar(let s, let tag): return (s, tag)
        default: throw NestError("\(file): \(path) must be a single value")
        }
    }

    /// The YAML type of a scalar ("int", "float", "str", "bool"), nil when absent or not a scalar.
    public func tag(_ path: String) -> String? {
        if case .scalar(_, let t)? = root.at(path) { return t }
        return nil
    }

    public func int(_ path: String, default value: Int) throws -> Int { try int(path) ?? value }

    /// An integer that must lie in `range` (the default is not checked: it is the class's own).
    public func int(_ path: String, default value: Int, in range: ClosedRange<Int>) throws -> Int { try int(path, in: range) ?? value }

    public func int(_ path: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = try int(path) else { return nil }
        guard range.contains(v) else { throw NestError("\(file): \(path) must be in \(Self.describe(range)), got \(v)") }
        return v
    }

    public func double(_ path: String, default value: Double, in range: ClosedRange<Double>) throws -> Double { try double(path, in: range) ?? value }

    public func double(_ path: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = try double(path) else { return nil }
        guard range.contains(v) else { throw NestError("\(file): \(path) must be in \(Self.describe(range)), got \(v)") }
        return v
    }

    static func describe<T: Comparable & CustomStringConvertible>(_ range: ClosedRange<T>) -> String {
        "\(range.lowerBound)…\(range.upperBound)"
    }

    public func int(_ path: String) throws -> Int? {
        guard let (s, _) = try scalar(path) else { return nil }
        if let v = Int(s) { return v }
        if let d = Double(s), d == d.rounded(), abs(d) < 1e15 { return Int(d) }
        throw NestError("\(file): \(path) must be an integer, got '\(s)'")
    }

    public func double(_ path: String, default value: Double) throws -> Double { try double(path) ?? value }

    public func double(_ path: String) throws -> Double? {
        guard let (s, _) = try scalar(path) else { return nil }
        guard let v = Double(s) else { throw NestError("\(file): \(path) must be a number, got '\(s)'") }
        guard v.isFinite else { throw NestError("\(file): \(path) must be a finite number, got '\(s)'") }
        return v
    }

    public func bool(_ path: String, default value: Bool) throws -> Bool {
        guard let (s, _) = try scalar(path) else { return value }
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw NestError("\(file): \(path) must be true or false, got '\(s)'")
        }
    }

    public func string(_ path: String) throws -> String? { try scalar(path)?.0 }

    public func intList(_ path: String) throws -> [Int]? {
        guard let n = root.at(path), n != .null else { return nil }
        guard case .list(let items) = n else { throw NestError("\(file): \(path) must be a list of integers") }
        return try items.enumerated().map { i, item in
            guard case .scalar(let s, _) = item, let v = Int(s) else { throw NestError("\(file): \(path).\(i) must be an integer") }
            return v
        }
    }

    public func doubleList(_ path: String) throws -> [Double]? {
        guard let n = root.at(path), n != .null else { return nil }
        guard case .list(let items) = n else { throw NestError("\(file): \(path) must be a list of numbers") }
        return try items.enumerated().map { i, item in
            guard case .scalar(let s, _) = item, let v = Double(s) else { throw NestError("\(file): \(path).\(i) must be a number") }
            return v
        }
    }

    mutating func warn(_ message: String) { warnings.append(message) }
}
