import Basics
import Foundation

/// A run's folder (`exp_dir/name`): checkpoints as `checkpoints/step-NNNNNNNN.h5` and
/// `metrics.jsonl`. Keeps the newest checkpoint plus the best `save_top_k` by validation loss,
/// deleting others only after a newer one is safely on disk.
public struct RunFolder {
    public let path: String
    public var checkpointsPath: String { path + "/checkpoints" }
    public var metricsPath: String { path + "/metrics.jsonl" }

    public init(path: String) { self.path = path }

    public func create() throws {
        try FileManager.default.createDirectory(atPath: checkpointsPath, withIntermediateDirectories: true)
    }

    /// Partial files of writers that died mid-write (checkpoint-sized at worst), from the
    /// checkpoints and the folder itself; see `AtomicFile.removeStaleTemporaries`.
    public func removeStaleTemporaries() -> [(file: String, pid: Int32)] {
        AtomicFile.removeStaleTemporaries(in: checkpointsPath) + AtomicFile.removeStaleTemporaries(in: path)
    }

    public func checkpointPath(step: Int) -> String { checkpointsPath + String(format: "/step-%08d.h5", step) }

    /// Checkpoint files, newest step first.
    public func checkpoints() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointsPath)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".h5"), let step = Int(name.dropFirst(5).dropLast(3)) else { return nil }
            return (step, checkpointsPath + "/" + name)
        }.sorted { $0.0 > $1.0 }
    }

    /// Removes checkpoints that are neither the newest nor among the best `topK` by `valLoss`.
    public func prune(valLosses: [Int: Double], topK: Int) {
        let all = checkpoints()
        guard let newest = all.first else { return }
        let best = all.filter { valLosses[$0.step] != nil }.sorted { valLosses[$0.step]! < valLosses[$1.step]! }.prefix(max(topK, 0))
        let keep = Set([newest.step] + best.map(\.step))
        for c in all where !keep.contains(c.step) { try? FileManager.default.removeItem(atPath: c.path) }
    }

    /// Keeps only metric rows up to `step` (after a resume), rewriting the file atomically.
    public func truncateMetrics(after step: Int) throws {
        guard let data = FileManager.default.contents(atPath: metricsPath), let text = String(data: data, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = obj["step"] as? Int else { return false }
            return s <= step
        }
        try AtomicFile.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: metricsPath)
    }
}
