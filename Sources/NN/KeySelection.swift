/// NeMo's substring rule for choosing state-dict keys (its `init_from_nemo_model` include and
/// exclude lists, and export's include list): a key is chosen when some `include` string occurs
/// in it (an empty string matches every key) and no `exclude` string does.
public struct KeySelection: Equatable, Sendable {
    public var include: [String]
    public var exclude: [String]

    public init(include: [String] = [""], exclude: [String] = []) {
        self.include = include
        self.exclude = exclude
    }

    public func selects(_ key: String) -> Bool {
        include.contains { $0.isEmpty || key.contains($0) } && !exclude.contains { !$0.isEmpty && key.contains($0) }
    }
}
