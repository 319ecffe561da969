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
        // Non-overlapping, as NeMo 3.0.0's `forward_without_overlap`: n = ⌈L·p/bs⌉ blocks (in
        // Float32, as torch computes it), shrunk to ⌊L/(n + 1)⌋ frames when n + 1 would not fit,
        // on n distinct cells of the first ⌊L/size⌋ − 1 of a grid of that size, all shifted by
        // one offset in [0, size): blocks never overlap and never pass L.
        let wanted = Int((Float(l) * Float(config.maskProb) / Float(bs)).rounded(.up))
        let size = max((wanted + 1) * bs > l ? l / (wanted + 1) : bs, 1)
        let slots = max(l / size - 1, 0)
        let cells = rng.permutation(slots).prefix(min(wanted, slots))
        let offset = Int(rng.uniformFloat() * Float(size))
        return cells.map { ($0 * size + offset)..<($0 * size + offset + size) }
    }
}
