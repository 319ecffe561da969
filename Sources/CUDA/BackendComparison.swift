import Foundation
import Tensor

/// Every op of the engine's table (`OpTable`) run on a device and on the CPU from the same
/// random inputs: the forward result and every input's gradient compared (‖device − cpu‖∞ /
/// ‖cpu‖∞), plus an AdamW update and the gradient norm. `gpu-check` runs it on a GPU at `.large` sizes; the
/// tests run it on the host emulation of the CUDA kernels at `.small` sizes.
public struct BackendComparison {
    public struct Check: Encodable {
        public let name: String
        public let shape: [Int]
        public let relativeError: Double
        public let tolerance: Double
        public var passed: Bool { relativeError <= tolerance }

        enum CodingKeys: String, CodingKey { case name, shape, relativeError = "relative_error", tolerance, passed }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(shape, forKey: .shape)
            try c.encode(relativeError, forKey: .relativeError)
            try c.encode(tolerance, forKey: .tolerance)
            try c.encode(passed, forKey: .passed)
        }
    }

    /// The op table's sizes: `.small` for the host emulation (every GPU thread a host thread),
    /// `.large` for a GPU (past one grid's worth of elements, odd sizes).
    public typealias Size = OpTable.Size

    /// Norm-relative tolerances: elementwise results, and results that sum over a row or column.
    public static let elementwiseTolerance = 1e-5, reductionTolerance = 1e-4

    public let device: Device
    public let size: Size

    public init(device: Device, size: Size) {
        self.device = device
        self.size = size
    }

    public static func relativeError(_ a: [Float], _ reference: [Float]) -> Double {
        guard a.count == reference.count else { return .infinity }
        var worst = 0.0, scale = 1e-30
        for (x, y) in zip(a, reference) {
            worst = max(worst, x.isFinite ? abs(Double(x) - Double(y)) : .infinity)
            scale = max(scale, abs(Double(y)))
        }
        return worst / scale
    }

    func random(_ shape: [Int], _ rng: RandomGenerator, _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        Tensor((0..<shape.reduce(1, *)).map { _ in lo + (hi - lo) * rng.uniformFloat() }, shape: shape, on: .cpu)
    }

    static func tolerance(_ agreement: OpCase.Agreement) -> Double {
        switch agreement {
        case .elementwise: return elementwiseTolerance
        case .reduction: return reductionTolerance
        case .exact: return 0
        }
    }

    /// `op` on CPU copies and on device copies of `inputs`; the output and each input's gradient
    /// (from the same random output gradient) compared.
    func compare(_ name: String, _ inputs: [Tensor], _ rng: RandomGenerator, tolerance: Double, _ op: ([Tensor]) -> Tensor) -> [Check] {
        func run(on d: Device, seed: Tensor?) -> (out: Tensor, grads: [[Float]], seed: Tensor) {
            let xs = inputs.map { Tensor($0.array, shape: $0.shape, on: d) }
            for x in xs { x.requiresGrad = true }
            let out = op(xs)
            let g = seed ?? random(out.shape, rng)
            // Ops without a gradient (integer results, the frame replacement) leave none.
            if out.requiresGrad { out.backward(seed: g.to(d)) }
            return (out, xs.map { $0.grad?.array ?? [] }, g)
        }
        let reference = run(on: .cpu, seed: nil), other = run(on: device, seed: reference.seed)
        var checks = [Check(name: name, shape: reference.out.shape, relativeError: Self.relativeError(other.out.array, reference.out.array), tolerance: tolerance)]
        for (i, (a, b)) in zip(other.grads, reference.grads).enumerated() where !b.isEmpty {
            checks.append(Check(name: "\(name) ∂input\(i)", shape: inputs[i].shape, relativeError: Self.relativeError(a, b), tolerance: Self.reductionTolerance))
        }
        return checks
    }

    public func all(seed: UInt64) -> [Check] {
        // The output gradients every op's backward starts from.
        let outputGradients = RandomGenerator(seed: seed ^ 0xC0DE)
        var out = OpTable.cases(size: size, seed: seed).flatMap { op in
            compare(op.name, op.inputs, outputGradients, tolerance: Self.tolerance(op.agreement), op.call)
        }
        let rng = RandomGenerator(seed: seed)
        let count = size == .large ? rng.int(in: 1...3_000_000) | 1 : rng.int(in: 1...700) | 1
        let (rows, width) = size == .large ? (rng.int(in: 1...3000), rng.int(in: 1...700)) : (rng.int(in: 1...9), rng.int(in: 1...40))
        let r = Self.reductionTolerance

        // The optimizer: three AdamW steps from the same gradients (the change of the weights),
        // and the gradient norm the step clips with.
        let weights = random([count], rng), gradients = (0..<3).map { _ in random([count], rng) }
        func adamw(on d: Device) -> [Float] {
            let w = Tensor(weights.array, shape: weights.shape, on: d)
            w.requiresGrad = true
            let optimizer = AdamW(parameters: [("w", w)], settings: .init(betas: (0.9, 0.98), eps: 1e-8, weightDecay: 1e-3))
            for g in gradients {
                w.grad = g.to(d)
                optimizer.update(lr: 1e-3)
            }
            return zip(w.array, weights.array).map { $0 - $1 }
        }
        out.append(Check(name: "adamw (3 steps, the change)", shape: [count], relativeError: Self.relativeError(adamw(on: device), adamw(on: .cpu)), tolerance: r))
        let squared = [weights, random([rows, width], rng)]
        let norms = device.backend.sumsOfSquares(squared.map { $0.to(device) }).map(Float.init)
        out.append(Check(name: "sumsOfSquares", shape: [count], relativeError: Self.relativeError(norms, Device.cpu.backend.sumsOfSquares(squared).map(Float.init)),
                         tolerance: r))
        return out
    }
}
