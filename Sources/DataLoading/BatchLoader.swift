import Basics
import Audio
import Foundation
import Model
import Tensor

/// A batch ready for the training step: clean features (for targets), masked-to-be noisy
/// features (for the encoder), their lengths, and the frame mask.
public struct Batch {
    public let position: DataPosition
    /// The slot of the global batch each row holds (rows of unreadable files are left out):
    /// dropout masks are keyed by it, so they do not depend on which process holds a row.
    public var slots: [Int]
    public let clean: Tensor
    public let noisy: Tensor
    public let lengths: [Int]
    public let frameMask: FrameMask
    public let audioSeconds: Double
    /// "manifest:line" of each utterance in the batch.
    public let utterances: [String]
    /// Errors of utterances that were skipped.
    public let skipped: [String]
    public var isEmpty: Bool { utterances.isEmpty }
}

extension Batch {
    /// The batch of padded `audio` [B][N] and its augmented copy `noisy`: clean features (dither
    /// when `dither`), noisy features and the frame mask. Utterance b draws everything from
    /// sub-streams of `slotRNGs[b]` (1, 2: dither; 3: mask), so its features and mask do not
    /// depend on the rest of the batch.
    public init(position: DataPosition, audio: [[Float]], noisy: [[Float]], lengths: [Int], frontEnd: FilterbankFeatures,
                masks: BlockMaskSampler, slotRNGs: [RandomGenerator], dither: Bool, sampleRate: Int, utterances: [String],
                skipped: [String] = [], slots: [Int]? = nil) {
        let (clean, _) = frontEnd(audio, lengths: lengths, dither: dither ? slotRNGs.map { $0.derived(1) } : nil)
        let (noisyFeatures, noisyLengths) = frontEnd(noisy, lengths: lengths, dither: dither ? slotRNGs.map { $0.derived(2) } : nil)
        let frameMask = masks.drawMask(featureLengths: noisyLengths, featureFrames: noisyFeatures.shape[2], rngs: slotRNGs.map { $0.derived(3) })
        self.init(position: position, slots: slots ?? Array(audio.indices), clean: clean, noisy: noisyFeatures, lengths: noisyLengths, frameMask: frameMask,
                  audioSeconds: Double(lengths.reduce(0, +)) / Double(sampleRate), utterances: utterances, skipped: skipped)
    }

    /// The same batch with `frames` feature frames (zeros appended) and the mask on `maskFrames`
    /// of its grid: every process pads to the global batch's length, as one process holding the
    /// whole batch would.
    package func padded(toFrames frames: Int, maskFrames: Int) -> Batch {
        guard frames > clean.shape[2] else { return self }
        // [..., t] → [..., n], each row's frames first.
        return Batch(position: position, slots: slots, clean: clean.paddingLastDimension(to: frames), noisy: noisy.paddingLastDimension(to: frames),
                     lengths: lengths, frameMask: frameMask.padded(toFrames: maskFrames), audioSeconds: audioSeconds,
                     utterances: utterances, skipped: skipped)
    }
}

/// Where the data order stands: batch `index` of `epoch`.
public struct DataPosition: Equatable, Codable {
    public var epoch: Int
    public var index: Int
    public init(epoch: Int, index: Int) { self.epoch = epoch; self.index = index }
}

/// Turns manifest entries into batches. Every random choice for an utterance (noise clip,
/// augmentation, dither, mask) comes from a generator derived from (seed, epoch, index, slot),
/// so a batch is the same whenever and wherever it is made: the key to exact resume, to
/// prefetching, and to data-parallel training equal to one process.
///
/// With several processes (`share`), plain files form global batches of ranks × batch_size
/// utterances and rank r makes slots [r·b, (r+1)·b) of each, so the order and every draw are
/// those of one process with the global batch. Tarred shards follow NeMo instead: each rank
/// batches the utterances of its own shards (slots keyed by rank too).
public final class BatchLoader: @unchecked Sendable {
    public let manifest: Manifest
    let noise: Manifest?
    package let settings: DataSettings
    let frontEnd: FilterbankFeatures
    let masks: BlockMaskSampler
    let sampleRate: Int
    let seed: UInt64
    let training: Bool
    /// The shards of a tarred dataset; nil for plain files.
    public let tarred: TarredShards?
    /// Several weighted inputs (`input_cfg`); nil for one.
    let mixture: InputMixture?
    /// This process's share of each batch.
    public let share: DataShare
    /// Batches per epoch, when every rank must stop its epoch at the same count (tarred shards
    /// of different sizes); nil: all of them.
    public var epochLimit: Int? {
        didSet { cacheLock.lock(); epochCache = nil; cacheLock.unlock() }
    }
    private var epochCache: (epoch: Int, batches: [[Int]])?
    private let cacheLock = NSLock()

