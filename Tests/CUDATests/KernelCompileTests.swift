import CUDA
import Foundation
import XCTest

/// What the CUDA backend can be checked for without a GPU: every kernel source compiles with
/// NVRTC for the architectures we support (NVRTC needs no GPU or driver; `make test` installs
/// pip's nvidia-cuda-nvrtc and points NEST_TRAIN_CUDA_LIBS at it), compile errors carry NVRTC's
/// log, and a machine without the driver gets an error naming what is missing.
final class KernelCompileTests: XCTestCase {
    func compiler() throws -> KernelCompiler {
        let (nvrtc, path) = try CUDALibraries.loadCompiler()
        return KernelCompiler(nvrtc: nvrtc, libraryPath: path, cacheFolder: nil)
    }

    func testEveryKernelFamilyCompilesForAmpereAndHopper() throws {
        let compiler = try compiler()
        print("NVRTC \(compiler.version) from \(compiler.libraryPath)")
        // The kernel folder is the list of families (Package.swift embeds what it holds).
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/CUDA/Kernels").path
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".cu") }.map { String($0.dropLast(3)) }
        XCTAssertEqual(KernelSource.all.map(\.family), files.sorted(), "KernelSource.all names every .cu file in Sources/CUDA/Kernels")
        XCTAssertGreaterThanOrEqual(files.count, 10)
        for source in KernelSource.all {
            for architecture in [80, 90] {
                let cubin = try compiler.image(source, architecture: architecture)
                XCTAssertEqual(Array(cubin.prefix(4)), [0x7F, 0x45, 0x4C, 0x46], "\(source.family) sm_\(architecture): an ELF cubin")
                // Every kernel the family's header names is in the image.
                for name in source.kernelNames {
                    XCTAssertNotNil(cubin.firstRange(of: Array(name.utf8)), "\(source.family) sm_\(architecture): \(name)")
                }
            }
        }
    }

    func testCompileErrorsCarryNVRTCsLog() throws {
        let broken = KernelSource(family: "broken", text: "extern \"C\" __global__ void f(float *x) { x[0] = undefined_value; }")
        XCTAssertThrowsError(try compiler().image(broken, architecture: 90)) { error in
            XCTAssertTrue("\(error)".contains("broken.cu: NVRTC"), "\(error)")
            XCTAssertTrue("\(error)".contains("undefined_value"), "\(error)")
        }
    }

    func testCachedCubinsAreReusedAndKeyedByArchitecture() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kernels-\(UUID().uuidString)").path
        let base = try compiler()
        let cached = KernelCompiler(nvrtc: base.nvrtc, libraryPath: base.libraryPath, cacheFolder: folder)
        let source = KernelSource.named("softmax")
        let first = try cached.image(source, architecture: 90)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).count, 1)
        XCTAssertEqual(try cached.image(source, architecture: 90), first)
        _ = try cached.image(source, architecture: 80)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".cubin") }.count, 2)
    }

    /// A GPU newer than the NVRTC at hand gets PTX for the newest architecture NVRTC knows below
    /// it (the driver compiles PTX for later GPUs); one older than every architecture NVRTC knows
    /// is an error naming both.
    func testAGPUNewerThanNVRTCGetsPTXForTheNewestArchitectureItKnows() throws {
        XCTAssertEqual(KernelCompiler.target(for: 90, supported: [75, 80, 86, 89, 90, 100]), .cubin(90))
        XCTAssertEqual(KernelCompiler.target(for: 120, supported: [75, 80, 86, 89, 90, 100]), .ptx(100))
        XCTAssertNil(KernelCompiler.target(for: 70, supported: [75, 80]))
        let compiler = try compiler()
        let supported = compiler.supportedArchitectures
        XCTAssertTrue(supported.contains(90), "NVRTC \(compiler.version) lists \(supported)")
        let newest = supported.max()!
        let ptx = try compiler.image(KernelSource.named("softmax"), architecture: newest + 1000)
        let text = String(decoding: ptx.dropLast(), as: UTF8.self)
        XCTAssertEqual(ptx.last, 0, "PTX ends in NUL for cuModuleLoadData")
        XCTAssertTrue(text.contains(".target sm_\(newest)"), String(text.prefix(400)))
        XCTAssertThrowsError(try compiler.image(KernelSource.named("softmax"), architecture: supported.min()! - 1)) { error in
            XCTAssertTrue("\(error)".contains("this GPU is sm_\(supported.min()! - 1)"), "\(error)")
        }
    }

    /// No GPU here: opening a device names the library (or the driver's answer) that is missing.
    func testNoGPUIsAClearError() {
        XCTAssertThrowsError(try CUDADevice(ordinal: 0)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("cannot load the CUDA driver (libcuda.so.1") || text.contains("CUDA: cuInit failed")
                          || text.contains("GPU"), text)
        }
    }
}
