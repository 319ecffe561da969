import Foundation
import Tensor

/// NeMo's `MultiSpeakerNoiseAugmentation` (spec §3.3): each utterance, with probability `prob`,
/// gets a noise or another speaker of the batch mixed into a `mix_rate` share of its length, in
/// `num_segments` pieces, scaled so that the energy ratio over the whole utterance is r dB.
///
/// Choices where NeMo has quirks (spec §3.5): an utterance that is not selected gets no noise
/// at all (NeMo would add the raw, unscaled noise clip), and the noisy length is always the
/// audio length.
public struct MultiSpeakerNoiseAugmentation {
    public struct Settings: Equatable {
        public var prob = 0.5
        public var noiseRatio = 0.5
        public var speechSNR: ClosedRange<Double> = -5...5
        public var noiseSNR: ClosedRange<Double> = -5...20
        public var mixRate: ClosedRange<Double> = 0.5...0.5
        public var segments: ClosedRange<Int> = 1...1
        public var speakers: ClosedRange<Int> = 1...1
        public init() {}
    }

    /// What happened to one utterance (for logs and tests).
    public struct Record: Equatable {
        public enum Mode: Equatable { case clean, noise, speech(sources: [Int]) }
        public var mode: Mode = .clean
        public var snrDB: Double = 0
        /// Mixed spans [start, end) in samples.
        public var spans: [Range<Int>] = []
    }

    public let settings: Settings
    public init(settings: Settings) { self.settings = settings }

    /// The noisy copy of utterance `slot` of a batch of `batchSize` (its own `audio`, padded
    /// or not; `length` valid samples), drawing from its own `rng`. `speech(j)` gives the
    /// samples of utterance j of the batch (nil when unreadable: the utterance then stays
    /// clean), `noise(n)` a noise clip of up to n samples (nil: no noise).
    ///
    /// One utterance at a time, so that a process holding only some rows of a batch augments
    /// them exactly as one process holding all would.
    public func callAsFunction(_ audio: [Float], length li: Int, slot i: Int, batchSize b: Int, rng: RandomGenerator,
                               speech: (Int) -> [Float]?, noise: (Int) -> [Float]?) -> (noisy: [Float], record: Record) {
        var record = Record()
        if rng.uniform() > settings.prob || li == 0 { return (audio, record) }
        let rate = settings.mixRate.lowerBound < settings.mixRate.upperBound
            ? rng.uniform(settings.mixRate.lowerBound, settings.mixRate.upperBound) : settings.mixRate.lowerBound
        let mixLength = max(1, Int(Double(li) * rate))
        let segmentCount = rng.int(in: settings.segments)
        let speakerCount = min(rng.int(in: settings.speakers), b)
        // Multinomial split of the mixed length (empty pieces dropped, as NeMo's Counter).
        var pieces = [Int](repeating: 0, count: segmentCount)
        for _ in 0..<mixLength { pieces[rng.int(in: 0...(segmentCount - 1))] += 1 }
        pieces.removeAll { $0 == 0 }

        let noiseMode = rng.uniform() < settings.noiseRatio || b == 1
        let snr = noiseMode ? rng.uniform(settings.noiseSNR.lowerBound, settings.noiseSNR.upperBound)
                            : rng.uniform(settings.speechSNR.lowerBound, settings.speechSNR.upperBound)
        var segments: [[Float]] = []
        if noiseMode {
            // A clip as long as the utterance (NeMo asks for the batch length; only the
            // utterance's own length is ever used, and this keeps the draw independent of
            // the rest of the batch).
            guard let clip = noise(li), !clip.isEmpty else { return (audio, record) }
            // Tiled, then consecutive pieces from the start.
            var start = 0
            for p in pieces {
                segments.append((0..<p).map { clip[(start + $0) % clip.count] })
                start += p
            }
            record.mode = .noise
        } else {
            let candidates = (0..<b).filter { $0 != i }
            let order = rng.permutation(candidates.count).prefix(min(speakerCount, b - 1)).map { candidates[$0] }
            var used: [Int] = []
            for (s, p) in pieces.enumerated() {
                let j = s < order.count ? order[s] : order[rng.int(in: 0...(order.count - 1))]
                guard let source = speech(j), !source.isEmpty else { return (audio, Record()) }
                used.append(j)
                let lj = source.count
                if p > lj {
                    segments.append((0..<p).map { source[$0 % lj] })
                } else {
                    let start = lj == p ? 0 : rng.int(in: 0...(lj - p - 1))
                    segments.append(Array(source[start..<(start + p)]))
                }
            }
            record.mode = .speech(sources: used)
        }
        // Placement: each piece after the previous one, leaving room for the rest.
        var mix = [Float](repeating: 0, count: li)
        var lo = 0, hi = li - mixLength
        for seg in segments {
            let start = lo < hi ? rng.int(in: lo...(hi - 1)) : lo
            for k in 0..<seg.count where start + k < li { mix[start + k] = seg[k] }
            record.spans.append(start..<min(start + seg.count, li))
            lo = start + seg.count
            hi += seg.count
        }
        let energyAudio = audio.prefix(li).reduce(0.0) { $0 + Double($1) * Double($1) } / Double(li)
        let energyMix = mix.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(li)
        let scale = energyMix > 0 ? Float((energyAudio / (pow(10, snr / 10) * energyMix)).squareRoot()) : 0
        var noisy = audio
        for n in 0..<li { noisy[n] += scale * mix[n] }
        record.snrDB = snr
        return (noisy, record)
    }

    /// A whole batch in memory (`audio` [B][N], padded beyond `lengths`), utterance i drawing
    /// from `rngs[i]`; `noise(i, n)` supplies utterance i's noise clip.
    public func callAsFunction(_ audio: [[Float]], lengths: [Int], rngs: [RandomGenerator],
                               noise: (Int, Int) -> [Float]?) -> (noisy: [[Float]], records: [Record]) {
        let results = audio.indices.map { i in
            self(audio[i], length: lengths[i], slot: i, batchSize: audio.count, rng: rngs[i],
                 speech: { Array(audio[$0].prefix(lengths[$0])) }, noise: { noise(i, $0) })
        }
        return (results.map(\.noisy), results.map(\.record))
    }
}
