import Tensor

/// A building block with named parameters, buffers and children, listed in PyTorch's
/// state-dict order: own parameters, then own buffers, then each child in registration order.
///
/// Names are given explicitly and equal NeMo's attribute names, so `stateDict()` keys are
/// NeMo's keys (`encoder.layers.3.conv.batch_norm.running_var`).
open class Module {
    private var ownParameters: [(String, StateValue)] = []
    private var ownBuffers: [(String, StateValue)] = []
    public private(set) var children: [(String, Module)] = []
    public private(set) var isTraining = true

    public init() {}

    /// Registers a trainable Float32 parameter.
    @discardableResult
    public func parameter(_ name: String, _ tensor: Tensor) -> Tensor {
        tensor.requiresGrad = true
        ownParameters.append((name, .float32(tensor)))
        return tensor
    }

    /// Registers `weight` and, when present, `bias` under PyTorch's names.
    public func weightAndBias(_ weight: Tensor, _ bias: Tensor?) {
        parameter("weight", weight)
        if let bias { parameter("bias", bias) }
    }

    /// Registers a parameter that never receives gradients (NeMo's `requires_grad=False`).
    public func frozenParameter(_ name: String, _ value: StateValue) {
        if case .float32(let t) = value { t.requiresGrad = false }
        ownParameters.append((name, value))
    }

    public func buffer(_ name: String, _ value: StateValue) {
        ownBuffers.append((name, value))
    }

    @discardableResult
    public func child<M: Module>(_ name: String, _ module: M) -> M {
        children.append((name, module))
        return module
    }

    /// Registers the modules this class's stored properties hold as children, in declaration
    /// order, each under its property's name in snake case: NeMo's attribute names are Python's
    /// spelling of ours (`normFeedForward1` is `norm_feed_forward1`, `wQKV` is `w_qkv`), so a
    /// child is named once, where it is declared. An optional property is a child when set; an
    /// array is a child list (`layers.0`, `layers.1`, …); properties in `except` (a module
    /// registered elsewhere in the tree) are left out. Call it at the end of `init`.
    public func registerChildren(except: Set<String> = []) {
        for property in Mirror(reflecting: self).children {
            guard let name = property.label, !except.contains(name) else { continue }
            if let module = property.value as? Module {
                child(Self.snakeCase(name), module)
            } else if let modules = property.value as? [Module] {
                let list = child(Self.snakeCase(name), Module())
                for (i, m) in modules.enumerated() { list.child(String(i), m) }
            }
        }
    }

    /// `normFeedForward1` → `norm_feed_forward1`, `linearQ` → `linear_q`, `wQKV` → `w_qkv`.
    static func snakeCase(_ name: String) -> String {
        var out = "", previous: Character?
        for c in name {
            if c.isUppercase, let p = previous, p.isLowercase || p.isNumber { out.append("_") }
            out.append(Character(c.lowercased()))
            previous = c
        }
        return out
    }

    /// Puts `module` in the place of child `name` (as NeMo assigns `encoder.pre_encode = wrapper`):
    /// the same position in the state-dict order, under the new subtree's keys.
    public func replaceChild(_ name: String, with module: Module) {
        guard let i = children.firstIndex(where: { $0.0 == name }) else { preconditionFailure("no child \(name) to replace") }
        children[i] = (name, module)
    }

    /// The child registered as `name`.
    public func child(named name: String) -> Module? { children.first { $0.0 == name }?.1 }

    /// Switches training behaviour (dropout, BatchNorm statistics, dither) for the whole subtree.
    public func train(_ on: Bool = true) {
        isTraining = on
        for (_, c) in children { c.train(on) }
    }

    public func eval() { train(false) }

    /// Every module of type `M` in the subtree, depth first in registration order (the order
    /// a forward meets them).
    public func modules<M: Module>(of type: M.Type) -> [M] {
        ((self as? M).map { [$0] } ?? []) + children.flatMap { $0.1.modules(of: type) }
    }

    public func stateDict(prefix: String = "") -> [StateEntry] {
        var out: [StateEntry] = []
        for (n, v) in ownParameters { out.append(StateEntry(key: prefix + n, value: v, isParameter: true)) }
        for (n, v) in ownBuffers { out.append(StateEntry(key: prefix + n, value: v, isParameter: false)) }
        for (n, c) in children { out += c.stateDict(prefix: prefix + n + ".") }
        return out
    }

    /// Trainable parameters with their keys, in state-dict order; a tensor the tree holds under
    /// several keys (a module registered in two places) once, under its first key, as
    /// PyTorch's `named_parameters()` lists it.
    public func trainableParameters() -> [(name: String, tensor: Tensor)] {
        uniqueStateDict().compactMap { e in
            if e.isTrainable, case .float32(let t) = e.value { return (e.key, t) }
            return nil
        }
    }

    /// `stateDict()` with each storage once, under its first key (what PyTorch's
    /// `parameters()` and `buffers()` count).
    public func uniqueStateDict() -> [StateEntry] {
        var seen = Set<ObjectIdentifier>()
        return stateDict().filter { seen.insert($0.value.identity).inserted }
    }
}
