import Tensor
import XCTest

/// The OpenBLAS kernel choice: the decision rule, and the instruction-set levels it rests on.
/// (The end-to-end check, a started `nest-train` running the kernel its CPU allows, is in
/// TrainingTests/PlatformSelectionTests.)
final class PlatformTests: XCTestCase {
    let avx512: Set<String> = ["sse3", "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl"]

    func testLevelsFollowTheFeatures() {
        XCTAssertEqual(CPU.level(of: avx512), .avx512)
        XCTAssertEqual(CPU.level(of: avx512.subtracting(["avx512vl"])), .avx2, "AVX-512 without VL is not SkylakeX's level")
        XCTAssertEqual(CPU.level(of: ["sse3", "avx", "fma", "avx2"]), .avx2)
        XCTAssertEqual(CPU.level(of: ["sse3", "avx", "avx2"]), .avx, "AVX2 without FMA")
        XCTAssertEqual(CPU.level(of: ["sse3"]), .sse)
        XCTAssertEqual(CPU.level(of: CPU.current.features), CPU.current.isa)
    }

    func testTheLimitLowersButNeverRaisesTheLevel() {
        let cpu = CPU.current
        XCTAssertEqual(CPU.allowedISA(cpu: cpu, environment: [:]).isa, cpu.isa)
        XCTAssertEqual(CPU.allowedISA(cpu: cpu, environment: ["NEST_TRAIN_MAX_ISA": "sse"]).isa, .sse)
        XCTAssertEqual(CPU.allowedISA(cpu: cpu, environment: ["NEST_TRAIN_MAX_ISA": "AVX512"]).isa, cpu.isa)
        let bad = CPU.allowedISA(cpu: cpu, environment: ["NEST_TRAIN_MAX_ISA": "avx3"])
        XCTAssertEqual(bad.isa, cpu.isa)
        XCTAssertTrue(bad.problem?.contains("NEST_TRAIN_MAX_ISA=avx3") == true, bad.problem ?? "no problem reported")
    }

    func testCoreNamesMapToTheirLevels() {
        XCTAssertEqual(BLASKernel.isa(ofCore: "SkylakeX"), .avx512)
        XCTAssertEqual(BLASKernel.isa(ofCore: "Cooperlake"), .avx512)
        XCTAssertEqual(BLASKernel.isa(ofCore: "Zen"), .avx2)
        XCTAssertEqual(BLASKernel.isa(ofCore: "Haswell"), .avx2)
        XCTAssertEqual(BLASKernel.isa(ofCore: "Prescott"), .sse)
        for isa in CPU.ISA.allCases {
            if let core = BLASKernel.preferredCore(for: isa) { XCTAssertEqual(BLASKernel.isa(ofCore: core), isa, core) }
        }
    }

    func testDecision() {
        typealias D = BLASKernel.Decision
        // The fallback the issue found: a Sapphire Rapids Xeon gets Prescott.
        XCTAssertEqual(BLASKernel.decide(allowed: .avx512, chosen: "Prescott", environment: [:]), D.restart(core: "SkylakeX"))
        // A kernel of the allowed level is kept, whichever it is.
        XCTAssertEqual(BLASKernel.decide(allowed: .avx512, chosen: "Cooperlake", environment: [:]), D.keep)
        XCTAssertEqual(BLASKernel.decide(allowed: .avx2, chosen: "Zen", environment: [:]), D.keep)
        // The AVX2 path forced on an AVX-512 CPU, as on a Zen 2/3 server.
        XCTAssertEqual(BLASKernel.decide(allowed: .avx2, chosen: "Cooperlake", environment: [:]), D.restart(core: "Haswell"))
        // A user's own setting is respected: a warning with the figure when it is slower, else nothing.
        guard case .warn(let message) = BLASKernel.decide(allowed: .avx512, chosen: "Haswell", environment: ["OPENBLAS_CORETYPE": "Haswell"]) else {
            return XCTFail("a user's slower OPENBLAS_CORETYPE must be kept with a warning")
        }
        XCTAssertTrue(message.contains("OPENBLAS_CORETYPE=Haswell") && message.contains("50 %"), message)
        XCTAssertEqual(BLASKernel.decide(allowed: .avx2, chosen: "SkylakeX", environment: ["OPENBLAS_CORETYPE": "SkylakeX"]), D.keep)
        // After its own restart nest-train never restarts again for the same core...
        let ours = ["OPENBLAS_CORETYPE": "SkylakeX", "NEST_TRAIN_BLAS_CORETYPE": "SkylakeX"]
        guard case .warn(let stuck) = BLASKernel.decide(allowed: .avx512, chosen: "Prescott", environment: ours) else {
            return XCTFail("a restart that did not take must warn, not loop")
        }
        XCTAssertTrue(stuck.contains("16 %"), stuck)
        // ...but its own earlier choice is not a user's setting: a lower limit restarts again.
        XCTAssertEqual(BLASKernel.decide(allowed: .avx2, chosen: "SkylakeX", environment: ours), D.restart(core: "Haswell"))
        // Nothing to ask for below AVX.
        XCTAssertEqual(BLASKernel.decide(allowed: .sse, chosen: "Prescott", environment: [:]), D.keep)
    }
}
