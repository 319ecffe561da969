import Basics
import Foundation
import Yams

/// A YAML document as an ordered tree: maps keep their key order (NeMo configs are read and
/// written back by people), scalars keep their text and whether YAML typed them.
public indirect enum ConfigNode: Equatable {
    case map([(key: String, value: ConfigNode)])
    case list([ConfigNode])
    /// Scalar text and its resolved YAML tag (str, int, float, bool).
    case scalar(String, tag: String)
    case null

    public static func == (a: ConfigNode, b: ConfigNode) -> Bool {
        switch (a, b) {
        case let (.map(x), .map(y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.list(x), .list(y)): x == y
        case let (.scalar(x, t), .scalar(y, u)): x == y && t == u
        case (.null, .null): true
        default: false
        }
    }

    /// Parses YAML text; errors carry the file name and YAML's line/column. Depth, aliases and
    /// the expanded size are bounded (`YAMLLimits`).
    public static func parse(_ text: String, file: String) throws -> ConfigNode {
        do {
            try YAMLLimits.preflight(text, file: file)
            guard let node = try Yams.compose(yaml: text) else { return .map([]) }
            var budget = YAMLLimits.NodeBudget(file: file)
            return try convert(node, path: [], budget: &budget)
        } catch let error as NestError {
            throw error
        } catch {
            throw NestError("\(file): invalid YAML: \(error)")
        }
    }

    private static func convert(_ node: Node, path: [String], budget: inout YAMLLimits.NodeBudget) throws -> ConfigNode {
        try budget.spend(at: path)
        switch node {
        case .mapping(let m):
            var entries: [(String, ConfigNode)] = []
            var lines: [String: Int] = [:]
            for (k, v) in m {
                guard let key = k.string else { throw NestError("\(budget.file): line \(k.mark?.line ?? 0): map keys must be strings") }
                // PyYAML keeps the last of two equal keys and Yams the first; OmegaConf, and so
                // NeMo, refuses the file. So does nest-train, pointing at both.
                let line = k.mark?.line ?? 0
                if let first = lines[key] {
                    throw NestError("\(budget.file): \((path + [key]).joined(separator: ".")) is written twice in one mapping (lines \(first) and \(line)); "
                        + "NeMo (OmegaConf) refuses such a file: keep one")
                }
                lines[key] = line
                entries.append((key, try convert(v, path: path + [key], budget: &budget)))
            }
            return .map(entries.map { (key: $0.0, value: $0.1) })
        case .sequence(let s):
            return .list(try s.enumerated().map { try convert($1, path: path + [String($0)], budget: &budget) })
        case .scalar(let s):
            let tag = node.tag.description.components(separatedBy: ":").last ?? "str"
            if tag == "null" { return .null }
            return .scalar(s.string, tag: tag)
        }
    }

    public subscript(key: String) -> ConfigNode? {
        if case .map(let entries) = self { return entries.first { $0.key == key }?.value }
        return nil
    }

    /// The node at a dotted path (list items by index).
    /// Every leaf as "a.b.c" → its YAML text, for comparing two configs.
    public var leaves: [String: String] {
        var out: [String: String] = [:]
        func walk(_ node: ConfigNode, _ path: String) {
            switch node {
            case .map(let entries): for (k, v) in entries { walk(v, path.isEmpty ? k : "\(path).\(k)") }
            case .list, .scalar, .null: out[path] = node.yaml().trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        walk(self, "")
        return out
    }

    public func at(_ path: String) -> ConfigNode? {
        var node: ConfigNode? = self
        for part in path.split(separator: ".").map(String.init) {
            switch node {
            case .map: node = node?[part]
            case .list(let items): node = Int(part).flatMap { $0 >= 0 && $0 < items.count ? items[$0] : nil }
            default: return nil
            }
        }
        return node
    }

    /// Sets (or adds) the node at a dotted path, creating maps on the way.
    public mutating func set(_ path: [String], _ value: ConfigNode) {
        guard let head = path.first else { self = value; return }
        var entries: [(key: String, value: ConfigNode)]
        if case .map(let e) = self { entries = e } else { entries = [] }
        if let i = entries.firstIndex(where: { $0.key == head }) {
            entries[i].value.set(Array(path.dropFirst()), value)
        } else {
            var child = ConfigNode.map([])
            child.set(Array(path.dropFirst()), value)
            entries.append((head, child))
        }
        self = .map(entries)
    }

    public var isMap: Bool { if case .map = self { return true } else { return false } }

    public var keys: [String] {
        if case .map(let e) = self { return e.map(\.key) }
        return []
    }

    /// YAML text of this node (block style), for checkpoints and `.nemo` archives.
    public func yaml(indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .map(let entries):
            if entries.isEmpty { return "{}\n" }
            return entries.map { e in
                switch e.value {
                case .map(let sub) where !sub.isEmpty: "\(pad)\(e.key):\n" + e.value.yaml(indent: indent + 2)
                case .list(let items) where !items.isEmpty: "\(pad)\(e.key):\n" + e.value.yaml(indent: indent)
                default: "\(pad)\(e.key): \(e.value.inlineYAML)\n"
                }
            }.joined()
        case .list(let items):
            return items.map { item in
                switch item {
                case .map(let sub) where !sub.isEmpty:
                    let body = item.yaml(indent: indent + 2)
                    return "\(pad)- " + body.dropFirst(indent + 2)
                default: return "\(pad)- \(item.inlineYAML)\n"
                }
            }.joined()
        default:
            return inlineYAML + "\n"
        }
    }

    private var inlineYAML: String {
        switch self {
        case .null: return "null"
        case .map(let e) where e.isEmpty: return "{}"
        case .list(let l) where l.isEmpty: return "[]"
        case .scalar(let s, let tag):
            if tag != "str" { return s }
            // Quote strings that YAML would otherwise read as something else.
            let plain = !s.isEmpty && s.range(of: #"^[A-Za-z_/.][A-Za-z0-9_./\-]*$"#, options: .regularExpression) != nil
                && !["true", "false", "null", "yes", "no", "on", "off", "~"].contains(s.lowercased())
            return plain ? s : "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
        default: return "null"
        }
    }
}


