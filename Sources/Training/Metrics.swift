import Basics
import Formats
import Foundation

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

    func append(_ row: MetricsRow) throws {
        handle.write(Data((row.json + "\n").utf8))
        events?.write(TensorBoardEvents.scalars(row.scalars, step: row.step, wallTime: Date().timeIntervalSince1970))
    }
}

/// One row of `metrics.jsonl`: the step, then typed values in the order they were added (rows
/// of one kind are therefore comparable line by line, and every value added is written).
struct MetricsRow {
    enum Value {
        case int(Int)
        case real(Double)
        case flag(Bool)
    }

    let step: Int
    private(set) var values: [(key: String, value: Value)] = []

    init(step: Int) { self.step = step }

    mutating func add(_ key: String, _ value: Double) { values.append((key, .real(value))) }
    mutating func add(_ key: String, _ value: Int) { values.append((key, .int(value))) }
    mutating func add(_ key: String, _ value: Bool) { values.append((key, .flag(value))) }

    /// A JSON object; a non-finite number is null.
    var json: String {
        let parts = ["\"step\": \(step)"] + values.map { key, value in
            switch value {
            case .int(let i): "\"\(key)\": \(i)"
            case .real(let d): "\"\(key)\": \(d.isFinite ? String(format: "%.9g", d) : "null")"
            case .flag(let b): "\"\(key)\": \(b)"
            }
        }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    /// TensorBoard scalars (a flag as 0 or 1; non-finite numbers left out).
    var scalars: [(tag: String, value: Float)] {
        values.compactMap { key, value in
            switch value {
            case .int(let i): (key, Float(i))
            case .real(let d): d.isFinite ? (key, Float(d)) : nil
            case .flag(let b): (key, b ? 1 : 0)
            }
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
