import Basics
import Foundation

/// One utterance of a NeMo JSON-lines manifest.
public struct ManifestEntry: Equatable {
    public var audioPath: String
    public var duration: Double
    public var offset: Double
    public var text: String?
    public var speaker: String?
    /// The tar shard holding `audioPath` (a member name) in a tarred manifest.
    public var shardID: Int? = nil
    /// Where the entry came from, for error messages: "file:line".
    public var origin: String

    public init(audioPath: String, duration: Double, offset: Double = 0, text: String? = nil, speaker: String? = nil, shardID: Int? = nil, origin: String) {
        self.audioPath = audioPath
        self.duration = duration
        self.offset = offset
        self.text = text
        self.speaker = speaker
        self.shardID = shardID
        self.origin = origin
    }
}

/// NeMo manifests: one JSON object per line with `audio_filepath` (absolute, or relative to the
/// manifest's folder), `duration` (seconds), optional `offset` and `text`.
public struct Manifest {
    public private(set) var entries: [ManifestEntry] = []
    /// The entries each path gave, in `paths` order.
    public private(set) var fileRanges: [Range<Int>] = []
    /// Entries left out by the duration filter.
    public private(set) var droppedTooShort = 0
    public private(set) var droppedTooLong = 0
    /// Non-fatal observations (duplicates), each naming file and line.
    public private(set) var warnings: [String] = []

    public var totalDuration: Double { entries.reduce(0) { $0 + $1.duration } }

    /// Reads and filters manifests; a malformed line is an error naming file and line.
    /// `tarred`: NeMo's tarred manifest, whose `audio_filepath` names a member of shard
    /// `shard_id` (required) and is kept as written. `shardRanges` (one per path, with several
    /// tarred inputs): the shard ids of the path's input, which its `shard_id`s index.
    public init(paths: [String], minDuration: Double? = nil, maxDuration: Double? = nil, tarred: Bool = false,
                shardRanges: [Range<Int>] = []) throws {
        precondition(shardRanges.isEmpty || shardRanges.count == paths.count, "one shard range per manifest")
        for (index, path) in paths.enumerated() {
            defer { fileRanges.append((fileRanges.last?.upperBound ?? 0)..<entries.count) }
            let data = try RegularFile.contents(path, what: "manifest")
            guard let text = String(data: data, encoding: .utf8) else { throw NestError("\(path): not UTF-8 text") }
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var seen: [String: Int] = [:]
            for (number, line) in Self.lines(of: text) {
                let origin = "\(path):\(number)"
                var entry = try Self.parse(line, origin: origin, folder: tarred ? nil : folder)
                if let first = seen[line] {
                    warnings.append("\(origin): duplicate of line \(first)")
                } else {
                    seen[line] = number
                }
                entry.origin = origin
                if let id = entry.shardID, !shardRanges.isEmpty {
                    let input = shardRanges[index]
                    guard id < input.count else {
                        throw NestError("\(origin): shard_id \(id) is not among the \(input.count) shards of this input's tarred_audio_filepaths "
                                        + "(shard ids count from 0): its utterance could never be read; correct the line or the shard list")
                    }
                    entry.shardID = input.lowerBound + id
                }
                if let minDuration, entry.duration < minDuration { droppedTooShort += 1; continue }
                if let maxDuration, entry.duration > maxDuration { droppedTooLong += 1; continue }
                entries.append(entry)
            }
        }
    }

    /// The non-blank lines of a JSON-lines text, trimmed, with their 1-based numbers. Lines end
    /// at "\n", "\r\n" or "\r", as Python's text files (NeMo's reader) split them; Swift reads
    /// "\r\n" as one character, so splitting on "\n" alone would see a CRLF file as one line.
    public static func lines(of text: String) -> [(number: Int, text: String)] {
        text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }.enumerated().compactMap { i, raw in
            let line = raw.trimmingCharacters(in: .whitespaces)
            return line.isEmpty ? nil : (i + 1, line)
        }
    }

    static func parse(_ line: String, origin: String, folder: String?) throws -> ManifestEntry {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(line.utf8)) } catch {
            throw NestError("\(origin): invalid JSON")
        }
        guard let dict = object as? [String: Any] else { throw NestError("\(origin): expected a JSON object") }
        guard let path = dict["audio_filepath"] as? String, !path.isEmpty else {
            throw NestError("\(origin): missing audio_filepath")
        }
        func number(_ key: String) throws -> Double? {
            guard let v = dict[key], !(v is NSNull) else { return nil }
            // JSON true/false arrive as Bool; numbers as NSNumber (which also casts to Bool on Linux).
            if type(of: v) != Bool.self, let n = v as? NSNumber { return n.doubleValue }
            throw NestError("\(origin): \(key) must be a number")
        }
        guard let duration = try number("duration") else { throw NestError("\(origin): missing duration") }
        guard duration.isFinite, duration > 0, duration <= 86_400 else {
            throw NestError("\(origin): duration \(duration) s is not in (0, 86400]")
        }
        let offset = try number("offset") ?? 0
        guard offset.isFinite, offset >= 0 else { throw NestError("\(origin): offset \(offset) must be ≥ 0") }
        var shardID: Int?
        if folder == nil {
            guard let id = try number("shard_id"), id >= 0, id == id.rounded(), id < 1e9 else {
                throw NestError("\(origin): a tarred manifest line needs shard_id (a non-negative integer)")
            }
            shardID = Int(id)
        }
        return ManifestEntry(audioPath: folder.map { resolve(path, folder: $0) } ?? path, duration: duration, offset: offset,
                             text: dict["text"] as? String, speaker: (dict["speaker"] as? String) ?? (dict["speaker"] as? NSNumber)?.stringValue,
                             shardID: shardID, origin: origin)
    }

    /// NeMo's rule: an absolute path as is; a relative one against the manifest's folder when
    /// the file is there, otherwise as given (relative to the working directory).
    static func resolve(_ path: String, folder: String) -> String {
        if path.hasPrefix("/") { return path }
        let candidate = URL(fileURLWithPath: folder).appendingPathComponent(path).path
        if FileManager.default.fileExists(atPath: candidate) || !FileManager.default.fileExists(atPath: path) { return candidate }
        return path
    }
}


