import Audio
import Foundation
import Tensor

/// NeMo's `input_cfg` with several inputs, mixed as its Lhotse loader mixes them: each input is
/// repeated without end and `mux` draws, for every utterance, input i with probability
/// w_i^τ / Σ_j w_j^τ (τ: `reweight_temperature`, 1 by default; no weights: equal chances)
/// and takes that input's next utterance. Small inputs with large weights are therefore seen
/// several times before a large one is seen once.
///
/// The mixed stream has no end of its own; an epoch here is as many draws as all inputs hold
/// utterances. Within an epoch each input walks its utterances in shuffled passes, a new
/// shuffle per pass and per epoch, so every utterance of an input is equally likely over time
/// (Lhotse's walk continues across what this calls epochs; the mixture's proportions are the
/// same). The order is a function of (seed, epoch), which keeps resume exact.
public struct InputMixture: Equatable {
    /// Each input's utterances: a range of indices into the concatenated manifest.
    public var sources: [Range<Int>]
    /// Each input's probability of being drawn (normalised).
    public var probabilities: [Double]

    /// `weights` as given (nil: equal chances), reweighted by `temperature` as NeMo does.
    public init(sources: [Range<Int>], weights: [Double]?, temperature: Double = 1) {
        precondition(weights == nil || weights!.count == sources.count, "one weight per input")
        self.sources = sources
        let powered = (weights ?? sources.map { _ in 1 }).map { pow($0, temperature) }
        let total = powered.reduce(0, +)
        probabilities = powered.map { $0 / total }
    }

    /// The utterance order of an epoch: as many draws as all inputs hold, each an index into
    /// the concatenated manifest, every input walked in shuffled passes.
    public func order(seed: UInt64, epoch: Int) -> [Int] {
        order(seed: seed, epoch: epoch, draws: sources.reduce(0) { $0 + $1.count }) { i, rng in
            rng.permutation(sources[i].count).map { sources[i].lowerBound + $0 }
        }
    }

    /// `draws` draws of an epoch over inputs whose utterances come in `walk(i, rng)` order: one
    /// walk per pass over input i, each pass with a generator of its own (seed, epoch, input,
    /// pass), so that a tarred input can walk its shards instead.
    public func order(seed: UInt64, epoch: Int, draws: Int, walk: (Int, RandomGenerator) -> [Int]) -> [Int] {
        let epochSeed = seed &+ UInt64(epoch) &* 0xD1B5_4A32_D192_ED03
        let choices = RandomGenerator(seed: epochSeed)
        var drawn = [Int](repeating: 0, count: probabilities.count), passes = drawn
        var walks: [[Int]] = probabilities.map { _ in [] }
        var order: [Int] = []
        order.reserveCapacity(draws)
        while order.count < draws {
            let i = RandomGenerator.option(choices.uniform(), probabilities: probabilities)
            if drawn[i] == walks[i].count {
                // A new pass over input i.
                walks[i] = walk(i, RandomGenerator(seed: epochSeed ^ (UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(passes[i]) &* 0xBF58_476D_1CE4_E5B9)))
                (drawn[i], passes[i]) = (0, passes[i] + 1)
                guard !walks[i].isEmpty else { continue }
            }
            order.append(walks[i][drawn[i]])
            drawn[i] += 1
        }
        return order
    }
}
