import Basics
import CCUDA
import Foundation

/// Compiles the kernel sources with NVRTC for one GPU, caching each image on disk under a key of
/// the source, the target and the NVRTC version: a cubin of the GPU's own architecture (sm_XX
/// machine code that the driver loads without a PTX JIT, so a newer NVRTC than the driver is
/// fine), or, when this NVRTC does not know that architecture (a GPU newer than the toolkit),
/// PTX for the newest one it knows below it, which the driver compiles for the GPU.
public struct KernelCompiler {
    public let nvrtc: nest_nvrtc
    public let libraryPath: String
    /// Where cubins are kept: `NEST_TRAIN_KERNEL_CACHE`, else `~/.cache/nest-train/kernels`;
    /// nil compiles every time.
    public let cacheFolder: String?

    public init(nvrtc: nest_nvrtc, libraryPath: String, cacheFolder: String? = KernelCompiler.defaultCacheFolder) {
        self.nvrtc = nvrtc
        self.libraryPath = libraryPath
        self.cacheFolder = cacheFolder
    }

    public static var defaultCacheFolder: String? {
        let env = ProcessInfo.processInfo.environment
        if let folder = env["NEST_TRAIN_KERNEL_CACHE"] { return folder.isEmpty ? nil : folder }
        return env["HOME"].map { $0 + "/.cache/nest-train/kernels" }
    }

    public var version: String {
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtc.nvrtcVersion(&major, &minor)
        return "\(major).\(minor)"
    }

    /// What NVRTC builds for a GPU: machine code for its architecture, or PTX for an older one.
    public enum Target: Equatable {
        case cubin(Int)
        case ptx(Int)

        var option: String {
            switch self {
            case .cubin(let a): "--gpu-architecture=sm_\(a)"
            case .ptx(let a): "--gpu-architecture=compute_\(a)"
            }
        }
        public var name: String {
            switch self {
            case .cubin(let a): "sm_\(a)"
            case .ptx(let a): "compute_\(a)"
            }
        }
    }

    /// The architectures this NVRTC compiles for (`nvrtcGetSupportedArchs`), e.g. 75…121.
    public var supportedArchitectures: [Int] {
        var count: Int32 = 0
        guard nvrtc.nvrtcGetNumSupportedArchs(&count) == 0, count > 0 else { return [] }
        var list = [Int32](repeating: 0, count: Int(count))
        guard nvrtc.nvrtcGetSupportedArchs(&list) == 0 else { return [] }
        return list.map(Int.init)
    }

    /// The GPU's own architecture when NVRTC knows it; else PTX for the newest architecture it
    /// knows below the GPU's (PTX runs on every later GPU); nil when it knows none that old.
    public static func target(for architecture: Int, supported: [Int]) -> Target? {
        if supported.contains(architecture) { return .cubin(architecture) }
        return supported.filter { $0 < architecture }.max().map { .ptx($0) }
    }

    /// The image of `source` for a GPU of `architecture` (see `Target`): an ELF cubin, or PTX
    /// text ending in NUL, either of which `cuModuleLoadData` takes. A compile error carries
    /// NVRTC's log.
    public func image(_ source: KernelSource, architecture: Int) throws -> [UInt8] {
        let supported = supportedArchitectures
        guard let target = Self.target(for: architecture, supported: supported.isEmpty ? [architecture] : supported) else {
            throw NestError("NVRTC \(version) compiles for sm_\(supported.min() ?? 0) and newer; this GPU is sm_\(architecture): "
                            + "use the NVRTC of an older CUDA (pip's nvidia-cuda-nvrtc-cu12)")
        }
        let key = String(format: "%@-%@-%016llx", source.family, target.name, Self.fnv1a(Array(source.text.utf8) + Array("\(target.name) \(version)".utf8)))
        let cached = cacheFolder.map { "\($0)/\(key).\(target == .cubin(architecture) ? "cubin" : "ptx")" }
        if let cached, let data = FileManager.default.contents(atPath: cached), !data.isEmpty { return Array(data) }
        let image = try compile(source, target: target)
        if let cached, let folder = cacheFolder {
            // A cache that cannot be written only costs a compile next time.
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try? AtomicFile.write(Data(image), to: cached)
        }
        return image
    }

    private func compile(_ source: KernelSource, target: Target) throws -> [UInt8] {
        var program: nest_nvrtcProgram?
        try check(nvrtc.nvrtcCreateProgram(&program, source.text, source.family + ".cu", 0, nil, nil), "nvrtcCreateProgram", source)
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }
        // fp32 semantics as written: no fast-math approximations beyond CUDA's defaults.
        let options = [target.option, "--std=c++17"]
        let cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.map { UnsafePointer($0) }.withUnsafeBufferPointer {
            nvrtc.nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress)
        }
        if status != 0 {
            var size = 0
            _ = nvrtc.nvrtcGetProgramLogSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = nvrtc.nvrtcGetProgramLog(program, &log)
            throw NestError("\(source.family).cu: NVRTC \(version) could not compile it for \(target.name): \(String(cString: log))")
        }
        var size = 0
        var image: [UInt8]
        switch target {
        case .cubin:
            try check(nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize", source)
            image = [UInt8](repeating: 0, count: size)
            try image.withUnsafeMutableBytes { try check(nvrtc.nvrtcGetCUBIN(program, $0.baseAddress?.assumingMemoryBound(to: CChar.self)), "nvrtcGetCUBIN", source) }
        case .ptx:
            // The size counts the terminating NUL, which cuModuleLoadData needs to find the end.
            try check(nvrtc.nvrtcGetPTXSize(program, &size), "nvrtcGetPTXSize", source)
            image = [UInt8](repeating: 0, count: size)
            try image.withUnsafeMutableBytes { try check(nvrtc.nvrtcGetPTX(program, $0.baseAddress?.assumingMemoryBound(to: CChar.self)), "nvrtcGetPTX", source) }
        }
        return image
    }

    private func check(_ result: nest_nvrtcResult, _ call: String, _ source: KernelSource) throws {
        guard result != 0 else { return }
        throw NestError("\(source.family).cu: \(call) failed: \(nvrtc.nvrtcGetErrorString(result).map { String(cString: $0) } ?? "error \(result)")")
    }

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        bytes.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
    }
}
