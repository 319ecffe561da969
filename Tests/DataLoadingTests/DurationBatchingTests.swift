import DataLoading
import Audio
import Tensor
import XCTest

/// Duration-based batching (NeMo's Lhotse `batch_duration`): budgets, caps, buckets, and the
/// determinism exact resume needs.
final class DurationBatchingTests: XCTestCase {
    /// A long-tailed corpus: mostly 1–6 s, a few up to 30 s.
    let durations: [Double] = {
        let rng = RandomGenerator(seed: 3)
        return (0..<2000).map { _ in rng.int(in: 0...19) == 0 ? rng.uniform(6, 30) : rng.uniform(1, 6) }
    }()

    func testBatchesStayWithinTheBudgetAndTheCapAndCoverEveryUtteranceOnce() {
        for (seconds, quadratic, cap) in [(60.0, nil, nil), (60.0, 30.0, nil), (45.0, nil, 8), (20.0, 15.0, 3)] as [(Double, Double?, Int?)] {
            var batching = DurationBatching(seconds: seconds)
            batching.quadraticDuration = quadratic
            batching.maxUtterances = cap
            let order = RandomGenerator(seed: 1).permutation(durations.count)
            let batches = batching.batches(order: order, durations: durations, dropLast: false)
            XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(durations.indices), "every utterance exactly once")
            for b in batches {
                let cost = b.map { batching.cost(durations[$0]) }.reduce(0, +)
                XCTAssertTrue(cost <= seconds || b.count == 1, "\(b.count) utterances cost \(cost) s > \(seconds) s")
                XCTAssertLessThanOrEqual(b.count, cap ?? .max)
            }
            // Quadratic costs make long utterances take more of the budget.
            if let q = quadratic { XCTAssertEqual(batching.cost(q), 2 * q, accuracy: 1e-12) }
        }
    }

    func testBucketsFollowTheirEdgesAndEstimatedEdgesSplitTheTotalEvenly() {
        var batching = DurationBatching(seconds: 40)
        batching.bucketEdges = [2, 4, 8]
        let batches = batching.batches(order: Array(durations.indices), durations: durations, dropLast: false)
        func bucket(_ d: Double) -> Int { [2.0, 4, 8].filter { $0 <= d }.count }
        for b in batches { XCTAssertEqual(Set(b.map { bucket(durations[$0]) }).count, 1, "a batch mixes buckets") }
        batching.bucketEdges = nil
        batching.buckets = 4
        let edges = batching.edges(for: durations)
        XCTAssertEqual(edges.count, 3)
        let total = durations.reduce(0, +)
        for k in 0...3 {
            let share = durations.filter { d in (k == 0 || d >= edges[k - 1]) && (k == 3 || d < edges[k]) }.reduce(0, +) / total
            XCTAssertEqual(share, 0.25, accuracy: 0.03, "bucket \(k) holds \(share) of the audio")
        }
    }

    func testDropLastLeavesOutOnlyEachBucketsUnclosedBatch() {
        var batching = DurationBatching(seconds: 30)
        batching.buckets = 5
        let all = batching.batches(order: Array(durations.indices), durations: durations, dropLast: false)
        let kept = batching.batches(order: Array(durations.indices), durations: durations, dropLast: true)
        XCTAssertEqual(all.count - kept.count, 5)
        XCTAssertTrue(kept.allSatisfy { b in all.contains(b) })
    }

    /// Bucketing pads less than fixed-size batches of the same mean size: the figure that makes
    /// it worth having (padding = frames of zeros over all frames).
    func testBucketingPadsLessThanFixedBatches() {
        func padding(_ batches: [[Int]]) -> Double {
            var padded = 0.0, audio = 0.0
            for b in batches {
                let longest = b.map { durations[$0] }.max() ?? 0
                padded += longest * Double(b.count)
                audio += b.map { durations[$0] }.reduce(0, +)
            }
            return 1 - audio / padded
        }
        let bucketed = BatchSampler(batchSize: 0, shuffle: true, dropLast: false, duration: DurationBatching(seconds: 60))
        let b = bucketed.batches(durations: durations, seed: 7, epoch: 0)
        let meanSize = Int((Double(durations.count) / Double(b.count)).rounded())
        var single = DurationBatching(seconds: 60)
        single.buckets = 1
        let fixed = BatchSampler(batchSize: meanSize, shuffle: true, dropLast: false)
        let unbucketed = BatchSampler(batchSize: 0, shuffle: true, dropLast: false, duration: single)
        let (pb, pf, pu) = (padding(b), padding(fixed.batches(durations: durations, seed: 7, epoch: 0)), padding(unbucketed.batches(durations: durations, seed: 7, epoch: 0)))
        print(String(format: "padding share: duration + 30 buckets %.3f, fixed batches of %d %.3f, duration without buckets %.3f", pb, meanSize, pf, pu))
        XCTAssertLessThan(pb, pu)
        XCTAssertLessThan(pb, 0.1)
    }

    func testTheSameSeedAndEpochGiveTheSameBatches() {
        let sampler = BatchSampler(batchSize: 0, shuffle: true, dropLast: false, duration: DurationBatching(seconds: 50))
        XCTAssertEqual(sampler.batches(durations: durations, seed: 5, epoch: 2), sampler.batches(durations: durations, seed: 5, epoch: 2))
        XCTAssertNotEqual(sampler.batches(durations: durations, seed: 5, epoch: 2), sampler.batches(durations: durations, seed: 5, epoch: 3))
    }
}
