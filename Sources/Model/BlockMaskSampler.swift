import Tensor

/// Where NeMo's `RandomBlockMasking` masks: random blocks of frames per utterance, a pure
/// function of the masking settings and a generator. Kept apart from the module that holds the
/// mask embedding, so that the data loader draws masks without holding any part of the model.
public struct BlockMaskSampler: Sendable {
    public let config: MaskingConfig
    /// The frames masks are drawn on for n feature frames: the features themselves, or the
    /// encoder frames of `mask_position: post_conv`.
    public let grid: @Sendable (Int) -> Int

    public init(config: MaskingConfig, grid: @escaping @Sendable (Int) -> Int = { $0 }) {
        self.config = config
        self.grid = grid
    }

    /// The sampler of a model's masks.
    public init(model: NESTConfig) {
        self.init(config: model.masking, grid: { model.maskFrames($0) })
    }

    /// A frame mask [B, grid(T)] (1 = masked) for utterances of `featureLengths` valid feature
    /// frames out of T, utterance b drawing from `rngs[b]`.
    public func drawMask(featureLengths: [Int], featureFrames: Int, rngs: [RandomGenerator]) -> FrameMask {
        let lengths = featureLengths.map(grid), t = grid(featureFrames)
        precondition(rngs.count == lengths.count, "one generator per utterance")
        var mask = [Float](repeating: 0, count: lengths.count * t)
        for (b, length) in lengths.enumerated() {
            for span in blocks(length: length, rng: rngs[b]) {
                for i in span where i < min(length, t) { mask[b * t + i] = 1 }
            }
        }
        return FrameMask(mask, batch: lengths.count, frames: t)
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
}
