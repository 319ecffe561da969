import Foundation
import Tensor
import XCTest
import _TestSupport

/// A started nest-train runs the best OpenBLAS kernel its CPU allows, whatever OpenBLAS picked
/// by itself, and the AVX2 path a user can force (as an AVX2-only server would take it) trains.
final class PlatformSelectionTests: XCTestCase {
    /// The variables that steer the choice; each case sets what it needs.
    let steering = ["OPENBLAS_CORETYPE", "NEST_TRAIN_BLAS_CORETYPE", "NEST_TRAIN_MAX_ISA"]

    func platform(_ r: CLI.Result) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(json?["platform"] as? [String: Any], r.stdout)
    }

    func testUnsetEnvironmentGetsTheKernelOfTheCPUsLevel() throws {
        let cpu = CPU.current
        let p = try platform(try CLI.run(["info", "--json"], removing: steering))
        XCTAssertEqual(p["blas_kernel_isa"] as? String, cpu.isa.description, "\(p)")
        XCTAssertEqual(p["cpu_isa"] as? String, cpu.isa.description)
    }

    func testForcedAVX2PathTrains() throws {
        try CLI.ensureTinyCorpus()
        let r = try CLI.run(["bench", "--config", "Configs/tiny.yaml", "--mode", "train", "--batch", "1", "--seconds", "2", "--steps", "1", "--warmup", "0"],
                            environment: ["NEST_TRAIN_MAX_ISA": "avx2"], removing: steering)
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        XCTAssertEqual(json["blas_kernel_isa"] as? String, min(CPU.current.isa, .avx2).description, "\(json)")
        let loss = try XCTUnwrap((json["losses"] as? [Double])?.first)
        XCTAssertTrue(loss.isFinite && loss > 0, "\(loss)")
    }

    /// Threads follow the cores the process may run on (taskset, cpusets, launcher bindings),
    /// not the machine's count.
    func testThreadsFollowTheAffinityMask() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        p.arguments = ["-c", "0", CLI.binary, "info", "--json"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual((json["platform"] as? [String: Any])?["threads"] as? Int, 1, String(decoding: data, as: UTF8.self))
    }

    func testAUsersSlowerSettingIsKeptAndNamedOnce() throws {
        // Haswell where the CPU runs it (a slower choice than its own on AVX-512), else the baseline.
        let cpu = CPU.current, core = cpu.isa >= .avx2 ? "Haswell" : "Prescott"
        let r = try CLI.run(["info", "--json"], environment: ["OPENBLAS_CORETYPE": core], removing: steering)
        XCTAssertEqual(try platform(r)["blas_kernel"] as? String, core)
        let warnings = r.stderr.components(separatedBy: "OPENBLAS_CORETYPE=\(core) is set").count - 1
        XCTAssertEqual(warnings, BLASKernel.isa(ofCore: core) < cpu.isa ? 1 : 0, r.stderr)
    }
}
