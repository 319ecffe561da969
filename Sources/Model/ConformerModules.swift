import NN
import Tensor

/// NeMo's `ConformerFeedForward`: Linear(d→4d) → Swish → Dropout → Linear(4d→d).
public final class ConformerFeedForward: Module {
    public let linear1: Linear
    let dropout: Dropout
    public let linear2: Linear

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        let d = config.dModel, hidden = config.dModel * config.ffExpansionFactor
        linear1 = Linear(inputFeatures: d, outputFeatures: hidden, bias: config.useBias, rng: rng)
        dropout = Dropout(config.dropout, keys: keys)
        linear2 = Linear(inputFeatures: hidden, outputFeatures: d, bias: config.useBias, rng: rng)
        super.init()
        registerChildren()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear2(dropout(linear1(x).silu())) }
}

/// NeMo's `ConformerConvolution` on channels-last [B, T, D]: pointwise d→2d, GLU (first half
/// value, second half gate), zero padded steps, depthwise conv k, BatchNorm (or, with
/// `conv_norm_type: layer_norm`, a LayerNorm over each frame's channels, padded frames too;
/// with `group_normN`, GroupNorm over each utterance's frames, padded ones too, and with
/// `instance_norm` the same per channel without parameters; NeMo keeps the name `batch_norm`
/// for each), Swish, pointwise.
public final class ConformerConvolution: Module {
    public let pointwiseConv1: PointwiseConv1d
    public let depthwiseConv: DepthwiseConv1d
    public let norm: Norm
    /// The norm's module under NeMo's name for it, whichever norm it is.
    let batchNorm: Module
    public let pointwiseConv2: PointwiseConv1d

    public enum Norm {
        case batch(BatchNorm1d)
        case layer(LayerNorm)
        case group(GroupNorm)

        var module: Module {
            switch self {
            case .batch(let m): m
            case .layer(let m): m
            case .group(let m): m
            }
        }

        func callAsFunction(_ x: Tensor) -> Tensor {
            switch self {
            case .batch(let m): m(x)
            case .layer(let m): m(x)
            case .group(let m): m(x)
            }
        }
    }

    public init(config: EncoderConfig, rng: RandomGenerator) {
        let d = config.dModel
        pointwiseConv1 = PointwiseConv1d(inputChannels: d, outputChannels: 2 * d, bias: config.useBias, rng: rng)
        let context = config.convContext
        depthwiseConv = DepthwiseConv1d(channels: d, kernelSize: config.convKernelSize, left: context.left,
                                        right: context.right, bias: config.useBias, rng: rng)
        switch config.convNormType {
        case .batchNorm: norm = .batch(BatchNorm1d(d))
        case .layerNorm: norm = .layer(LayerNorm(d))
        case .groupNorm(let groups): norm = .group(GroupNorm(groups: groups, channels: d))
        case .instanceNorm: norm = .group(GroupNorm(groups: d, channels: d, affine: false))
        }
        batchNorm = norm.module
        pointwiseConv2 = PointwiseConv1d(inputChannels: d, outputChannels: d, bias: config.useBias, rng: rng)
        super.init()
        registerChildren()
    }

    /// `validSteps` is [B, T, 1] with 1 for t < length.
    public func callAsFunction(_ x: Tensor, validSteps: Tensor) -> Tensor {
        let gated = pointwiseConv1(x).glu() * validSteps
        return pointwiseConv2(norm(depthwiseConv(gated)).silu())
    }
}

/// NeMo's `ConformerLayer` (macaron): ½·FF, self-attention, convolution, ½·FF, final LayerNorm.
public final class ConformerLayer: Module, EncoderLayer {
    public let normFeedForward1: LayerNorm, feedForward1: ConformerFeedForward
    public let normConv: LayerNorm, conv: ConformerConvolution
    public let normSelfAtt: LayerNorm, selfAttn: MultiHeadSelfAttention
    public let normFeedForward2: LayerNorm, feedForward2: ConformerFeedForward
    let dropout: Dropout
    public let normOut: LayerNorm

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        let d = config.dModel
        normFeedForward1 = LayerNorm(d)
        feedForward1 = ConformerFeedForward(config: config, rng: rng, keys: keys)
        normConv = LayerNorm(d)
        conv = ConformerConvolution(config: config, rng: rng)
        normSelfAtt = LayerNorm(d)
        selfAttn = MultiHeadSelfAttention(config: config, rng: rng, keys: keys)
        normFeedForward2 = LayerNorm(d)
        feedForward2 = ConformerFeedForward(config: config, rng: rng, keys: keys)
        dropout = Dropout(config.dropout, keys: keys)
        normOut = LayerNorm(d)
        super.init()
        // Declared in NeMo's attribute order, which is its state-dict order.
        registerChildren()
    }

    public func callAsFunction(_ x: Tensor, positions: Tensor?, attentionMask: AttentionMask, validSteps: Tensor) -> Tensor {
        var residual = x + dropout(feedForward1(normFeedForward1(x))) * 0.5
        residual = residual + dropout(selfAttn(normSelfAtt(residual), positions: positions, mask: attentionMask))
        residual = residual + dropout(conv(normConv(residual), validSteps: validSteps))
        residual = residual + dropout(feedForward2(normFeedForward2(residual))) * 0.5
        return normOut(residual)
    }
}
