import NN
import Tensor

/// NeMo's `RandomBlockMasking`: whole frames of the (noisy, normalised) features are replaced by
/// a frozen embedding, in random blocks, before subsampling. Works on raw buffers: features carry
/// no gradient and the embedding is frozen.
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

    /// A frame mask [B, T] (1 = masked) for utterances of `lengths` valid frames.
    public func drawMask(lengths: [Int], frames t: Int, rng: RandomGenerator) -> Tensor {
        let mask = Tensor(zeros: [lengths.count, t])
        for (b, length) in lengths.enumerated() {
            let row = mask.data + b * t
            for span in blocks(length: length, rng: rng) {
                for i in span where i < min(length, t) { row[i] = 1 }
            }
        }
        return mask
    }

    /// The masked spans of one utterance.
    func blocks(length l: Int, rng: RandomGenerator) -> [Range<Int>] {
        let bs = config.blockSize
        if config.allowOverlap {
            // Too short for blocks: NeMo masks the first 8 frames.
            if Double(bs) >= config.maxMaskRatio * Double(l) { return [0..<min(8, l)] }
            let count = max(0, l - bs)
            let n = rng.binomial(count, config.maskProb)
            return rng.permutation(count).prefix(n).map { s in s..<min(s + bs, l) }
        }
        // Non-overlapping: n blocks on a grid of block-size cells with a random offset.
        let n = Int((Double(l) * config.maskProb / Double(bs)).rounded(.up))
        var size = bs
        let offset = rng.int(in: 0...(bs - 1))
        if (n + 1) * size > l { size = l / (n + 1) }
        guard size > 0 else { return [] }
        let cells = l / size
        guard cells > 1 else { return [] }
        return rng.permutation(cells - 1).prefix(n).map { idx in
            let s = min(idx * size + offset, l)
            return s..<min(s + size, l)
        }
    }

    /// features [B, F, T] with frames where `frameMask` [B, T] is 1 replaced by the embedding.
    public func apply(_ features: Tensor, frameMask: Tensor) -> Tensor {
        let (b, f, t) = (features.shape[0], features.shape[1], features.shape[2])
        let out = features.detached().copy()
        for bi in 0..<b {
            for ti in 0..<t where frameMask.data[bi * t + ti] != 0 {
                for fi in 0..<f { out.data[(bi * f + fi) * t + ti] = maskEmbedding.data[fi] }
            }
        }
        return out
    }
}
