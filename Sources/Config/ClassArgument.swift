import Basics

/// A constructor argument's default in a NeMo class.
public enum ClassDefault: Equatable, Sendable, ExpressibleByStringLiteral {
    /// The default as YAML text.
    case value(String)
    /// The default is None.
    case null
    /// The constructor has no default: a config must give it.
    case required

    public init(stringLiteral text: String) { self = .value(text) }
}

/// The YAML a key takes.
public enum ArgumentType: String, Sendable {
    case int, number, bool, string
    /// A list (its shape is checked where it is read).
    case list
    /// More than one form (a list or a word, say), checked where it is read.
    case any
}

/// The values nest-train accepts for a key, checked before any reader looks at it.
public enum Accepted: Equatable, Sendable {
    case any
    /// A number between the bounds (each closed unless said open).
    case range(Double, Double, lowerOpen: Bool = false, upperOpen: Bool = false)
    /// One of these values (compared as the key's type: 2 and 2.0 are the same number). Empty:
    /// only null.
    case oneOf([String])

    var description: String {
        switch self {
        case .any: return ""
        case let .range(lo, hi, lowerOpen, upperOpen):
            if !lowerOpen && !upperOpen { return "\(Self.format(lo))…\(Self.format(hi))" }
            return "\(lowerOpen ? "(" : "[")\(Self.format(lo)), \(Self.format(hi))\(upperOpen ? ")" : "]")"
        case .oneOf(let values): return values.isEmpty ? "null" : values.joined(separator: ", ")
        }
    }

    static func format(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
}

/// One constructor argument of a NeMo class: its default (NeMo 3.0.0's), its type, what
/// nest-train accepts, and where the value lands in nest-train (or why it needs none).
public struct ClassArgument: Sendable {
    public let name: String
    public let value: ClassDefault
    public let type: ArgumentType
    public let accepts: Accepted
    /// Whether null is a value (always where the default is null).
    public let nullable: Bool
    public let lands: String
    /// Why values outside `accepts` are refused, where the bounds alone do not say.
    public let why: String?

    public init(_ name: String, _ value: ClassDefault, _ type: ArgumentType, _ accepts: Accepted = .any, nullable: Bool = false,
                why: String? = nil, lands: String) {
        (self.name, self.value, self.type, self.accepts, self.lands, self.why) = (name, value, type, accepts, lands, why)
        self.nullable = nullable || value == .null || type == .any
    }

    /// Refuses a value at `path` of `doc` of the wrong type or outside what nest-train accepts,
    /// naming the file, the key and the accepted values.
    func check(_ path: String, in doc: ConfigDocument, className: String) throws {
        guard let node = doc.node(path) else { return }
        if node == .null {
            guard nullable else {
                throw NestError("\(doc.file): \(path) is null; NeMo's \(className) takes \(article) \(type.rawValue) (its default is \(defaultText))")
            }
            return
        }
        // The type first (each accessor names the key and what it must be), then the value as written.
        switch type {
        case .int: _ = try doc.int(path)
        case .number: _ = try doc.double(path)
        case .bool: _ = try doc.bool(path, default: false)
        case .string: _ = try doc.string(path)
        case .list:
            guard case .list = node else { throw NestError("\(doc.file): \(path) must be a list") }
            return
        case .any: return
        }
        let shown = try doc.string(path)!
        switch accepts {
        case .any: return
        case let .range(lo, hi, lowerOpen, upperOpen):
            let x = try doc.double(path)!
            if x < lo || x > hi || (lowerOpen && x == lo) || (upperOpen && x == hi) {
                throw NestError("\(doc.file): \(path) (\(shown)) must be in \(accepts.description)\(because)")
            }
        case .oneOf(let values):
            let same = values.contains { text in
                switch type {
                case .int, .number: return Double(text) == Double(shown)
                case .bool: return (try? doc.bool(path, default: false)).map(String.init) == text
                default: return text == shown
                }
            }
            if !same { throw NestError("\(doc.file): \(path): '\(shown)' is not supported (supported: \(accepts.description))\(because)") }
        }
    }

    private var because: String { why.map { " (\($0))" } ?? "" }

    private var article: String { type == .int ? "an" : "a" }

    var defaultText: String {
        switch value {
        case .required: return "required"
        case .null: return "null"
        case .value(let text): return text
        }
    }
}
