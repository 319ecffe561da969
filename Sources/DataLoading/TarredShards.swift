import Basics
import Formats
import Audio
import Foundation
import Tensor

/// NeMo's tarred audio datasets (`is_tarred: true`), read unchanged: the shards named by
/// `tarred_audio_filepaths` (NeMo's brace expansion), a tarred manifest whose `audio_filepath`
/// names a member of shard `shard_id`, members decoded straight from the memory-mapped tar
/// (never extracted). A shard's member index is built the first time the shard is read.
///
/// Order of an epoch (deterministic from seed, epoch and the rank layout, so resume is exact):
/// this rank's shards, shuffled per epoch when `shuffle` is on (with `replicate`, each rank
/// its own order); the entries of each shard in manifest order, one shard after another;
/// a shuffle buffer of `shuffle_n` entries as WebDataset's (fill, then emit a random slot and
/// refill it); consecutive entries form batches. Plain manifests are instead bucketed by
/// duration (BatchSampler); the two orders differ.
public final class TarredShards: @unchecked Sendable {
    public enum Strategy: String { case scatter, replicate }

    public struct Settings: Equatable {
        /// Patterns or lists as given (one per bucket); expanded by `expand`.
        public var filepaths: [String]
        public var strategy: Strategy = .scatter
        public var shuffleN = 0
        /// With several inputs (`input_cfg`), how many of `filepaths` belong to each input, in
        /// order; one input when empty.
        public var inputPatterns: [Int] = []

        public init(filepaths: [String], strategy: Strategy = .scatter, shuffleN: Int = 0, inputPatterns: [Int] = []) {
            self.filepaths = filepaths
            self.strategy = strategy
            self.shuffleN = shuffleN
            self.inputPatterns = inputPatterns
        }
    }

    /// Every shard, indexed by `shard_id` (several inputs' shards one after another: an input's
    /// own `shard_id` plus its offset, `inputShards[i].lowerBound`).
    public let shards: [String]
    /// Each input's shard ids.
    public let inputShards: [Range<Int>]
    /// The shard ids this rank reads, per input (each input scattered or replicated alone).
    public let assignedByInput: [[Int]]
    public var assigned: [Int] { assignedByInput.flatMap { $0 } }
    /// Entries in the shuffle buffer (0: none).
    public let shuffleN: Int
    let rank: Int
    private var indices: [Int: Result<[String: Bytes], NestError>] = [:]
    private let lock = NSLock()
    /// Reports made while indexing (members without a manifest line).
    private let report: (String) throws -> Void

    public init(settings: Settings, world: Int = 1, rank: Int = 0, report: @escaping (String) throws -> Void) throws {
        var patterns = settings.filepaths[...], ranges: [Range<Int>] = [], all: [String] = []
        for count in settings.inputPatterns.isEmpty ? [settings.filepaths.count] : settings.inputPatterns {
            let expanded = patterns.prefix(count).flatMap(Self.expand)
            patterns = patterns.dropFirst(count)
            guard !expanded.isEmpty else { throw NestError("tarred_audio_filepaths names no shards") }
            ranges.append(all.count..<(all.count + expanded.count))
            all += expanded
        }
        shards = all
        inputShards = ranges
        assignedByInput = try ranges.map { r in try Self.assign(shards: r.count, strategy: settings.strategy, world: world, rank: rank).map { r.lowerBound + $0 } }
        shuffleN = settings.shuffleN
        self.rank = rank
        self.report = report
    }

    /// NeMo's brace expansion: `(`, `[`, `<` and `_OP_` stand for `{`, and `)`, `]`, `>` and
    /// `_CL_` for `}`; `{a..b}` counts (keeping zero padding), `{x,y}` alternates, nested and
    /// repeated braces multiply out, left to right.
    public static func expand(_ pattern: String) -> [String] {
        var p = pattern
        for open in ["(", "[", "<", "_OP_"] { p = p.replacingOccurrences(of: open, with: "{") }
        for close in [")", "]", ">", "_CL_"] { p = p.replacingOccurrences(of: close, with: "}") }
        return expandBraces(Array(p))
    }

