import Foundation
import Tensor

/// PyTorch's default and NeMo's explicit initialisations.
public enum Initialization {
    /// Linear/Conv default: U(±1/√fan_in) for weight and bias (kaiming_uniform with a = √5).
    public static func defaultUniform(_ t: Tensor, fanIn: Int, rng: RandomGenerator) {
        let bound = 1 / Float(fanIn).squareRoot()
        rng.fillUniform(t, -bound, bound)
    }

    /// A weight of `shape` and an optional bias of `shape[0]` values, both U(±1/√fan_in): how
    /// every PyTorch Linear and Conv layer starts.
    public static func defaultWeightAndBias(shape: [Int], fanIn: Int, bias: Bool, rng: RandomGenerator) -> (Tensor, Tensor?) {
        let weight = Tensor(zeros: shape)
        defaultUniform(weight, fanIn: fanIn, rng: rng)
        let b = bias ? Tensor(zeros: [shape[0]]) : nil
        if let b { defaultUniform(b, fanIn: fanIn, rng: rng) }
        return (weight, b)
    }

    /// xavier_uniform: U(±√(6/(fan_in + fan_out))).
    public static func xavierUniform(_ t: Tensor, fanIn: Int, fanOut: Int, rng: RandomGenerator) {
        let bound = (6 / Float(fanIn + fanOut)).squareRoot()
        rng.fillUniform(t, -bound, bound)
    }

    /// xavier_normal: N(0, 2/(fan_in + fan_out)).
    public static func xavierNormal(_ t: Tensor, fanIn: Int, fanOut: Int, rng: RandomGenerator) {
        rng.fillNormal(t, std: (2 / Float(fanIn + fanOut)).squareRoot())
    }
}
