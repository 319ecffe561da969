import CCPUID
import Foundation

/// The processor as `cpuid` reports it, and the instruction-set level the kernels may use.
///
/// Measured, never assumed from the vendor or the model number: Debian's OpenBLAS 0.3.21 does
/// not know current Xeons (family 6, model 207) and falls back to its SSE3 kernel there, while it
/// picks an AVX-512 kernel on current EPYCs. The features decide.
public struct CPU: Sendable {
    /// Instruction-set levels that change which kernels run, in increasing order.
    public enum ISA: Int, Comparable, Sendable, CaseIterable, CustomStringConvertible {
        case sse = 0, avx, avx2, avx512

        public static func < (a: ISA, b: ISA) -> Bool { a.rawValue < b.rawValue }

        public var description: String {
            switch self {
            case .sse: "SSE"
            case .avx: "AVX"
            case .avx2: "AVX2+FMA"
            case .avx512: "AVX-512"
            }
        }

        /// The spelling of `NEST_TRAIN_MAX_ISA`.
        public var name: String { ["sse", "avx", "avx2", "avx512"][rawValue] }
    }

    /// The brand string, e.g. "Intel(R) Xeon(R) Platinum 8488C".
    public let model: String
    public let vendor: String
    /// Display family and model, as Linux's /proc/cpuinfo gives them.
    public let family: Int, modelNumber: Int
    /// Feature names present (cpuid bits, and the operating system saving the registers they use).
    public let features: Set<String>
    /// The best level both the processor and the operating system support.
    public let isa: ISA

    public static let current = CPU()

    init() {
        func cpuid(_ leaf: UInt32, _ subleaf: UInt32 = 0) -> [UInt32] {
            var r: [UInt32] = [0, 0, 0, 0]
            r.withUnsafeMutableBufferPointer { nest_cpuid(leaf, subleaf, $0.baseAddress!) }
            return r   // eax, ebx, ecx, edx
        }
        func bytes(_ words: [UInt32]) -> [UInt8] { words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } } }

        let leaf0 = cpuid(0)
        vendor = String(decoding: bytes([leaf0[1], leaf0[3], leaf0[2]]), as: UTF8.self)
        let maxLeaf = leaf0[0]
        let leaf1 = cpuid(1)
        let baseFamily = Int(leaf1[0] >> 8 & 0xF), baseModel = Int(leaf1[0] >> 4 & 0xF)
        family = baseFamily == 0xF ? baseFamily + Int(leaf1[0] >> 20 & 0xFF) : baseFamily
        modelNumber = baseFamily == 0x6 || baseFamily == 0xF ? baseModel | Int(leaf1[0] >> 16 & 0xF) << 4 : baseModel
        let leaf7 = maxLeaf >= 7 ? cpuid(7) : [0, 0, 0, 0]
        let leaf7s1 = maxLeaf >= 7 ? cpuid(7, 1) : [0, 0, 0, 0]
        let extended = cpuid(0x8000_0000)[0]
        model = extended >= 0x8000_0004
            ? String(decoding: bytes((0x8000_0002...0x8000_0004).flatMap { cpuid(UInt32($0)) }).prefix { $0 != 0 }, as: UTF8.self)
                .trimmingCharacters(in: .whitespaces)
            : "unknown"

        // The OS must save the wider registers (XCR0), or using them faults.
        let osxsave = leaf1[2] & 1 << 27 != 0
        let xcr0 = osxsave ? nest_xgetbv0() : 0
        let ymmSaved = xcr0 & 0b110 == 0b110
        let zmmSaved = ymmSaved && xcr0 & 0b1110_0000 == 0b1110_0000
        var f: Set<String> = []
        func add(_ name: String, _ present: Bool) { if present { f.insert(name) } }
        add("sse3", leaf1[2] & 1 << 0 != 0)
        add("avx", ymmSaved && leaf1[2] & 1 << 28 != 0)
        add("fma", ymmSaved && leaf1[2] & 1 << 12 != 0)
        add("avx2", ymmSaved && leaf7[1] & 1 << 5 != 0)
        add("avx512f", zmmSaved && leaf7[1] & 1 << 16 != 0)
        add("avx512dq", zmmSaved && leaf7[1] & 1 << 17 != 0)
        add("avx512bw", zmmSaved && leaf7[1] & 1 << 30 != 0)
        add("avx512vl", zmmSaved && leaf7[1] & 1 << 31 != 0)
        add("avx512_vnni", zmmSaved && leaf7[2] & 1 << 11 != 0)
        add("avx512_bf16", zmmSaved && leaf7s1[0] & 1 << 5 != 0)
        add("avx512_fp16", zmmSaved && leaf7[3] & 1 << 23 != 0)
        features = f
        isa = Self.level(of: f)
    }

    /// The level a feature set reaches: AVX-512 needs F, BW, VL and DQ (what OpenBLAS's SkylakeX
    /// kernels and `-target-cpu skylake-avx512` code use); AVX2 needs FMA too.
    public static func level(of f: Set<String>) -> ISA {
        if f.isSuperset(of: ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return .avx512 }
        if f.isSuperset(of: ["avx2", "fma"]) { return .avx2 }
        if f.contains("avx") { return .avx }
        return .sse
    }

    /// The level the kernels may use: the CPU's, lowered by `NEST_TRAIN_MAX_ISA` (sse, avx, avx2,
    /// avx512), which runs the code paths of an older CPU on this one, e.g. the AVX2 path that
    /// AMD Zen 2/3 servers take. A value it does not know is reported and ignored.
    public static func allowedISA(cpu: CPU, environment: [String: String]) -> (isa: ISA, problem: String?) {
        guard let limit = environment["NEST_TRAIN_MAX_ISA"], !limit.isEmpty else { return (cpu.isa, nil) }
        guard let level = ISA.allCases.first(where: { $0.name == limit.lowercased() }) else {
            return (cpu.isa, "NEST_TRAIN_MAX_ISA=\(limit) ignored: expected one of \(ISA.allCases.map(\.name).joined(separator: ", "))")
        }
        return (min(level, cpu.isa), nil)
    }
}
