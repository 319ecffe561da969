import Audio
import Tensor

/// Deterministic batches of manifest indices for an epoch. With a batch size, as NeMo's
/// DataLoader makes them: a seeded shuffle of the whole manifest, consecutive utterances
/// forming batches, whatever their lengths. (Sorting by length inside windows of batches, as
/// this sampler once did, pads less but makes each batch one length regime: BatchNorm's
/// running statistics then follow the last few batches' regime and validation loss jumped
/// between checkpoints where NeMo's did not; `make curve-vs-nemo` showed it.) With
/// `batch_duration`, the Lhotse-style buckets of `DurationBatching`, in a shuffled order.
/// The same (seed, epoch) always gives the same batches, which is what makes resume exact.
public struct BatchSampler {
    public var batchSize: Int
    public var shuffle: Bool
    public var dropLast: Bool
    /// Batches by seconds of audio instead of a count (`batch_duration`).
    public var duration: DurationBatching? = nil
    /// Weighted inputs (`input_cfg`): the epoch's utterances are the mixture's draws.
    public var mixture: InputMixture? = nil

    public init(batchSize: Int, shuffle: Bool, dropLast: Bool, duration: DurationBatching? = nil, mixture: InputMixture? = nil) {
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.duration = duration
        self.mixture = mixture
    }

    public func batches(durations: [Double], seed: UInt64, epoch: Int) -> [[Int]] {
        guard !durations.isEmpty, batchSize > 0 || duration != nil else { return [] }
        let rng = RandomGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        let order = mixture?.order(seed: seed, epoch: epoch) ?? (shuffle ? rng.permutation(durations.count) : Array(durations.indices))
        let n = order.count
        if let duration {
            let batches = duration.batches(order: order, durations: durations, dropLast: dropLast)
            return shuffle ? rng.permutation(batches.count).map { batches[$0] } : batches
        }
        var batches: [[Int]] = stride(from: 0, to: n, by: batchSize).map { Array(order[$0..<min(n, $0 + batchSize)]) }
        if dropLast, let last = batches.last, last.count < batchSize { batches.removeLast() }
        return batches
    }
}
