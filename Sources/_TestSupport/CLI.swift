import Foundation
import HDF5
import XCTest
import Formats

/// Runs the built `nest-train` binary (release build next to the tests) on the tiny config.
public enum CLI {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var binary: String {
        for config in ["release", "debug"] {
            let p = root.appendingPathComponent(".build/\(config)/nest-train").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return root.appendingPathComponent(".build/release/nest-train").path
    }

    public struct Result {
        public let status: Int32, stdout: String, stderr: String
        public init(status: Int32, stdout: String, stderr: String) { (self.status, self.stdout, self.stderr) = (status, stdout, stderr) }
    }

    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String] = [:], removing: [String] = [], executable: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable ?? binary)
        process.arguments = arguments
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.filter { !removing.contains($0.key) }.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// `mpirun` on this machine as CI runs it: as root, ranks unbound (`--threads 1` keeps each
    /// to one core), oversubscribed when there are more ranks than cores, the shared-memory
    /// transport without probing for fabrics, and a timeout so a hung job fails instead of
    /// hanging the suite.
    public static func mpirunArguments(ranks: Int, _ arguments: [String]) -> [String] {
        ["-np", "\(ranks)", "--bind-to", "none", "--oversubscribe", "--timeout", "300", binary] + arguments
    }

    public static let mpiEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_pml": "ob1",
                                 "OMPI_MCA_btl_vader_single_copy_mechanism": "none"]

    public static func mpirun(ranks: Int, _ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        try run(mpirunArguments(ranks: ranks, arguments), environment: mpiEnvironment.merging(environment) { $1 }, executable: "/usr/bin/mpirun")
    }

    /// Starts `mpirun` without waiting (output discarded).
    public static func startMPIRun(ranks: Int, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        process.arguments = mpirunArguments(ranks: ranks, arguments)
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.merging(mpiEnvironment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Process ids whose parent is `parent` (from /proc).
    public static func childProcesses(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == parent
        }
    }

    /// Makes the tiny corpus (idempotent) that Configs/tiny.yaml reads.
    public static func ensureTinyCorpus() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "Data/make_demo_corpus.py", "--tiny-only"]
        p.currentDirectoryURL = root
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw NSError(domain: "Data/make_demo_corpus.py --tiny-only failed (are espeak-ng and sox installed? run make setup)", code: Int(p.terminationStatus)) }
    }

    /// A mono float32 WAV at 16 kHz.
    public static func writeWAV(_ samples: [Float], to path: String) throws {
        var d = Data()
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
        d.append(contentsOf: Array("RIFF".utf8)); u32(36 + samples.count * 4); d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(3); u16(1); u32(16000); u32(64000); u16(4); u16(32)
        d.append(contentsOf: Array("data".utf8)); u32(samples.count * 4)
        samples.withUnsafeBytes { d.append(contentsOf: $0) }
        try d.write(to: URL(fileURLWithPath: path))
    }

    public static func temporaryDirectory() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nest-train-tests-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// All datasets under /weights and /optimizer of a checkpoint, by name.
    public static func tensors(_ path: String) throws -> [String: ArrayData] {
        let f = try HDF5File(path: path, mode: .readOnly)
        var out: [String: ArrayData] = [:]
        for group in ["/weights", "/optimizer/exp_avg", "/optimizer/exp_avg_sq"] {
            for name in try f.datasetNames(in: group) { out["\(group)/\(name)"] = try f.read("\(group)/\(name)") }
        }
        for name in try f.datasetNames(in: "/state") where name != "val_loss" { out["/state/\(name)"] = try f.read("/state/\(name)") }
        return out
    }

    /// metrics.jsonl training rows without wall-clock fields.
    public static func trainingRows(_ runFolder: String) throws -> [String] {
        let text = try String(contentsOfFile: runFolder + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.contains("val_loss") }.map {
            $0.replacingOccurrences(of: #""(step_seconds|data_wait_seconds|comm_seconds|exposed_comm_seconds)": [^,}]+, "#, with: "", options: .regularExpression)
        }
    }
}
