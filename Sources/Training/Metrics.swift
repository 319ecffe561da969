import Foundation
import Formats

/// `metrics.jsonl`: one JSON object per logged step (and per validation), appended and flushed;
/// and, unless turned off, the same values as TensorBoard scalars in an event file of the run
/// folder (a new file per start, as TensorBoard expects of a resumed run; written as each row
/// is, so a kill leaves at most a torn last record, which TensorBoard skips).
final class MetricsWriter {
    private let handle: FileHandle
    private let events: FileHandle?

    init(path: String, tensorBoardFolder: String?) throws {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw NestError("\(path): cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
        events = try tensorBoardFolder.map { folder in
            let now = Date().timeIntervalSince1970
            let file = "\(folder)/events.out.tfevents.\(Int(now)).\(ProcessInfo.processInfo.hostName).\(getpid())"
            guard FileManager.default.createFile(atPath: file, contents: TensorBoardEvents.fileVersion(wallTime: now)),
                  let e = FileHandle(forWritingAtPath: file) else { throw NestError("\(file): cannot create the TensorBoard event file") }
            e.seekToEndOfFile()
            return e
        }
    }

    func append(_ row: [String: Any]) throws {
        // Keys in a fixed order so rows are comparable line by line.
        let order = ["step", "loss", "masked_acc", "lr", "grad_norm", "masked_tokens", "audio_seconds", "step_seconds", "data_wait_seconds", "codebook_usage",
                     "comm_seconds", "exposed_comm_seconds", "world_size", "replicas_agree",
                     "val_loss", "val_loss_se", "val_masked_acc", "val_masked_acc_se", "val_prior_acc", "val_prior_acc_se", "val_target_entropy",
                     "val_target_entropy_se", "val_info_gain", "val_info_gain_se", "val_nonsilent_acc", "val_majority_share", "val_codebook_usage",
                     "val_masked_tokens", "val_mask_draws", "val_augmented"]
        let parts = order.compactMap { key -> String? in
            guard let v = row[key] else { return nil }
            switch v {
            case let d as Double: return "\"\(key)\": \(d.isFinite ? String(format: "%.9g", d) : "null")"
            default: return "\"\(key)\": \(v)"
            }
        }
        handle.write(Data(("{" + parts.joined(separator: ", ") + "}\n").utf8))
        if let events, let step = row["step"] as? Int {
            let scalars: [(tag: String, value: Float)] = order.compactMap { key in
                guard key != "step", let v = row[key] else { return nil }
                switch v {
                case let d as Double: return d.isFinite ? (key, Float(d)) : nil
                case let i as Int: return (key, Float(i))
                case let b as Bool: return (key, b ? 1 : 0)
                default: return nil
                }
            }
            events.write(TensorBoardEvents.scalars(scalars, step: step, wallTime: Date().timeIntervalSince1970))
        }
    }
}

/// A live progress line on a terminal; plain log lines otherwise.
final class ProgressLine {
    let total: Int
    let interactive: Bool
    let started = Date()
    var lastPrinted = Date.distantPast

    /// `live`: whether this process may draw the live line (rank 0 of a job, on a terminal).
    init(total: Int, live: Bool) {
        self.total = total
        interactive = live && isatty(STDERR_FILENO) != 0
    }

    func update(step: Int, loss: Double, accuracy: Double, lr: Double, audioPerSecond: Double, log: (String) -> Void) {
        let now = Date()
        let elapsed = now.timeIntervalSince(started)
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        let text = String(format: "step %d/%d  loss %.4f  acc %.3f  lr %.3g  %.1f audio-s/s  ETA %@", step, total, loss, accuracy, lr,
                          audioPerSecond, Self.duration(eta))
        if interactive {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
        } else if now.timeIntervalSince(lastPrinted) >= 10 || step == total {
            log(text)
            lastPrinted = now
        }
    }

    func finish(log: (String) -> Void) {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}