    /// `report` receives non-fatal findings (tar members no manifest line names); with
    /// `skip_bad_audio: false` they are errors instead.
    public init(settings: DataSettings, frontEnd: FilterbankFeatures, masks: BlockMaskSampler,
                sampleRate: Int, seed: UInt64, training: Bool, share: DataShare = .whole, report: @escaping (String) -> Void = { _ in }) throws {
        let skip = settings.skipBadAudio
        let tarred = try settings.tarred.map { t in
            try TarredShards(settings: t, world: share.ranks, rank: share.rank) { message in
                if !skip { throw NestError("\(message) (set skip_bad_audio: true to skip such members)") }
                report("warning: \(message)")
            }
        }
        self.tarred = tarred
        // Each manifest's shard_ids index its own input's shards (all of them with one input),
        // so a line naming a shard that does not exist is an error naming the line, never an
        // utterance silently left out.
        let shardRanges = tarred.map { t in
            settings.mixture.map { m in zip(m.inputs, t.inputShards).flatMap { paths, shards in Array(repeating: shards, count: paths.count) } }
                ?? Array(repeating: 0..<t.shards.count, count: settings.manifests.count)
        } ?? []
        manifest = try Manifest(paths: settings.manifests, minDuration: settings.minDuration, maxDuration: settings.maxDuration,
                                tarred: tarred != nil, shardRanges: shardRanges)
        guard !manifest.entries.isEmpty else {
            throw NestError("\(settings.manifests.joined(separator: ", ")): no usable entries (\(manifest.droppedTooShort) shorter than min_duration, \(manifest.droppedTooLong) longer than max_duration)")
        }
        let fileRanges = manifest.fileRanges
        mixture = try settings.mixture.map { m in
            // Each input's entries: the ranges of its manifest files, which follow one another.
            var files = fileRanges[...]
            let sources = try m.inputs.map { paths -> Range<Int> in
                let ranges = files.prefix(paths.count)
                files = files.dropFirst(paths.count)
                guard let first = ranges.first, let last = ranges.last, first.lowerBound < last.upperBound else {
                    throw NestError("\(paths.joined(separator: ", ")): an input of input_cfg has no usable utterances (after min_duration and max_duration)")
                }
                return first.lowerBound..<last.upperBound
            }
            return InputMixture(sources: sources, weights: m.weights, temperature: m.temperature)
        }
        noise = settings.noiseManifests.isEmpty ? nil : try Manifest(paths: settings.noiseManifests)
        self.settings = settings
        self.frontEnd = frontEnd
        self.masks = masks
        self.sampleRate = sampleRate
        self.seed = seed
        self.training = training
        self.share = share
        try tarred?.reportUnlisted(manifest.entries)
        if training && tarred == nil && batchesPerEpoch == 0 {
            throw NestError("\(settings.manifests.joined(separator: ", ")): \(manifest.entries.count) utterances make no complete batch "
                            + "(drop_last: true with batch_size \(settings.batchSize)\(settings.duration.map { ", batch_duration \($0.seconds) s and \($0.buckets) buckets (each drops its last batch)" } ?? ""))")
        }
    }

    public func batches(epoch: Int) -> [[Int]] {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let c = epochCache, c.epoch == epoch { return c.batches }
        let b: [[Int]]
        if let tarred {
            b = tarred.batches(entries: manifest.entries, batchSize: settings.batchSize, shuffle: settings.shuffle, dropLast: settings.dropLast,
                               seed: seed, epoch: epoch, duration: settings.duration, mixture: mixture)
        } else {
            // The global batch of all ranks: N × batch_size utterances, or N × batch_duration
            // seconds (and N × the utterance cap).
            let duration = settings.duration.map { d -> DurationBatching in
                var global = d
                global.seconds = d.seconds * Double(share.ranks)
                global.maxUtterances = d.maxUtterances.map { $0 * share.ranks }
                return global
            }
            let sampler = BatchSampler(batchSize: settings.batchSize * share.ranks, shuffle: settings.shuffle, dropLast: settings.dropLast,
                                       duration: duration, mixture: mixture)
            b = sampler.batches(durations: manifest.entries.map(\.duration), seed: seed, epoch: epoch)
        }
        let limited = epochLimit.map { Array(b.prefix($0)) } ?? b
        epochCache = (epoch, limited)
        return limited
    }

