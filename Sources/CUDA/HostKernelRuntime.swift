import Basics
import COpenBLAS
import Foundation
import Tensor

/// The CUDA backend's kernels run on the host (see `KernelRuntime`): each family's CUDA C source,
/// with `Emulation/host-emulation.h` in front of it and a launcher per kernel, compiled by the
/// host's C++ compiler (`NEST_TRAIN_HOST_CXX`, else `clang++`, as the Swift toolchain ships it)
/// into a shared library on first use; memory is host memory, SGEMM is OpenBLAS called with
/// cuBLAS's column-major arguments. Slow (every thread of a block is a thread), and for tests:
/// it runs the very sources NVRTC compiles for the GPU.
public final class HostKernelRuntime: KernelRuntime, @unchecked Sendable {
    private var libraries: [String: UnsafeMutableRawPointer] = [:]
    private let compiler: String
    private let lock = NSLock()

    public init() throws {
        let env = ProcessInfo.processInfo.environment
        compiler = env["NEST_TRAIN_HOST_CXX"] ?? "clang++"
    }

    public var name: String { "host emulation" }
    /// Few blocks: a grid-stride kernel covers any size with any grid, and blocks run in turn.
    public var maxBlocks: Int { 4 }
    public var threadsPerBlock: Int { 32 }
    public var reductionThreadsPerBlock: Int { 256 }
    /// Host memory, every fresh block filled with NaN: a GPU's fresh memory holds whatever was
    /// there, so a kernel that reads what nothing wrote must fail here too.
    public var memory: RawMemory {
        RawMemory(name: "emulated GPU", allocate: { count in
            let block = RawMemory.host.allocate(count)
            block?.update(repeating: .nan, count: count)
            return block
        }, deallocate: RawMemory.host.deallocate)
    }

    public func copy(fromHost source: UnsafeRawPointer, to address: UnsafeMutableRawPointer, bytes: Int) {
        address.copyMemory(from: source, byteCount: bytes)
    }

    public func copy(from address: UnsafeRawPointer, toHost destination: UnsafeMutableRawPointer, bytes: Int) {
        destination.copyMemory(from: address, byteCount: bytes)
    }

    public func copy(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, bytes: Int) {
        destination.copyMemory(from: source, byteCount: bytes)
    }

    public func fill(_ address: UnsafeMutableRawPointer, word: UInt32, count: Int) {
        address.bindMemory(to: UInt32.self, capacity: count).update(repeating: word, count: count)
    }

    public func launch(_ kernel: String, grid: Int, block: Int, sharedBytes: Int, _ arguments: [KernelArgument]) {
        precondition(grid >= 1 && block >= 1 && block <= 1024, "\(kernel): launch of \(grid) × \(block)")
        lock.lock()
        defer { lock.unlock() }
        do {
            guard let family = KernelSource.familyOfKernel[kernel] else { preconditionFailure("no kernel \(kernel) in Sources/CUDA/Kernels") }
            let library = try loaded(family)
            typealias Launch = @convention(c) (UnsafePointer<CChar>, UInt32, UInt32, UInt32, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
            let launch = unsafeBitCast(dlsym(library, "nest_emulated_launch"), to: Launch.self)
            let status = KernelArgument.withParameters(arguments) { launch(kernel, UInt32(grid), UInt32(block), UInt32(sharedBytes), $0) }
            if status != 0 { fatalError("\(kernel): the host emulation could not run it (status \(status))") }
        } catch {
            fatalError("\(error)")
        }
    }

    public func sgemm(_ g: ColumnMajorGEMM) {
        for i in 0..<g.batches {
            cblas_sgemm(CblasColMajor, g.transposeA ? CblasTrans : CblasNoTrans, g.transposeB ? CblasTrans : CblasNoTrans,
                        blasint(g.m), blasint(g.n), blasint(g.k), g.alpha,
                        g.a.assumingMemoryBound(to: Float.self) + i * g.strideA, blasint(g.lda),
                        g.b.assumingMemoryBound(to: Float.self) + i * g.strideB, blasint(g.ldb), g.beta,
                        g.c.assumingMemoryBound(to: Float.self) + i * g.strideC, blasint(g.ldc))
        }
    }

    public func synchronize() {}

    /// The family's shared library, compiled on first use into a folder removed once it is
    /// loaded (the mapping outlives the file).
    private func loaded(_ family: String) throws -> UnsafeMutableRawPointer {
        if let library = libraries[family] { return library }
        let folder = NSTemporaryDirectory() + "nest-train-host-kernels-\(getpid())-\(family)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = folder + "/\(family).cpp", library = folder + "/\(family).so"
        try Self.translationUnit(KernelSource.named(family)).write(toFile: source, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-pthread", "-w", source, "-o", library]
        let errors = Pipe()
        process.standardError = errors
        do { try process.run() } catch { throw NestError("\(compiler): cannot run it to build the host emulation of \(family).cu (\(error))") }
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw NestError("\(family).cu: \(compiler) could not compile its host emulation:\n\(log)") }
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else { throw NestError("\(library): \(String(cString: dlerror()))") }
        libraries[family] = handle
        return handle
    }

    /// The prelude, the source with its dynamic shared arrays pointed at the launch's buffer,
    /// and one launcher per kernel that unpacks cuLaunchKernel's argument array.
    static func translationUnit(_ source: KernelSource) -> String {
        let prelude = String(decoding: PackageResources.host_emulation_h, as: UTF8.self)
        let shared = try! NSRegularExpression(pattern: #"extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\]\s*;"#)
        let text = shared.stringByReplacingMatches(in: source.text, range: NSRange(source.text.startIndex..., in: source.text),
                                                   withTemplate: "$1 *$2 = ($1 *)emulated_shared;")
        var launchers = "", dispatch = ""
        for (name, parameters) in source.kernelSignatures {
            let unpacked = parameters.enumerated().map { i, type in "*(\(type) *)a[\(i)]" }.joined(separator: ", ")
            launchers += "static void launch_\(name)(void **a) { \(name)(\(unpacked)); }\n"
            dispatch += "    if (!strcmp(name, \"\(name)\")) return emulated_launch(launch_\(name), grid, block, shared, arguments);\n"
        }
        return prelude + "\n#line 1 \"\(source.family).cu\"\n" + text + "\n" + launchers
            + "extern \"C\" int nest_emulated_launch(const char *name, unsigned grid, unsigned block, unsigned shared, void **arguments) {\n"
            + dispatch + "    return -1;\n}\n"
    }
}
