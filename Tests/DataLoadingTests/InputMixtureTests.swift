import DataLoading
import Audio
import XCTest

/// `input_cfg` mixtures: inputs drawn by weight (reweighted by temperature), each walked in
/// shuffled passes, deterministic per (seed, epoch).
final class InputMixtureTests: XCTestCase {
    func testInputsAreDrawnByWeightAndWalkedInPasses() {
        // 100 utterances weighted 3, 1000 weighted 1: an epoch of 1,100 draws takes 3/4 from
        // the small input, which it walks through ~8 times.
        let mixture = InputMixture(sources: [0..<100, 100..<1100], weights: [3, 1])
        XCTAssertEqual(mixture.probabilities, [0.75, 0.25])
        let order = mixture.order(seed: 7, epoch: 0)
        XCTAssertEqual(order.count, 1100)
        let small = order.filter { $0 < 100 }
        XCTAssertEqual(Double(small.count) / 1100, 0.75, accuracy: 0.05, "binomial(1100, 0.75) has a standard deviation of 0.013")
        var counts = [Int](repeating: 0, count: 1100)
        for i in order { counts[i] += 1 }
        let smallCounts = counts[0..<100], largeCounts = counts[100...]
        XCTAssertLessThanOrEqual(smallCounts.max()! - smallCounts.min()!, 1, "whole passes: every utterance once per pass")
        XCTAssertLessThanOrEqual(largeCounts.max()!, 1, "a quarter of a pass over the large input repeats nothing")
        XCTAssertEqual(mixture.order(seed: 7, epoch: 0), order, "a function of (seed, epoch)")
        XCTAssertNotEqual(mixture.order(seed: 7, epoch: 1), order)
        XCTAssertNotEqual(mixture.order(seed: 8, epoch: 0), order)
    }

    func testTemperatureAndMissingWeights() {
        XCTAssertEqual(InputMixture(sources: [0..<1, 1..<2], weights: [3, 1], temperature: 0).probabilities, [0.5, 0.5], "w⁰ equalises")
        XCTAssertEqual(InputMixture(sources: [0..<1, 1..<2], weights: [3, 1], temperature: 2).probabilities, [0.9, 0.1])
        XCTAssertEqual(InputMixture(sources: [0..<10, 10..<1000], weights: nil).probabilities, [0.5, 0.5], "no weights: equal chances, not sizes")
    }
}
