import Tensor

/// PyTorch's `nn.Linear`: weight [out, in], y = x·Wᵀ + b over the last dimension.
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(inputFeatures: Int, outputFeatures: Int, bias hasBias: Bool = true, rng: RandomGenerator) {
        weight = Tensor(zeros: [outputFeatures, inputFeatures])
        bias = hasBias ? Tensor(zeros: [outputFeatures]) : nil
        super.init()
        Initialization.defaultUniform(weight, fanIn: inputFeatures, rng: rng)
        if let bias { Initialization.defaultUniform(bias, fanIn: inputFeatures, rng: rng) }
        parameter("weight", weight)
        if let bias { parameter("bias", bias) }
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
        weight = Tensor(zeros: [outputChannels, inputChannels, 1])
        bias = hasBias ? Tensor(zeros: [outputChannels]) : nil
        super.init()
        Initialization.defaultUniform(weight, fanIn: inputChannels, rng: rng)
        if let bias { Initialization.defaultUniform(bias, fanIn: inputChannels, rng: rng) }
        parameter("weight", weight)
        if let bias { parameter("bias", bias) }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x, weight: weight.reshaped([weight.shape[0], weight.shape[1]]), bias: bias)
    }
}
