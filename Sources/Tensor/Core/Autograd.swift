import Foundation
/// A tensor's place on the tape: its gradient so far and the op that produced it.
///
/// Recorded ops point at entries, never at tensors, so recording keeps alive only the values a
/// backward rule saved on purpose (PyTorch's "saved tensors"). An intermediate result that no
/// rule needs (a dropout output feeding an add, a Linear output feeding a dropout) goes back
/// to the pool as soon as the forward code drops it, instead of living until `backward()`.
public final class TapeEntry {
    public let shape: [Int]
    /// Where the tensor, and so its gradient, lives.
    public let device: Device
    /// Accumulated gradient, same shape as the tensor.
    public internal(set) var grad: Tensor?
    /// How the tensor was computed; nil for leaves and once its backward rule has run.
    var node: Node?
    /// Where the gradient lives when it has a fixed place (a slice of data-parallel training's
    /// bucket buffers, summed across processes in place): the first gradient is copied there
    /// instead of being adopted.
    public var gradientHome: Tensor? {
        didSet { precondition(gradientHome.map { $0.shape == shape } ?? true, "gradient home of shape \(gradientHome!.shape) for \(shape)") }
    }

    init(shape: [Int], device: Device) {
        self.shape = shape
        self.device = device
    }

    /// The gradient, for a rule that writes it in place (a GEMM with beta 0 or 1): the
    /// existing gradient, which the rule adds to (`adds`), else the home or a new tensor, which
    /// it overwrites. Saves the temporary and the pass of `accumulate`.
    public func writableGradient() -> (tensor: Tensor, adds: Bool) {
        if let g = grad { return (g, true) }
        let fresh = gradientHome ?? Tensor(uninitializedShape: shape, on: device)
        grad = fresh
        return (fresh, false)
    }

    /// Adds `g` (same shape) into the gradient, allocating it on first use.
    /// `owned` says that nothing else will read `g`'s storage, so it may be adopted without a
    /// copy. Every entry's gradient storage is its own (adopted only when owned, else copied),
    /// and `backward` takes it from the entry before running the rule, so a rule owns its `g`:
    /// it may hand `g` itself on to one input as owned (add, reshape), and copies for any other.
    public func accumulate(_ g: Tensor, owned: Bool = false) {
        let count = Shape.count(shape)
        precondition(g.count == count, "gradient of shape \(g.shape) for tensor \(shape)")
        if let existing = grad {
            // Same count, possibly another shape (a reshape's gradient): added as one run.
            let values = Tensor(shape: shape, storage: g.storage)
            Device.common("gradient accumulation", [existing, values]).backend.binary(.add, existing, values, into: existing)
        } else if let home = gradientHome {
            home.assign(g)
            grad = home
        } else if owned {
            grad = Tensor(shape: shape, storage: g.storage)
        } else {
            let copy = Tensor(uninitializedShape: shape, on: device)
            copy.assign(g)
            grad = copy
        }
    }
}

/// One recorded op: the entries of the inputs that need gradients, and how to turn the output's
/// gradient into theirs. The rule accumulates into entries it captured itself.
final class Node {
    let inputs: [TapeEntry]
    let backward: (_ gradOutput: Tensor) -> Void

    init(inputs: [TapeEntry], backward: @escaping (Tensor) -> Void) {
        self.inputs = inputs
        self.backward = backward
    }
}

/// Listens to `Tensor.backward(observer:)`.
public protocol BackwardObserver: AnyObject {
    /// `entry`, a leaf, will receive no more gradient in this backward.
    func gradientComplete(_ entry: TapeEntry)
    /// Called after each rule: a moment to drive communication.
    func betweenRules()
}

/// Whether ops record themselves for backward. Off inside `withoutGrad`.
///
/// Per thread, as in PyTorch: a no-grad scope on the data-loading thread (or any other) must
/// never stop the training thread from recording, whatever moves between threads later.
/// Threads start with recording on.
public enum GradMode {
    /// The thread's flag lives in a pthread key: a non-nil value means recording is off.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "no thread-specific key for the gradient mode")
        return key
    }()

    public static var isEnabled: Bool { pthread_getspecific(key) == nil }

    /// Runs `body` with recording off on this thread: inference, data preparation, optimizer updates.
    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}

public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R { try GradMode.withoutGrad(body) }

extension Tensor {
    /// Attaches the backward rule to a freshly computed result when any input needs a gradient.
    /// The rule must not capture the result itself (that would be a cycle through its entry);
    /// a rule that needs the output's values captures `detached()`.
    @discardableResult
    func recording(_ inputs: [Tensor], _ backward: @escaping (_ gradOutput: Tensor) -> Void) -> Tensor {
        guard GradMode.isEnabled else { return self }
        let entries = inputs.compactMap(\.tapeEntry)
        guard !entries.isEmpty else { return self }
        let entry = TapeEntry(shape: shape, device: device)
        entry.node = Node(inputs: entries, backward: backward)
        tapeEntry = entry
        return self
    }

    /// Reverse-mode differentiation from this scalar: every tensor that requires a gradient and
    /// contributed to it gets `grad` accumulated. The graph is released afterwards.
    public func backward() {
        precondition(count == 1, "backward() needs a scalar, got shape \(shape)")
        guard requiresGrad else { return }
        backward(seed: Tensor(repeating: 1, shape: shape, on: device))
    }

    /// Backward from a non-scalar output with an explicit upstream gradient (vector–Jacobian
    /// product). `observer` hears when each leaf's gradient is complete (its last consumer's
    /// rule has run), as soon as it is: data-parallel training starts summing those gradients
    /// across processes while the rest of backward runs.
    public func backward(seed: Tensor, observer: BackwardObserver? = nil) {
        precondition(seed.shape == shape, "seed shape \(seed.shape) for output \(shape)")
        guard let root = tapeEntry else { return }
        let order = Self.topologicalOrder(from: root)
        // Rules still to run per leaf (a leaf has no node); counted only when someone listens.
        var pendingRules: [ObjectIdentifier: Int] = [:]
        if observer != nil {
            for entry in order {
                for input in entry.node?.inputs ?? [] where input.node == nil { pendingRules[ObjectIdentifier(input), default: 0] += 1 }
            }
        }
        root.accumulate(seed)
        for entry in order.reversed() {
            guard let node = entry.node else { continue }
            let g = entry.grad
            // Intermediate results keep neither their history nor their gradient.
            entry.node = nil
            entry.grad = nil
            if let g { node.backward(g) }
            guard let observer else { continue }
            for input in node.inputs where input.node == nil {
                let id = ObjectIdentifier(input)
                guard let n = pendingRules[id] else { continue }
                pendingRules[id] = n - 1
                if n == 1 { observer.gradientComplete(input) }
            }
            observer.betweenRules()
        }
    }

    /// Entries reachable from `root`, each after all of its inputs (iterative: graphs are deep).
    private static func topologicalOrder(from root: TapeEntry) -> [TapeEntry] {
        var order: [TapeEntry] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(TapeEntry, Bool)] = [(root, false)]
        while let (e, expanded) = stack.popLast() {
            if expanded { order.append(e); continue }
            guard visited.insert(ObjectIdentifier(e)).inserted else { continue }
            stack.append((e, true))
            for input in e.node?.inputs ?? [] where !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }
}
