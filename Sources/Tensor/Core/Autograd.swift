/// One recorded op: the tensors it read and how to turn the output's gradient into theirs.
///
/// The backward closure receives the output tensor as an argument instead of capturing it, so
/// that output → node → closure never forms a reference cycle.
final class Node {
    let inputs: [Tensor]
    let backward: (_ output: Tensor, _ gradOutput: Tensor) -> Void

    init(inputs: [Tensor], backward: @escaping (Tensor, Tensor) -> Void) {
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether ops record themselves for backward. Off inside `withoutGrad`.
public enum GradMode {
    nonisolated(unsafe) public private(set) static var isEnabled = true

    /// Runs `body` with recording off: inference, data preparation, optimizer updates.
    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        let previous = isEnabled
        isEnabled = false
        defer { isEnabled = previous }
        return try body()
    }
}

public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R { try GradMode.withoutGrad(body) }

extension Tensor {
    /// Attaches the backward rule to a freshly computed result when any input needs a gradient.
    @discardableResult
    func recording(_ inputs: [Tensor], _ backward: @escaping (Tensor, Tensor) -> Void) -> Tensor {
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            requiresGrad = true
            node = Node(inputs: inputs, backward: backward)
        }
        return self
    }

    /// Adds `g` (same shape) into this tensor's gradient, allocating it on first use.
    /// `owned` says that the caller made `g` for this call alone, so it may be adopted without
    /// a copy; a gradient passed through unchanged (by add, reshape, …) is never owned.
    public func accumulateGrad(_ g: Tensor, owned: Bool = false) {
        precondition(g.count == count, "gradient of shape \(g.shape) for tensor \(shape)")
        if let existing = grad {
            Vector.add(existing.data, g.data, into: existing.data, count: count)
        } else if owned {
            grad = Tensor(shape: shape, storage: g.storage)
        } else {
            let copy = Tensor(uninitializedShape: shape)
            copy.data.update(from: g.data, count: count)
            grad = copy
        }
    }

    /// Reverse-mode differentiation from this scalar: every tensor that requires a gradient and
    /// contributed to it gets `grad` accumulated. The graph is released afterwards.
    public func backward() {
        precondition(count == 1, "backward() needs a scalar, got shape \(shape)")
        guard requiresGrad else { return }
        backward(seed: Tensor(repeating: 1, shape: shape))
    }

    /// Backward from a non-scalar output with an explicit upstream gradient (vector–Jacobian product).
    public func backward(seed: Tensor) {
        precondition(seed.shape == shape, "seed shape \(seed.shape) for output \(shape)")
        let order = topologicalOrder()
        accumulateGrad(seed)
        for tensor in order.reversed() {
            guard let node = tensor.node, let g = tensor.grad else { continue }
            node.backward(tensor, g)
            // Intermediate results keep neither their history nor their gradient.
            tensor.node = nil
            tensor.grad = nil
        }
    }

    /// Nodes reachable from self, each after all of its inputs (iterative: graphs are deep).
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            guard visited.insert(ObjectIdentifier(t)).inserted else { continue }
            stack.append((t, true))
            for input in t.node?.inputs ?? [] where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }
}

