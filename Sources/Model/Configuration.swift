import Tensor

/// The model sections of NeMo's `nest_fast-conformer.yaml`, with its values as defaults (the
/// recipe's values, for models built in code; a config that leaves a key out gets NeMo's class
/// default, from Config's `ClassDefaults`).
/// Field names are the YAML keys in Swift case (`d_model` ↔ `dModel`).
public struct EncoderConfig: Equatable {
    public var featIn = 80
    public var nLayers = 17
    public var dModel = 512
    public var useBias = true
    /// NeMo's `subsampling`: `dw_striding` (the recipes') or `striding` (the class default).
    public var subsampling = Subsampling.dwStriding
    public var subsamplingFactor = 8
    public var subsamplingConvChannels = 256
    public var ffExpansionFactor = 4
    public var nHeads = 8
    public var xscaling = true
    public var posEmbMaxLen = 5000
    public var convKernelSize = 9
    /// Left and right context of the depthwise convolution; nil means symmetric (k−1)/2.
    public var convContextSize: [Int]? = nil
    public var dropout: Float = 0.1
    public var dropoutPreEncoder: Float = 0.1
    public var dropoutEmb: Float = 0.0
    public var dropoutAtt: Float = 0.1
    /// Which NeMo encoder class: `ConformerEncoder` (FastConformer) or NeMo 3.0's
    /// `TransformerEncoder`; the fields below the Transformer mark apply to that one only.
    public var architecture = Architecture.conformer
    /// Transformer: fused q/k/v projection bias (`qkv_bias`), per-head LayerNorm on q and k
    /// (`qk_norm`), feed-forward width `Int(ffExpansion · d_model)` (`ff_expansion`), a LayerNorm
    /// before the first block (`pre_block_norm`), dropout inside the blocks (`drop_rate`).
    public var qkvBias = false
    public var qkNorm = false
    public var ffExpansion = 4.0
    public var preBlockNorm = true
    public var dropRate: Float = 0.1
    /// Per-layer stochastic-depth probabilities (`stochastic_depth_*`); empty: none.
    public var layerDropProbabilities: [Float] = []
    /// NeMo's `causal_downsampling`: causal stride-2 convolutions in the subsampling.
    public var causalDownsampling = false
    /// The norm after the convolution module's depthwise convolution (NeMo's `conv_norm_type`).
    public var convNormType = ConvNormType.batchNorm
    /// Frames a query may attend to on its left and right (`att_context_size`, style regular);
    /// nil: all of them ([-1, -1]).
    public var attentionContext: (left: Int, right: Int)? = nil
    /// `att_context_style: chunked_limited`: frames form chunks of right + 1; a query sees its
    /// own chunk and left / (right + 1) chunks before it (NeMo's rule), not a sliding window.
    public var attentionChunked = false
    /// Multi-lookahead training (`att_context_size` as several [left, right], with
    /// `att_context_probs`): every context with its chunking and probability. Training draws
    /// one per forward; evaluation uses the first, which `attentionContext` and
    /// `attentionChunked` hold. Empty for one context.
    public var attentionContextChoices: [AttentionContextChoice] = []
    /// NeMo's `self_attention_model`: which attention and positional encoding the layers use.
    public var selfAttentionModel = SelfAttentionModel.relPos
    /// `ASRTransformerEncoder`: a LayerNorm after each residual add (`post_ln: true`, the
    /// class default) or before each sublayer, and the feed-forward activation (`ffn_act`).
    public var postLayerNorm = true
    public var ffnActivation = ActivationFunction.relu
    public init() {}

    public struct AttentionContextChoice: Equatable, Sendable {
        /// nil: unlimited on both sides; a side of `Int.max / 4` is unlimited.
        public var left: Int, right: Int
        public var chunked: Bool
        public var probability: Double

        public init(left: Int, right: Int, chunked: Bool, probability: Double) {
            (self.left, self.right, self.chunked, self.probability) = (left, right, chunked, probability)
        }

        public var context: (left: Int, right: Int)? {
            left >= Int.max / 4 && right >= Int.max / 4 ? nil : (left, right)
        }
    }

    public enum SelfAttentionModel: String, Equatable, Sendable, CaseIterable {
        /// Transformer-XL relative positions (`RelPositionMultiHeadAttention`).
        case relPos = "rel_pos"
        /// The same attention over a sliding window [left, right] (NeMo's Longformer class,
        /// without global tokens), with `LocalAttRelPositionalEncoding`.
        case relPosLocalAttn = "rel_pos_local_attn"
        /// Sinusoids added to the input, plain scaled dot-product attention (`MultiHeadAttention`).
        case absPos = "abs_pos"
    }

    public enum Architecture: String, Equatable, Sendable {
        case conformer = "ConformerEncoder"
        case transformer = "TransformerEncoder"
        /// NeMo's `ASRTransformerEncoder` (the Transformer recipes' class): built like the
        /// Conformer encoder, with attention + feed-forward layers and no convolution module.
        case asrTransformer = "ASRTransformerEncoder"
    }

    public enum ConvNormType: Equatable, Sendable {
        case batchNorm, layerNorm
        /// `instance_norm`: torch's InstanceNorm1d (each channel over each utterance's frames,
        /// no parameters).
        case instanceNorm
        /// `group_normN`: torch's GroupNorm with N groups over d_model channels.
        case groupNorm(groups: Int)

