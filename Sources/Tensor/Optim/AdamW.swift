import Foundation

/// `torch.optim.AdamW` (single-tensor path), operation for operation in Float32:
/// decoupled decay p ← p·(1 − lr·wd), m ← lerp(m, g, 1 − β1), v ← β2·v + (1 − β2)·g²,
/// p ← p − (lr / (1 − β1ᵗ))·m / (√v / √(1 − β2ᵗ) + ε).
public final class AdamW {
    public struct Settings: Equatable {
        public var betas: (Double, Double)
        public var eps: Double
        public var weightDecay: Double

        public init(betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8, weightDecay: Double = 1e-2) {
            self.betas = betas
            self.eps = eps
            self.weightDecay = weightDecay
        }

        public static func == (a: Self, b: Self) -> Bool {
            a.betas == b.betas && a.eps == b.eps && a.weightDecay == b.weightDecay
        }
    }

    public let settings: Settings
    /// Parameters in a fixed order with their state-dict names.
    public let parameters: [(name: String, tensor: Tensor)]
    /// First and second moments, one pair per parameter. Allocated here, before the first step,
    /// not lazily at the first update as PyTorch does: created after the first backward they took
    /// the activation buffers that step had just released to the pool, so the second step faulted
    /// in ~750 MB of fresh pages (large model, 4 × 10 s: 192k page faults, +1.1 s).
    public private(set) var moments: [String: (m: Tensor, v: Tensor)]
    /// Updates taken so far (PyTorch keeps this per parameter; here all share it).
    public var step = 0

    public init(parameters: [(name: String, tensor: Tensor)], settings: Settings) {
        self.parameters = parameters.filter { $0.tensor.requiresGrad }
        self.settings = settings
        moments = Dictionary(uniqueKeysWithValues: self.parameters.map { name, p in
            (name, (Tensor(zeros: p.shape, on: p.device), Tensor(zeros: p.shape, on: p.device)))
        })
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left alone.
    public func update(lr: Double) {
        step += 1
        let (beta1, beta2) = settings.betas
        let decay = Float(1 - lr * settings.weightDecay)
        let stepSize = Float(lr / (1 - pow(beta1, Double(step))))
        let bc2Sqrt = Float((1 - pow(beta2, Double(step))).squareRoot())
        let coefficients = AdamWStep(decay: decay, w1: Float(1 - beta1), b2: Float(beta2), w2: Float(1 - beta2), bc2Sqrt: bc2Sqrt,
                                     eps: Float(settings.eps), stepSize: stepSize)
        for (name, p) in parameters {
            guard let g = p.grad else { continue }
            let (m, v) = moments[name]!
            Device.common("AdamW", [p, g, m, v]).backend.adamwUpdate(parameter: p, gradient: g, m: m, v: v, coefficients)
        }
    }

    /// One optimizer step from the accumulated gradients, as Lightning takes it: the global
    /// gradient norm; when it is not finite, no update and the gradients dropped (nil);
    /// otherwise clipping to `clipNorm` (0: none), the update at `lr`, and the gradients zeroed.
    /// Returns the norm before clipping. The training step and the probe both step this way.
    public func step(lr: Double, clipNorm: Double = 0) -> Double? {
        let tensors = parameters.map(\.tensor)
        let norm = Gradients.globalNorm(tensors)
        defer { Gradients.zero(tensors) }
        guard norm.isFinite else { return nil }
        if clipNorm > 0 { Gradients.clip(tensors, maxNorm: clipNorm, norm: norm) }
        update(lr: lr)
        return norm
    }

    /// Restores moments saved in a checkpoint (name → (m, v)); parameters it has none for keep
    /// zero moments.
    public func restore(step: Int, moments saved: [String: (m: Tensor, v: Tensor)]) {
        self.step = step
        moments.merge(saved) { _, restored in restored }
    }
}

/// Gradient utilities over a parameter list.
public enum Gradients {
    /// √(Σ‖g‖²) over every parameter that has a gradient: each parameter's sum on its own, the
    /// sums added in parameter order, so the result does not depend on the thread count.
    public static func globalNorm(_ parameters: [Tensor]) -> Double {
        let grads = parameters.compactMap(\.grad)
        guard !grads.isEmpty else { return 0 }
        return Device.common("globalNorm", grads).backend.sumsOfSquares(grads).reduce(0, +).squareRoot()
    }

    /// PyTorch's clip_grad_norm_: scale by max/(norm + 1e-6) when that is below 1. Returns the
    /// norm before clipping; pass `norm` when it is already known.
    @discardableResult
    public static func clip(_ parameters: [Tensor], maxNorm: Double, norm known: Double? = nil) -> Double {
        let norm = known ?? globalNorm(parameters)
        let coefficient = maxNorm / (norm + 1e-6)
        if coefficient < 1 {
            for p in parameters { if let g = p.grad { g.backend.unary(.scale(Float(coefficient)), g, into: g) } }
        }
        return norm
    }

    public static func zero(_ parameters: [Tensor]) {
        for p in parameters { p.grad = nil }
    }
}
