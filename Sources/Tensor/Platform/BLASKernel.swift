import COpenBLAS
import Foundation

/// Which OpenBLAS kernel runs the matrix products, and making sure it is the best one the CPU
/// allows.
///
/// Debian's OpenBLAS 0.3.21 is built with `DYNAMIC_ARCH`: at load time its library constructor
/// picks a kernel from cpuid, or from `OPENBLAS_CORETYPE` when that is set. On CPUs newer than
/// the library (Sapphire Rapids Xeons, family 6 model 207) it silently falls back to its SSE3
/// "Prescott" kernel, 5–7× slower than its AVX-512 "SkylakeX" kernel there. The variable is read
/// once, in the constructor, before any of our code runs, so setting it from inside the process
/// is too late, and loading OpenBLAS lazily would put every `cblas_` call behind a function
/// pointer. Instead the executable starts itself again once (`execv` of /proc/self/exe, same
/// arguments and process id, a few milliseconds) with the variable set, guarded by
/// `NEST_TRAIN_BLAS_CORETYPE` so that it never loops. A user's own `OPENBLAS_CORETYPE` is
/// respected, with a warning when it is below what the CPU can run.
public enum BLASKernel {
    /// OpenBLAS's name for the kernel it runs ("SkylakeX", "Haswell", "Prescott", ...).
    public static var core: String { String(cString: openblas_get_corename()) }
    /// Library build line, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64".
    public static var library: String { String(cString: openblas_get_config()) }

    /// Set by nest-train (never by users) to the core it chose before starting itself again.
    static let marker = "NEST_TRAIN_BLAS_CORETYPE"

    /// The instruction-set level of OpenBLAS's x86-64 kernels (names as `openblas_get_corename`).
    public static func isa(ofCore core: String) -> CPU.ISA {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": .avx512
        case "haswell", "zen": .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": .avx
        default: .sse
        }
    }

    /// The kernel to ask for at each level. SkylakeX rather than Cooperlake at AVX-512: the same
    /// sgemm kernel, and Cooperlake also requires AVX512-BF16.
    public static func preferredCore(for isa: CPU.ISA) -> String? {
        switch isa {
        case .avx512: "SkylakeX"
        case .avx2: "Haswell"
        case .avx: "Sandybridge"
        case .sse: nil
        }
    }

    /// One core's sgemm rate of each level relative to AVX-512, measured with a 4096×512 ·
    /// (2048×512)ᵀ product on this project's machines (Xeon family 6 model 207: SkylakeX 133–147,
    /// Haswell 57–69, Prescott 18–25 GFLOP/s; EPYC family 26: 210–220, 100–115, 36).
    static func relativeRate(_ isa: CPU.ISA) -> Double { [0.16, 0.3, 0.5, 1.0][isa.rawValue] }

    public enum Decision: Equatable {
        case keep
        case restart(core: String)
        case warn(String)
    }

    /// What to do about the kernel OpenBLAS chose (`chosen`) given the level allowed.
    public static func decide(allowed: CPU.ISA, chosen: String, environment: [String: String]) -> Decision {
        let have = isa(ofCore: chosen)
        guard have != allowed, let want = preferredCore(for: allowed) else { return .keep }
        let userValue = environment["OPENBLAS_CORETYPE"].flatMap { $0.isEmpty || $0 == environment[marker] ? nil : $0 }
        let rate = "\(Int((relativeRate(have) / relativeRate(allowed) * 100).rounded())) %"
        if let userValue {
            guard have < allowed else { return .keep }
            return .warn("OPENBLAS_CORETYPE=\(userValue) is set: OpenBLAS runs its \(chosen) (\(have)) kernel on a CPU that allows "
                         + "\(allowed), so matrix products run at about \(rate) of the \(want) kernel's rate; unset it to let nest-train choose")
        }
        if environment[marker] == want {
            return .warn("OpenBLAS did not take OPENBLAS_CORETYPE=\(want) and runs its \(chosen) (\(have)) kernel: matrix products "
                         + "at about \(rate) of the rate this CPU allows (\(allowed))")
        }
        return .restart(core: want)
    }

    /// Called first by every executable, before anything else: starts the process again with
    /// the best kernel when OpenBLAS chose a worse one (or, under `NEST_TRAIN_MAX_ISA`, a better
    /// one than allowed). Returns what should be said once on stderr, if anything.
    public static func selectBest() -> [String] {
        let environment = ProcessInfo.processInfo.environment
        let (allowed, problem) = CPU.allowedISA(cpu: .current, environment: environment)
        switch decide(allowed: allowed, chosen: core, environment: environment) {
        case .keep:
            return problem.map { [$0] } ?? []
        case .warn(let message):
            return (problem.map { [$0] } ?? []) + [message]
        case .restart(let want):
            #if os(Linux)
            setenv("OPENBLAS_CORETYPE", want, 1)
            setenv(marker, want, 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            #endif
            // Only reached when execv failed (or off Linux).
            return (problem.map { [$0] } ?? []) + ["could not restart with OPENBLAS_CORETYPE=\(want) (\(String(cString: strerror(errno)))): "
                                                    + "OpenBLAS runs its \(core) kernel; set OPENBLAS_CORETYPE=\(want) yourself"]
        }
    }
}
