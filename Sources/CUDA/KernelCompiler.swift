import CCUDA
import Foundation
import Formats

/// Compiles the kernel sources with NVRTC to a cubin for one architecture (sm_XX machine code
/// that the driver loads without a PTX JIT, so a newer NVRTC than the driver is fine), caching
/// each cubin on disk under a key of the source, the architecture and the NVRTC version.
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

    /// The cubin of `source` for `sm_<architecture>`; a compile error carries NVRTC's log.
    public func cubin(_ source: KernelSource, architecture: Int) throws -> [UInt8] {
        let key = String(format: "%@-sm%d-%016llx", source.family, architecture, Self.fnv1a(Array(source.text.utf8) + Array("\(architecture) \(version)".utf8)))
        let cached = cacheFolder.map { "\($0)/\(key).cubin" }
        if let cached, let data = FileManager.default.contents(atPath: cached), !data.isEmpty { return Array(data) }
        let image = try compile(source, architecture: architecture)
        if let cached, let folder = cacheFolder {
            // A cache that cannot be written only costs a compile next time.
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try? AtomicFile.write(Data(image), to: cached)
        }
        return image
    }

    private func compile(_ source: KernelSource, architecture: Int) throws -> [UInt8] {
        var program: nest_nvrtcProgram?
        try check(nvrtc.nvrtcCreateProgram(&program, source.text, source.family + ".cu", 0, nil, nil), "nvrtcCreateProgram", source)
        defer { _ = nvrtc.nvrtcDestroyProgram(&program) }
        // fp32 semantics as written: no fast-math approximations beyond CUDA's defaults.
        let options = ["--gpu-architecture=sm_\(architecture)", "--std=c++17"]
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
            throw NestError("\(source.family).cu: NVRTC \(version) could not compile it for sm_\(architecture): \(String(cString: log))")
        }
        var size = 0
        try check(nvrtc.nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize", source)
        var image = [UInt8](repeating: 0, count: size)
        try image.withUnsafeMutableBytes { try check(nvrtc.nvrtcGetCUBIN(program, $0.baseAddress?.assumingMemoryBound(to: CChar.self)), "nvrtcGetCUBIN", source) }
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