        /// NeMo's name of the norm (`conv_norm_type`), or nil for one nest-train does not build.
        public init?(name: String) {
            switch name {
            case "batch_norm": self = .batchNorm
            case "layer_norm": self = .layerNorm
            case "instance_norm": self = .instanceNorm
            default:
                guard name.hasPrefix("group_norm"), let groups = Int(name.dropFirst("group_norm".count)), groups > 0 else { return nil }
                self = .groupNorm(groups: groups)
            }
        }

        public var name: String {
            switch self {
            case .batchNorm: "batch_norm"
            case .layerNorm: "layer_norm"
            case .instanceNorm: "instance_norm"
            case .groupNorm(let groups): "group_norm\(groups)"
            }
        }
    }

    /// NeMo's convolutional subsamplings: every stride-2 stage a full 3×3 convolution
    /// (`striding`), or the first full and the others depthwise then pointwise (`dw_striding`).
    public enum Subsampling: String, CaseIterable, Sendable {
        case striding
        case dwStriding = "dw_striding"
    }

    public static func == (a: EncoderConfig, b: EncoderConfig) -> Bool {
        a.featIn == b.featIn && a.nLayers == b.nLayers && a.dModel == b.dModel && a.useBias == b.useBias
            && a.subsampling == b.subsampling && a.subsamplingFactor == b.subsamplingFactor
            && a.subsamplingConvChannels == b.subsamplingConvChannels
            && a.ffExpansionFactor == b.ffExpansionFactor && a.nHeads == b.nHeads && a.xscaling == b.xscaling
            && a.posEmbMaxLen == b.posEmbMaxLen && a.convKernelSize == b.convKernelSize && a.convContextSize == b.convContextSize
            && a.dropout == b.dropout && a.dropoutPreEncoder == b.dropoutPreEncoder && a.dropoutEmb == b.dropoutEmb
            && a.dropoutAtt == b.dropoutAtt && a.convNormType == b.convNormType && a.causalDownsampling == b.causalDownsampling
            && a.architecture == b.architecture && a.qkvBias == b.qkvBias && a.qkNorm == b.qkNorm && a.ffExpansion == b.ffExpansion
            && a.preBlockNorm == b.preBlockNorm && a.dropRate == b.dropRate && a.layerDropProbabilities == b.layerDropProbabilities
            && a.attentionContext?.left == b.attentionContext?.left && a.attentionContext?.right == b.attentionContext?.right
            && a.attentionChunked == b.attentionChunked && a.attentionContextChoices == b.attentionContextChoices
            && a.selfAttentionModel == b.selfAttentionModel
            && a.postLayerNorm == b.postLayerNorm && a.ffnActivation == b.ffnActivation
    }

    public var headDim: Int { dModel / nHeads }

    /// The encoder frames the subsampling makes of n feature frames (a valid length or a padded
    /// count alike): ⌈n/2⌉ per stride-2 stage (⌊n/2⌋ + 1 when causal), ⌈n/k⌉ for stacking.
    public func encoderFrames(_ n: Int) -> Int {
        if architecture == .transformer { return (n + subsamplingFactor - 1) / subsamplingFactor }
        var frames = n
        for _ in 0..<subsamplingFactor.trailingZeroBitCount { frames = ConvSubsampling.strided(frames, causal: causalDownsampling) }
        return frames
    }
    public var convContext: (left: Int, right: Int) {
        if let c = convContextSize, c.count == 2 { return (c[0], c[1]) }
        return ((convKernelSize - 1) / 2, (convKernelSize - 1) / 2)
    }
}

public struct MaskingConfig: Equatable, Sendable {
    public var featIn = 80
    public var blockSize = 40
    public var maskProb = 0.01
    public var allowOverlap = true
    public var maxMaskRatio = 0.8
    /// nil: a frozen random N(0, 0.1²) embedding; a number: that constant in every bin.
    public var maskValue: Float? = nil
    public init() {}
}

public struct QuantizerConfig: Equatable {
    /// `dist_fn: cosine` (largest dot product) instead of `l2` (smallest distance).
    public var cosineDistance = false
    public var featIn = 80
    public var codeDim = 16
    public var numClasses = 8192
    public var numBooks = 1
    public var combineTimeSteps = 8
    public init() {}
}

public struct DecoderConfig: Equatable {
    public var featIn = 512
    public var numClasses = 8192
    public var numDecoders = 1
    public var useBias = true
    public init() {}
}

public struct LossConfig: Equatable {
    public var combineTimeSteps = 8
    public var maskThreshold: Float = 0.8
    public init() {}
}

public struct NESTConfig: Equatable {
    /// Where frames are masked (NeMo's `mask_position`): the features before subsampling, or
    /// the subsampling's output (`post_conv`; targets then come from the subsampled clean
    /// features, and masks, quantizer and loss work on encoder frames).
    public var maskPosition = MaskPosition.preConv
    public var encoder = EncoderConfig()
    public var masking = MaskingConfig()
    public var quantizer = QuantizerConfig()
    public var decoder = DecoderConfig()
    public var loss = LossConfig()
    public init() {}

    public enum MaskPosition: String, Equatable, Sendable {
        case preConv = "pre_conv", postConv = "post_conv"
    }

    /// The frames masks are drawn on for n feature frames.
    public func maskFrames(_ n: Int) -> Int { maskPosition == .postConv ? encoder.encoderFrames(n) : n }
}
