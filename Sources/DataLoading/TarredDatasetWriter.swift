import Basics
import Formats
import Audio
import Foundation
import Tensor

/// `nest-train tar`: NeMo's `convert_to_tarred_audio_dataset.py` for users without NeMo. Entries
/// are shuffled with a seed (NeMo's `--shuffle --shuffle_seed`), split into `shards` equal runs
/// (the remainder is dropped, as NeMo does, and reported), and each run is written as
/// `audio_<shard>.tar` holding the audio files as they are, under NeMo's squashed names (path
/// without extension, `/` and `.` made `_`). A file named by several entries (other offsets) is
/// stored once and later entries get `-subN` names, as NeMo writes them.
/// `tarred_audio_manifest.json` keeps every key of each entry, with `audio_filepath` the
/// member name and `shard_id` added. Shards are written under temporary names and renamed.
public enum TarredDatasetWriter {
    public struct Summary { public let shards: Int, entries: Int, dropped: Int }

    public static func write(manifest path: String, output: String, shards: Int, workers: Int, seed: UInt64 = 1) throws -> Summary {
        guard shards >= 1 else { throw NestError("--shards must be at least 1") }
        let parsed = try Manifest(paths: [path])   // validates every line, resolves relative paths
        let text = String(decoding: try RegularFile.contents(path), as: UTF8.self)
        let lines = Manifest.lines(of: text).map(\.text)
        guard lines.count == parsed.entries.count else { throw NestError(file: path, "could not pair lines and entries") }
        var order = RandomGenerator(seed: seed).permutation(lines.count)
        let perShard = order.count / shards
        guard perShard > 0 else { throw NestError(file: path, "\(order.count) entries cannot fill \(shards) shards") }
        let dropped = order.count - perShard * shards
        order = Array(order.prefix(perShard * shards))
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        var manifests = [[String]](repeating: [], count: shards)
        var failure: Error?
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: max(1, min(workers, shards))) { worker in
            for shard in stride(from: worker, to: shards, by: max(1, min(workers, shards))) {
                do {
                    let lines = try writeShard(shard, entries: order[(shard * perShard)..<((shard + 1) * perShard)].map { (lines[$0], parsed.entries[$0]) }, output: output)
                    lock.lock(); manifests[shard] = lines; lock.unlock()
                } catch {
                    lock.lock(); failure = failure ?? error; lock.unlock()
                }
            }
        }
        if let failure { throw failure }
        let manifestPath = output + "/tarred_audio_manifest.json"
        try AtomicFile.write(Data((manifests.joined().joined(separator: "\n") + "\n").utf8), to: manifestPath)
        return Summary(shards: shards, entries: perShard * shards, dropped: dropped)
    }

    /// Writes one shard; returns its manifest lines.
    static func writeShard(_ shard: Int, entries: [(line: String, entry: ManifestEntry)], output: String) throws -> [String] {
        let tarPath = output + "/audio_\(shard).tar"
        var lines: [String] = []
        try AtomicFile.write(to: tarPath) { temporary in
            guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
                throw NestError(file: temporary, "cannot create")
            }
            defer { try? handle.close() }
            lines = try writeMembers(entries, shard: shard, to: handle)
        }
        return lines
    }

    /// The entries' audio as tar members (a file name repeated becomes `-subN`, as NeMo's
    /// tarring script names them), and their manifest lines naming the members.
    private static func writeMembers(_ entries: [(line: String, entry: ManifestEntry)], shard: Int, to handle: FileHandle) throws -> [String] {
        var count: [String: Int] = [:], lines: [String] = []
        for (line, entry) in entries {
            let ext = (entry.audioPath as NSString).pathExtension
            let base = (entry.audioPath as NSString).deletingPathExtension.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ".", with: "_")
            let squashed = ext.isEmpty ? base : "\(base).\(ext)"
            let member: String
            if let n = count[squashed] {
                member = ext.isEmpty ? "\(base)-sub\(n)" : "\(base)-sub\(n).\(ext)"
                count[squashed] = n + 1
            } else {
                let body: Data
                do { body = try RegularFile.contents(entry.audioPath) } catch { throw NestError("\(entry.origin): \(error)") }
                try handle.write(contentsOf: TarWriter.member(squashed, body))
                member = squashed
                count[squashed] = 1
            }
            guard var object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { throw NestError("\(entry.origin): not an object") }
            object["audio_filepath"] = member
            object["shard_id"] = shard
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
        try handle.write(contentsOf: TarWriter.end)
        return lines
    }
}
