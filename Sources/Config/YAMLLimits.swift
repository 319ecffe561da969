import Basics

/// Bounds on a YAML document, checked before and while it becomes a `ConfigNode`, so that a
/// hostile config (or a downloaded `.nemo`'s `model_config.yaml`) is refused by name instead of
/// crashing the parser or expanding without end.
///
/// - Depth: the YAML parser recurses once per nesting level and overflows the stack near 5,000
///   levels, so depth is measured on the text before parsing. NeMo's recipes nest 6 levels.
/// - Aliases: the parser shares an aliased node, but the tree copies each use, so a few nested
///   aliases ("billion laughs") expand exponentially. Both the alias count and the expanded
///   node count are capped; NeMo's recipes use no aliases and have under 1,000 nodes.
public enum YAMLLimits {
    public static let maxDepth = 256
    public static let maxAliases = 1_000
    public static let maxNodes = 100_000

    /// Scans the text for nesting (indentation levels, leading `- ` indicators, open flow
    /// brackets) and alias uses (`*name` where a value starts), skipping quoted scalars,
    /// comments and block scalars. The depth found is an upper bound of the parser's.
    public static func preflight(_ text: String, file: String) throws {
        var indents: [Int] = []          // open block levels, by indentation
        var flowDepth = 0
        var aliases = 0
        var blockScalarIndent: Int?      // inside `|` / `>` text: lines indented past this
        for (number, line) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let bytes = Array(line.last == UInt8(ascii: "\r") ? line.dropLast() : line[...])
            let indent = bytes.prefix { $0 == UInt8(ascii: " ") }.count
            let blank = indent == bytes.count || bytes[indent] == UInt8(ascii: "#")
            if let scalarIndent = blockScalarIndent {
                if blank || indent > scalarIndent { continue }
                blockScalarIndent = nil
            }
            if blank { continue }
            if flowDepth == 0 {
                while let top = indents.last, top >= indent { indents.removeLast() }
                indents.append(indent)
            }
            var i = indent, dashes = 0
            // Compact nested sequences ("- - - x") open a level per dash.
            while i + 1 < bytes.count, bytes[i] == UInt8(ascii: "-"), bytes[i + 1] == UInt8(ascii: " ") {
                dashes += 1
                i += 2
                while i < bytes.count, bytes[i] == UInt8(ascii: " ") { i += 1 }
            }
            var quote: UInt8?
            var last: UInt8 = UInt8(ascii: " ")
            var deepest = flowDepth
            while i < bytes.count {
                let c = bytes[i]
                if let q = quote {
                    if c == UInt8(ascii: "\\") && q == UInt8(ascii: "\"") { i += 2; continue }
                    if c == q { quote = nil }
                    last = c; i += 1; continue
                }
                let atTokenStart = [UInt8(ascii: " "), UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ","), UInt8(ascii: ":")].contains(last)
                switch c {
                case UInt8(ascii: "#") where last == UInt8(ascii: " "): i = bytes.count; continue
                case UInt8(ascii: "\""), UInt8(ascii: "'"): if atTokenStart { quote = c }
                case UInt8(ascii: "["), UInt8(ascii: "{"): if atTokenStart { flowDepth += 1; deepest = max(deepest, flowDepth) }
                case UInt8(ascii: "]"), UInt8(ascii: "}"): if flowDepth > 0 { flowDepth -= 1 }
                case UInt8(ascii: "*"): if atTokenStart { aliases += 1 }
                case UInt8(ascii: "|"), UInt8(ascii: ">"):
                    // A block scalar's header ends its line: `|`, `>-`, `|2`, then a comment at most.
                    let rest = bytes[(i + 1)...].prefix { $0 != UInt8(ascii: "#") }
                    if atTokenStart && flowDepth == 0,
                       rest.allSatisfy({ [UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: " ")].contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
                        blockScalarIndent = indent
                    }
                default: break
                }
                last = c
                i += 1
            }
            let depth = indents.count + dashes + deepest
            if depth > maxDepth {
                throw NestError("\(file): line \(number + 1): nesting deeper than \(maxDepth) levels; refusing the document")
            }
            if aliases > maxAliases {
                throw NestError("\(file): line \(number + 1): more than \(maxAliases) YAML aliases (*name); refusing the document")
            }
        }
    }

    /// Counts nodes as the tree is built; past `maxNodes` the error names the key path reached.
    struct NodeBudget {
        let file: String
        var used = 0

        mutating func spend(at path: [String]) throws {
            used += 1
            if used > maxNodes {
                let key = path.isEmpty ? "the top level" : path.joined(separator: ".")
                throw NestError("\(file): \(key): the document expands to more than \(maxNodes) nodes (nested YAML aliases?); refusing it")
            }
            if path.count > maxDepth {
                throw NestError("\(file): \(path.joined(separator: ".")): nesting deeper than \(maxDepth) levels (through aliases); refusing the document")
            }
        }
    }
}
