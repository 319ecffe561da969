import Foundation
import Formats

/// `metrics.jsonl`: one JSON object per logged step (and per validation), appended and flushed.
final class MetricsWriter {
    private let handle: FileHandle

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { throw NestError("\(path): cannot open for writing") }
        h.seekToEndOfFile()
        handle = h
    }

    func append(_ row: [String: Any]) throws {
        // Keys in a fixed order so rows are comparable line by line.
        let order = ["step", "loss", "masked_acc", "lr", "grad_norm", "masked_tokens", "audio_seconds", "step_seconds", "data_wait_seconds", "codebook_usage", "val_loss", "val_masked_acc"]
        let parts = order.compactMap { key -> String? in
            guard let v = row[key] else { return nil }
            switch v {
            case let d as Double: return "\"\(key)\": \(d.isFinite ? String(format: "%.9g", d) : "null")"
            default: return "\"\(key)\": \(v)"
            }
        }
        handle.write(Data(("{" + parts.joined(separator: ", ") + "}\n").utf8))
    }
}

/// A live progress line on a terminal; plain log lines otherwise.
final class ProgressLine {
    let total: Int
    let interactive = isatty(STDERR_FILENO) != 0
    let started = Date()
    var lastPrinted = Date.distantPast

    init(total: Int) { self.total = total }

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
