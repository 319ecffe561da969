import Basics
import Foundation

/// OmegaConf-style `${key.path}` resolution over a parsed document: a whole-value reference
/// takes the target's node (and type), references inside text are replaced by the target's
/// scalar text.
struct InterpolationResolver {
    let root: ConfigNode
    let file: String
    var budget: YAMLLimits.NodeBudget
    /// Resolved text longer than this is refused (text references can double it per level).
    static let maxScalarLength = 1 << 16
    private static let reference = try! NSRegularExpression(pattern: #"\$\{([^}]+)\}"#)

    /// `path`: where `node` sits; `chain`: the keys whose references led here, for cycles.
    mutating func resolve(_ node: ConfigNode, path: [String], chain: [String]) throws -> ConfigNode {
        try budget.spend(at: path)
        switch node {
        case .map(let entries):
            var out: [(key: String, value: ConfigNode)] = []
            for e in entries { out.append((e.key, try resolve(e.value, path: path + [e.key], chain: chain))) }
            return .map(out)
        case .list(let items):
            var out: [ConfigNode] = []
            for (i, item) in items.enumerated() { out.append(try resolve(item, path: path + [String(i)], chain: chain)) }
            return .list(out)
        case .scalar(let s, let tag) where s.contains("${"):
            let key = path.joined(separator: ".")
            let here = chain.last == key ? chain : chain + [key]
            let matches = Self.reference.matches(in: s, range: NSRange(s.startIndex..., in: s))
            // A whole-value interpolation keeps the target's type.
            if matches.count == 1, matches[0].range.length == (s as NSString).length {
                return try lookup((s as NSString).substring(with: matches[0].range(at: 1)), chain: here)
            }
            var out = s
            for m in matches.reversed() {
                let target = (s as NSString).substring(with: m.range(at: 1))
                guard case .scalar(let text, _) = try lookup(target, chain: here) else {
                    throw NestError("\(file): \(here.last!): ${\(target)} is not a scalar")
                }
                out = (out as NSString).replacingCharacters(in: m.range, with: text)
                if out.utf8.count > Self.maxScalarLength {
                    throw NestError("\(file): \(here.last!): interpolations make a value longer than \(Self.maxScalarLength) bytes; refusing it")
                }
            }
            return .scalar(out, tag: tag)
        default:
            return node
        }
    }

    private mutating func lookup(_ reference: String, chain: [String]) throws -> ConfigNode {
        let trimmed = reference.trimmingCharacters(in: .whitespaces)
        let key = root.at(trimmed) != nil ? trimmed : "model." + trimmed
        guard let target = root.at(key) else { throw NestError("\(file): \(chain.last!): interpolation ${\(trimmed)} names no key") }
        if let start = chain.firstIndex(of: key) {
            throw NestError("\(file): interpolation cycle: \((chain[start...] + [key]).joined(separator: " → "))")
        }
        return try resolve(target, path: key.split(separator: ".").map(String.init), chain: chain + [key])
    }
}