    /// The position after `p`, wrapping into the next epoch that has a batch (with batches by
    /// duration and `drop_last`, an epoch's count depends on its order and may be 0).
    public func next(after p: DataPosition) -> DataPosition {
        if p.index + 1 < batches(epoch: p.epoch).count { return DataPosition(epoch: p.epoch, index: p.index + 1) }
        var epoch = p.epoch + 1
        while batches(epoch: epoch).isEmpty && epoch < p.epoch + 100 { epoch += 1 }
        return DataPosition(epoch: epoch, index: 0)
    }

    public var batchesPerEpoch: Int { batches(epoch: 0).count }

    /// Makes the batch at `position`. Unreadable audio is skipped (reported in `skipped`) or,
    /// with `skip_bad_audio: false`, thrown.
    public func batch(at position: DataPosition) throws -> Batch {
        let all = batches(epoch: position.epoch)
        guard position.index < all.count else {
            throw NestError("\(settings.manifests.joined(separator: ", ")): epoch \(position.epoch) has \(all.count) batches, no batch \(position.index) "
                            + "(too few utterances for the batch settings: drop_last, batch_size, batch_duration and num_buckets)")
        }
        let global = all[position.index]
        // Plain files: this rank's slots of the global batch (none of a short last batch, maybe).
        let slots = tarred != nil ? 0..<global.count
            : settings.duration != nil ? share.evenSlots(of: global.count) : share.slots(batchSize: settings.batchSize, of: global.count)
        let batchKey = seed ^ (UInt64(position.epoch) &* 0xA24B_AED4_963E_E407) ^ (UInt64(position.index) &* 0x9FB2_1C65_1E98_DF25) ^ (training ? 0 : 0x7A11)
        let rankKey = tarred == nil ? 0 : UInt64(share.rank) << 32
        func slotRNG(_ slot: Int) -> RandomGenerator { RandomGenerator(seed: batchKey ^ ((rankKey | UInt64(slot + 1)) &* 0xC2B2_AE3D_27D4_EB4F)) }
        var audio: [[Float]] = [], origins: [String] = [], skipped: [String] = [], kept: [Int] = []
        for slot in slots {
            let e = manifest.entries[global[slot]]
            do {
                audio.append(try utterance(e))
                origins.append(e.origin)
                kept.append(slot)
            } catch {
                if !settings.skipBadAudio { throw NestError(file: e.audioPath, "\(error) (manifest line \(e.origin); set skip_bad_audio: true to skip such files)") }
                skipped.append("\(e.origin): \(error)")
            }
        }
        let lengths = audio.map(\.count)
        let rngs = kept.map(slotRNG)
        var noisy = audio
        if let augmentation = settings.augmentation {
            let augment = MultiSpeakerNoiseAugmentation(settings: augmentation)
            for (k, slot) in kept.enumerated() {
                // Another speaker may be any utterance of the global batch: one held here, or
                // one read for the purpose (unreadable: nil, and the utterance stays clean).
                noisy[k] = augment(audio[k], length: lengths[k], slot: slot, batchSize: global.count, rng: rngs[k].derived(4),
                                   speech: { j in kept.firstIndex(of: j).map { audio[$0] } ?? (try? self.utterance(self.manifest.entries[global[j]])) },
                                   noise: { n in self.noiseClip(samples: n, rng: rngs[k].derived(5)) }).noisy
            }
        }
        let nMax = lengths.max() ?? 0
        audio = audio.map { $0 + [Float](repeating: 0, count: nMax - $0.count) }
        noisy = noisy.map { $0 + [Float](repeating: 0, count: nMax - $0.count) }
        return Batch(position: position, audio: audio, noisy: noisy, lengths: lengths, frontEnd: frontEnd, masks: masks, slotRNGs: rngs,
                     dither: training, sampleRate: sampleRate, utterances: origins, skipped: skipped,
                     // Tarred shards: rank r's batch stands for rows r·b… of the step, so dropout differs across ranks
                     // (b: the utterance cap; 256 for batches by duration without one).
                     slots: tarred == nil ? kept : kept.map { share.rank * (settings.batchSize > 0 ? settings.batchSize : 256) + $0 })
    }

    /// An utterance's samples as training sees them: NeMo repeat-pads audio shorter than 1 s
    /// to exactly 1 s.
    func utterance(_ e: ManifestEntry) throws -> [Float] {
        let x = try read(e)
        return x.count < sampleRate && !x.isEmpty ? (0..<sampleRate).map { x[$0 % x.count] } : x
    }

