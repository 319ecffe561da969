import Foundation
import HDF5
import XCTest
import Formats

/// Runs the built `nest-train` binary (release build next to the tests) on the tiny config.
enum CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binary: String {
        for config in ["release", "debug"] {
            let p = root.appendingPathComponent(".build/\(config)/nest-train").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return root.appendingPathComponent(".build/release/nest-train").path
    }

    struct Result { let status: Int32; let stdout: String; let stderr: String }

    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], removing: [String] = []) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
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

    /// Makes the tiny corpus (idempotent) that Configs/tiny.yaml reads.
    static func ensureTinyCorpus() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "Data/make_demo_corpus.py", "--tiny-only"]
        p.currentDirectoryURL = root
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw NSError(domain: "Data/make_demo_corpus.py --tiny-only failed (are espeak-ng and sox installed? run make setup)", code: Int(p.terminationStatus)) }
    }

    static func temporaryDirectory() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nest-train-tests-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// All datasets under /weights and /optimizer of a checkpoint, by name.
    static func tensors(_ path: String) throws -> [String: ArrayData] {
        let f = try HDF5File(path: path, mode: .readOnly)
        var out: [String: ArrayData] = [:]
        for group in ["/weights", "/optimizer/exp_avg", "/optimizer/exp_avg_sq"] {
            for name in try f.datasetNames(in: group) { out["\(group)/\(name)"] = try f.read("\(group)/\(name)") }
        }
        for name in try f.datasetNames(in: "/state") where name != "val_loss" { out["/state/\(name)"] = try f.read("/state/\(name)") }
        return out
    }

    /// metrics.jsonl training rows without wall-clock fields.
    static func trainingRows(_ runFolder: String) throws -> [String] {
        let text = try String(contentsOfFile: runFolder + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.contains("val_loss") }.map {
            $0.replacingOccurrences(of: #""(step_seconds|data_wait_seconds|comm_seconds|exposed_comm_seconds)": [^,}]+, "#, with: "", options: .regularExpression)
        }
    }
}
