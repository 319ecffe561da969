import NN
import Tensor

/// NeMo's `ConvSubsampling` with `dw_striding` or `striding`: features [B, F, T] → [B, T/f, D].
///
/// `dw_striding`'s stride-2 stages are a 3×3 Conv2d 1→C, then (log2 f − 1) × [depthwise 3×3
/// stride 2, pointwise 1×1], each followed by ReLU; `striding`'s are log2 f full 3×3 Conv2d
/// (1→C, then C→C), each followed by ReLU. Time is the image height, frequency the width. After
/// every conv the padded time rows (t ≥ current length) are zeroed, as NeMo's
/// `MaskedConvSequential` does before each layer. The [B, C, T′, F′] result is flattened
/// channel-major (c·F′ + f) and projected to D by `out`.
///
/// With `causal_downsampling` every stride-2 convolution is NeMo's `CausalConv2D`: zero padding
/// 2 before and 1 after on both axes instead of 1 and 1, so a length n becomes ⌊n/2⌋ + 1 and
/// no output frame sees a later input frame (T′ = T/8 + 1 for a factor of 8).
public final class ConvSubsampling: Module {
    public let out: Linear
    public let causal: Bool
    let conv = Module()
    /// The convs in sequence order with their state-dict index and whether a ReLU follows.
    private var stages: [(conv: Conv2d, strided: Bool, relu: Bool)] = []

    public init(config: EncoderConfig, rng: RandomGenerator) {
        let c = config.subsamplingConvChannels
        var stageCount = 0
        var f = config.subsamplingFactor
        while f > 1 { stageCount += 1; f /= 2 }
        causal = config.causalDownsampling
        var freq = config.featIn
        for _ in 0..<stageCount { freq = Self.strided(freq, causal: causal) }
        out = Linear(inputFeatures: c * freq, outputFeatures: config.dModel, rng: rng)
        super.init()
        registerChildren()
        // Indices count the ReLUs as PyTorch's Sequential does: 0, (1), 2, 3, (4), 5, 6, (7).
        var index = 0
        func add(_ m: Conv2d, strided: Bool, relu: Bool) {
            conv.child(String(index), m)
            stages.append((m, strided, relu))
            index += relu ? 2 : 1
        }
        // Causal stages pad explicitly (2 before, 1 after) in `callAsFunction`.
        let padding = causal ? (0, 0) : (1, 1)
        add(Conv2d(inputChannels: 1, outputChannels: c, kernelSize: (3, 3), stride: (2, 2), padding: padding, rng: rng),
            strided: true, relu: true)
        for _ in 1..<max(stageCount, 1) {
            switch config.subsampling {
            case .striding:
                add(Conv2d(inputChannels: c, outputChannels: c, kernelSize: (3, 3), stride: (2, 2), padding: padding, rng: rng), strided: true, relu: true)
            case .dwStriding:
                add(Conv2d(inputChannels: c, outputChannels: c, kernelSize: (3, 3), stride: (2, 2), padding: padding, groups: c, rng: rng),
                    strided: true, relu: false)
                add(Conv2d(inputChannels: c, outputChannels: c, kernelSize: (1, 1), rng: rng), strided: false, relu: true)
            }
        }
    }

    /// A size after one stride-2 stage: ⌈n/2⌉, or ⌊n/2⌋ + 1 when causal.
    static func strided(_ n: Int, causal: Bool) -> Int { causal ? n / 2 + 1 : (n - 1) / 2 + 1 }

    public func callAsFunction(_ features: Tensor, lengths: [Int]) -> (Tensor, [Int]) {
        let (b, f, t) = (features.shape[0], features.shape[1], features.shape[2])
        var x = features.transposed(1, 2).reshaped([b, 1, t, f])
        var lengths = lengths
        x = x * TimeMask.rows(lengths, length: t, shape: [b, 1, t, 1])
        for stage in stages {
            if causal && stage.strided { x = x.padded(axis: 2, before: 2, after: 1).padded(axis: 3, before: 2, after: 1) }
            x = stage.conv(x)
            if stage.strided { lengths = lengths.map { Self.strided($0, causal: causal) } }
            x = x * TimeMask.rows(lengths, length: x.shape[2], shape: [b, 1, x.shape[2], 1])
            if stage.relu { x = x.relu() }
        }
        let (c, tOut, fOut) = (x.shape[1], x.shape[2], x.shape[3])
        let flat = x.permuted([0, 2, 1, 3]).reshaped([b, tOut, c * fOut])
        return (out(flat), lengths)
    }
}

/// 0/1 masks of valid time steps, as constant tensors (no gradient).
public enum TimeMask {
    /// 1 where t < lengths[b], in a tensor of `shape` whose only non-1 dims are B and T.
    public static func rows(_ lengths: [Int], length t: Int, shape: [Int]) -> Tensor {
        Tensor.timeMask(lengths: lengths, length: t, shape: shape)
    }

    /// NeMo's attention mask [B, 1, T, T]: 1 (masked) unless both query and key are valid (and,
    /// with a limited context, the key is within it).
    public static func attention(_ lengths: [Int], length t: Int, context: (left: Int, right: Int)? = nil) -> Tensor {
        Tensor.attentionMask(lengths: lengths, length: t, context: context)
    }
}
