import NN
import Tensor

/// NeMo's `RandomBlockMasking`: whole frames of the (noisy, normalised) features are replaced by
/// a frozen embedding, in random blocks (drawn by `BlockMaskSampler`), before subsampling.
/// Features carry no gradient and the embedding is frozen.
public final class RandomBlockMasking: Module {
    public let config: MaskingConfig
    /// [F]: N(0, 0.1²) when `mask_value` is unset, else that constant (frozen either way).
    public let maskEmbedding: Tensor

    public init(config: MaskingConfig, rng: RandomGenerator) {
        self.config = config
        maskEmbedding = Tensor(zeros: [config.featIn])
        if let value = config.maskValue { maskEmbedding.fill(value) } else { rng.fillNormal(maskEmbedding, std: 0.1) }
        super.init()
        frozenParameter("mask_embedding", .float32(maskEmbedding))
    }

    /// features [B, F, T] with frames where `frameMask` [B, T] is 1 replaced by the embedding.
    public func apply(_ features: Tensor, frameMask: FrameMask) -> Tensor {
        features.replacingFrames(mask: frameMask.values, with: maskEmbedding)
    }
}
