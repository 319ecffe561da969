import Tensor

/// Deterministic batches of manifest indices for an epoch: a seeded shuffle, then duration
/// bucketing inside windows of `bucketWindow` batches (so that a batch holds utterances of
/// similar length and little padding), then a shuffle of the batch order. The same
/// (seed, epoch) always gives the same batches, which is what makes resume exact.
public struct BatchSampler {
    public var batchSize: Int
    public var shuffle: Bool
    public var dropLast: Bool
    public var bucketWindow: Int = 32
    /// Batches by seconds of audio instead of a count (`batch_duration`).
    public var duration: DurationBatching? = nil

    public init(batchSize: Int, shuffle: Bool, dropLast: Bool, duration: DurationBatching? = nil) {
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.duration = duration
    }

    public func batches(durations: [Double], seed: UInt64, epoch: Int) -> [[Int]] {
        let n = durations.count
        guard n > 0, batchSize > 0 || duration != nil else { return [] }
        let rng = RandomGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var order = shuffle ? rng.permutation(n) : Array(0..<n)
        if let duration {
            let batches = duration.batches(order: order, durations: durations, dropLast: dropLast)
            return shuffle ? rng.permutation(batches.count).map { batches[$0] } : batches
        }
        if shuffle {
            let window = batchSize * bucketWindow
            for start in stride(from: 0, to: n, by: window) {
                let end = min(n, start + window)
                order[start..<end].sort { durations[$0] < durations[$1] }
            }
        }
        var batches: [[Int]] = stride(from: 0, to: n, by: batchSize).map { Array(order[$0..<min(n, $0 + batchSize)]) }
        if dropLast, let last = batches.last, last.count < batchSize { batches.removeLast() }
        if shuffle { batches = rng.permutation(batches.count).map { batches[$0] } }
        return batches
    }
}