    private static func expandBraces(_ chars: [Character]) -> [String] {
        guard let open = chars.firstIndex(of: "{") else { return [String(chars)] }
        var depth = 0, close = -1
        for i in open..<chars.count {
            if chars[i] == "{" { depth += 1 } else if chars[i] == "}" { depth -= 1; if depth == 0 { close = i; break } }
        }
        guard close > open else { return [String(chars)] }   // unbalanced: literal, as braceexpand leaves it
        let prefix = String(chars[..<open]), body = Array(chars[(open + 1)..<close])
        let suffixes = expandBraces(Array(chars[(close + 1)...]))
        var alternatives: [String]
        let text = String(body)
        let range = text.components(separatedBy: "..")
        if range.count == 2, let a = Int(range[0]), let b = Int(range[1]) {
            let width = range[0].count == range[1].count && range[0].hasPrefix("0") ? range[0].count : 0
            alternatives = (a <= b ? Array(a...b) : Array((b...a).reversed())).map { n in
                let s = String(n)
                return width > s.count ? String(repeating: "0", count: width - s.count) + s : s
            }
        } else {
            // Split on top-level commas.
            var parts: [[Character]] = [[]], level = 0
            for c in body {
                if c == "{" { level += 1 } else if c == "}" { level -= 1 }
                if c == ",", level == 0 { parts.append([]) } else { parts[parts.count - 1].append(c) }
            }
            alternatives = parts.count == 1 ? ["{" + String(body) + "}"] : parts.flatMap(expandBraces)
        }
        return alternatives.flatMap { a in suffixes.map { prefix + a + $0 } }
    }

    /// NeMo's `expand_sharded_filepaths`: with `scatter`, rank r of W takes the contiguous block
    /// [⌊S/W⌋·r, ⌊S/W⌋·(r+1)) (the last S mod W shards are read by nobody, as in NeMo); with
    /// `replicate`, every rank reads all. Fewer shards than ranks is an error under scatter.
    public static func assign(shards: Int, strategy: Strategy, world: Int, rank: Int) throws -> [Int] {
        guard world >= 1, (0..<world).contains(rank) else { throw NestError("rank \(rank) of \(world) is not a valid rank layout") }
        guard strategy == .scatter, world > 1 else { return Array(0..<shards) }
        guard shards >= world else {
            throw NestError("shard_strategy scatter needs at least one shard per rank: \(shards) shards for \(world) ranks (use replicate, or more shards)")
        }
        let per = shards / world
        return Array((per * rank)..<(per * (rank + 1)))
    }

