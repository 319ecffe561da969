import Tensor

/// `nn.Conv2d` on NCHW input, weight [Cout, Cin/groups, kh, kw].
public final class Conv2d: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let geometry: Conv2dGeometry

    public init(inputChannels: Int, outputChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), groups: Int = 1, bias hasBias: Bool = true, rng: RandomGenerator) {
        (weight, bias) = Initialization.defaultWeightAndBias(shape: [outputChannels, inputChannels / groups, kernelSize.0, kernelSize.1],
                                                             fanIn: inputChannels / groups * kernelSize.0 * kernelSize.1, bias: hasBias, rng: rng)
        geometry = Conv2dGeometry(stride: stride, padding: padding, groups: groups)
        super.init()
        weightAndBias(weight, bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.conv2d(weight: weight, bias: bias, geometry) }
}

/// Depthwise `nn.Conv1d` (groups = channels) over time on channels-last input [B, T, C], with
/// `left`/`right` zero padding (NeMo's `CausalConv1D` with a symmetric context [4, 4] for k = 9).
public final class DepthwiseConv1d: Module {
    public let weight: Tensor
    public let bias: Tensor?
    public let left: Int, right: Int

    public init(channels: Int, kernelSize: Int, left: Int, right: Int, bias hasBias: Bool = true, rng: RandomGenerator) {
        (weight, bias) = Initialization.defaultWeightAndBias(shape: [channels, 1, kernelSize], fanIn: kernelSize, bias: hasBias, rng: rng)
        self.left = left
        self.right = right
        super.init()
        weightAndBias(weight, bias)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.depthwiseConv1d(weight: weight, bias: bias, left: left, right: right)
    }
}
