import Tensor

/// PyTorch's `nn.Linear`: weight [out, in], y = x·Wᵀ + b over the last dimension.
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(inputFeatures: Int, outputFeatures: Int, bias hasBias: Bool = true, rng: RandomGenerator) {
        (weight, bias) = Initialization.defaultWeightAndBias(shape: [outputFeatures, inputFeatures], fanIn: inputFeatures, bias: hasBias, rng: rng)
        super.init()
        weightAndBias(weight, bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight: weight, bias: bias) }
}

/// `nn.Conv1d` with kernel 1 applied to channels-last input [B, T, Cin] → [B, T, Cout].
/// The weight keeps PyTorch's [Cout, Cin, 1] shape (for state-dict compatibility) and is used
/// through a [Cout, Cin] view.
public final class PointwiseConv1d: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(inputChannels: Int, outputChannels: Int, bias hasBias: Bool = true, rng: RandomGenerator) {
        (weight, bias) = Initialization.defaultWeightAndBias(shape: [outputChannels, inputChannels, 1], fanIn: inputChannels, bias: hasBias, rng: rng)
        super.init()
        weightAndBias(weight, bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x, weight: weight.reshaped([weight.shape[0], weight.shape[1]]), bias: bias)
    }
}