    /// The batches of one epoch as entry indices (the order rule above): consecutive entries of
    /// that order, `batchSize` at a time, or packed by seconds of audio (`duration`: this
    /// rank's own batches of `batch_duration`, bucketed, as each rank of NeMo's Lhotse loader
    /// packs its own shards). With several weighted inputs (`mixture`), each input's walk is
    /// that order over its own shards, and the mixture draws from the walks.
    public func batches(entries: [ManifestEntry], batchSize: Int, shuffle: Bool, dropLast: Bool, seed: UInt64, epoch: Int,
                        duration: DurationBatching? = nil, mixture: InputMixture? = nil) -> [[Int]] {
        let rng = RandomGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9 &+ UInt64(rank) &* 0xD1B5_4A32_D192_ED03)
        var byShard: [Int: [Int]] = [:]
        for (i, e) in entries.enumerated() { if let s = e.shardID { byShard[s, default: []].append(i) } }
        let order: [Int]
        if let mixture {
            let draws = assigned.reduce(0) { $0 + (byShard[$1]?.count ?? 0) }
            order = mixture.order(seed: seed &+ UInt64(rank) &* 0xD1B5_4A32_D192_ED03, epoch: epoch, draws: draws) { i, passRNG in
                walk(shards: assignedByInput[i], byShard: byShard, shuffle: shuffle, rng: passRNG)
            }
        } else {
            order = walk(shards: assigned, byShard: byShard, shuffle: shuffle, rng: rng)
        }
        if let duration {
            let packed = duration.batches(order: order, durations: entries.map(\.duration), dropLast: dropLast)
            return shuffle ? rng.permutation(packed.count).map { packed[$0] } : packed
        }
        var batches = stride(from: 0, to: order.count, by: max(batchSize, 1)).map { Array(order[$0..<min(order.count, $0 + batchSize)]) }
        if dropLast, let last = batches.last, last.count < batchSize { batches.removeLast() }
        return batches
    }

    /// One pass over `shards`: shuffled when `shuffle` is on, each shard's entries in manifest
    /// order, through the `shuffle_n` buffer.
    func walk(shards: [Int], byShard: [Int: [Int]], shuffle: Bool, rng: RandomGenerator) -> [Int] {
        let shardOrder = shuffle ? rng.permutation(shards.count).map { shards[$0] } : shards
        let stream = shardOrder.flatMap { byShard[$0] ?? [] }
        guard shuffle && shuffleN > 1 else { return stream }
        var order: [Int] = [], buffer: [Int] = []
        for i in stream {
            if buffer.count < shuffleN { buffer.append(i); continue }
            let j = rng.int(in: 0...(buffer.count - 1))
            order.append(buffer[j])
            buffer[j] = i
        }
        return order + rng.permutation(buffer.count).map { buffer[$0] }
    }

    /// NeMo's file id: the member's base name without extension, a `-subN` suffix (repeated
    /// entries of one file with other offsets) removed.
    static func fileID(_ name: String) -> String {
        var base = (name as NSString).lastPathComponent
        if let dot = base.lastIndex(of: ".") { base = String(base[..<dot]) }
        if let sub = base.range(of: "-sub", options: .backwards), base[sub.upperBound...].allSatisfy(\.isNumber), !base[sub.upperBound...].isEmpty {
            base = String(base[..<sub.lowerBound])
        }
        return base
    }

    /// The encoded bytes of `entry`'s member; errors name the shard and the member.
    public func member(for entry: ManifestEntry) throws -> (bytes: Bytes, name: String) {
        guard let id = entry.shardID, id < shards.count else {
            throw NestError("\(entry.origin): shard_id \(entry.shardID ?? -1) is not among the \(shards.count) shards of tarred_audio_filepaths")
        }
        let index = try self.index(id)
        guard let bytes = index[Self.fileID(entry.audioPath)] else {
            throw NestError("\(shards[id]): no member \(entry.audioPath) (named by \(entry.origin))")
        }
        return (bytes, "\(shards[id]):\(entry.audioPath)")
    }

    /// The member index of shard `id` (file id → bytes), built once; a shard that cannot be
    /// read stays an error (reported for each entry that needs it, never retried).
    func index(_ id: Int) throws -> [String: Bytes] {
        lock.lock()
        if let known = indices[id] { lock.unlock(); return try known.get() }
        lock.unlock()
        let result: Result<[String: Bytes], NestError>
        do {
            let tar = try TarReader(try Bytes.mapping(shards[id]))
            var index: [String: Bytes] = [:]
            for (name, body) in tar.members { index[Self.fileID(name)] = body }
            result = .success(index)
        } catch let error as NestError {
            result = .failure(NestError("shard \(error.description)"))   // the message starts with the shard's path
        } catch {
            result = .failure(NestError("shard \(shards[id]): \(error)"))
        }
        lock.lock()
        indices[id] = result
        lock.unlock()
        return try result.get()
    }

    /// Members of this rank's shards that no manifest line names: reported once each (fatal
    /// through `report` when bad audio is not skipped). Reads every assigned shard's index.
    public func reportUnlisted(_ entries: [ManifestEntry]) throws {
        var listed: [Int: Set<String>] = [:]
        for e in entries { if let s = e.shardID { listed[s, default: []].insert(Self.fileID(e.audioPath)) } }
        for id in assigned {
            guard let index = try? index(id) else { continue }   // an unreadable shard is reported when its entries are read
            for name in index.keys.sorted() where !(listed[id]?.contains(name) ?? false) {
                try report("\(shards[id]): member \(name) has no line in the tarred manifest")
            }
        }
    }
}
