import Audio
import Tensor

/// Duration-based batching, as NeMo's Lhotse loader does it (`batch_duration`): a batch takes
/// utterances until the next one would push its seconds past the budget, so short utterances
/// come many to a batch and long ones few, and buckets of similar durations keep padding low.
public struct DurationBatching: Equatable, Sendable {
    /// Seconds of audio per batch (`batch_duration`).
    public var seconds: Double
    /// Lhotse's `quadratic_duration`: an utterance of d seconds costs d + d²/q, so that long
    /// utterances (whose attention grows with d²) take more of the budget. nil: d.
    public var quadraticDuration: Double? = nil
    /// At most this many utterances per batch (`batch_size` beside `batch_duration`).
    public var maxUtterances: Int? = nil
    /// Bucket edges in seconds (`bucket_duration_bins`): bucket i holds durations in
    /// [edges[i−1], edges[i]), as Lhotse bisects them. nil: `buckets` edges estimated so that
    /// each bucket holds the same total duration (Lhotse's estimate).
    public var bucketEdges: [Double]? = nil
    /// `num_buckets` (1: no bucketing, `use_bucketing: false`).
    public var buckets = 30

    public init(seconds: Double) { self.seconds = seconds }

    /// The budget an utterance of `d` seconds takes.
    public func cost(_ d: Double) -> Double { quadraticDuration.map { d + d * d / $0 } ?? d }

    /// Edges splitting `durations` into `buckets` groups of about equal total duration.
    public func edges(for durations: [Double]) -> [Double] {
        if let bucketEdges { return bucketEdges }
        guard buckets > 1, !durations.isEmpty else { return [] }
        let sorted = durations.sorted(), total = sorted.reduce(0, +)
        var out: [Double] = [], running = 0.0, next = 1
        for d in sorted {
            running += d
            while next < buckets && running >= total * Double(next) / Double(buckets) {
                if out.last.map({ $0 < d }) ?? true { out.append(d) }
                next += 1
            }
        }
        return out
    }

    /// The batches of one epoch: `order` (already shuffled, or manifest order) dealt into
    /// buckets, each bucket packed greedily in that order. A batch is closed when the next
    /// utterance would exceed the budget (an utterance longer than the budget forms a batch of
    /// its own); with `dropLast` each bucket's last, unclosed batch is left out.
    public func batches(order: [Int], durations: [Double], dropLast: Bool) -> [[Int]] {
        let edges = edges(for: durations)
        var buckets = [[Int]](repeating: [], count: edges.count + 1)
        for i in order {
            // Lhotse's bisect_right: the number of edges at or below the duration.
            var lo = 0, hi = edges.count
            while lo < hi { let mid = (lo + hi) / 2; if edges[mid] <= durations[i] { lo = mid + 1 } else { hi = mid } }
            buckets[lo].append(i)
        }
        var out: [[Int]] = []
        for bucket in buckets where !bucket.isEmpty {
            var current: [Int] = [], used = 0.0
            for i in bucket {
                let c = cost(durations[i])
                let full = !current.isEmpty && (used + c > seconds || current.count == (maxUtterances ?? .max))
                if full {
                    out.append(current)
                    current = []
                    used = 0
                }
                current.append(i)
                used += c
            }
            if !current.isEmpty && !dropLast { out.append(current) }
        }
        return out
    }
}