    /// An utterance's samples, from its file or its tar member (the same decoder).
    func read(_ e: ManifestEntry) throws -> [Float] {
        let duration = e.offset > 0 ? e.duration : nil
        guard let tarred else { return try AudioFile.read(e.audioPath, offset: e.offset, duration: duration, sampleRate: sampleRate) }
        let member = try tarred.member(for: e)
        return try member.bytes.withUnsafeBytes { try AudioFile.read(.memory($0, name: member.name), offset: e.offset, duration: duration, sampleRate: sampleRate) }
    }

    /// A noise clip of up to `samples` samples (spec §3.1): a random entry, a random window
    /// when the file is longer, retried while silent; silent files get −90…−46 dB white noise.
    func noiseClip(samples: Int, rng: RandomGenerator) -> [Float]? {
        guard let noise, !noise.entries.isEmpty else { return nil }
        let seconds = Double(samples) / Double(sampleRate)
        for _ in 0..<20 {
            let e = noise.entries[rng.int(in: 0...(noise.entries.count - 1))]
            var clip: [Float]?
            if e.duration > seconds {
                for _ in 0..<100 {
                    let start = e.offset + rng.uniform(0, e.duration - seconds)
                    clip = try? AudioFile.read(e.audioPath, offset: start, duration: seconds, sampleRate: sampleRate)
                    // Energy, not NeMo's signed sum (which also rejects windows summing below 0).
                    if let c = clip, c.contains(where: { $0 != 0 }) { break }
                }
            } else {
                clip = try? AudioFile.read(e.audioPath, offset: e.offset, sampleRate: sampleRate)
            }
            guard var c = clip, !c.isEmpty else { continue }
            if !c.contains(where: { $0 != 0 }) {
                let level = Float(pow(10, rng.uniform(-90, -46) / 20))
                c = c.map { _ in level * Float(rng.normal()) }
            }
            return Array(c.prefix(samples))
        }
        return nil
    }
}

/// Which rows of each batch a process makes: rank `rank` of `ranks`.
public struct DataShare: Equatable, Sendable {
    public let ranks: Int
    public let rank: Int
    public static let whole = DataShare(ranks: 1, rank: 0)
    public init(ranks: Int, rank: Int) { self.ranks = ranks; self.rank = rank }

    /// This rank's slots of a global batch of `count` (`batchSize` per rank; a short last
    /// batch fills the first ranks).
    func slots(batchSize: Int, of count: Int) -> Range<Int> {
        min(rank * batchSize, count)..<min((rank + 1) * batchSize, count)
    }

    /// This rank's slots of a global batch of `count` whose size varies (duration batching):
    /// consecutive shares differing by at most one utterance.
    func evenSlots(of count: Int) -> Range<Int> {
        (rank * count / ranks)..<((rank + 1) * count / ranks)
    }
}

/// Makes batches ahead of the training step on a background thread, in order, so the step
/// never waits for data on a local disk.
public final class BatchPrefetcher: @unchecked Sendable {
    private let loader: BatchLoader
    private let depth: Int
    private let condition = NSCondition()
    private var queue: [(DataPosition, Result<Batch, Error>)] = []
    private var nextToMake: DataPosition
    private var stopped = false
    private var thread: Thread?

    public init(loader: BatchLoader, start: DataPosition, depth: Int = 2) {
        self.loader = loader
        self.depth = depth
        nextToMake = start
        let t = Thread { [weak self] in self?.run() }
        t.name = "nest-train data"
        thread = t
        t.start()
    }

    deinit { stop() }

    private func run() {
        while true {
            condition.lock()
            while queue.count >= depth && !stopped { condition.wait() }
            if stopped { condition.unlock(); return }
            let position = nextToMake
            nextToMake = loader.next(after: position)
            condition.unlock()
            let result = Result { try loader.batch(at: position) }
            condition.lock()
            queue.append((position, result))
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next batch in order, waiting until it is ready; nil when `stopRequested` turns true
    /// first (asked every 100 ms), so that a read blocked in the file system (a hung network
    /// mount) cannot hold up a stop.
    public func next(stopRequested: () -> Bool = { false }) throws -> Batch? {
        condition.lock()
        while queue.isEmpty {
            if stopRequested() { condition.unlock(); return nil }
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        let (_, result) = queue.removeFirst()
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }

    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
