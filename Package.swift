// swift-tools-version:6.1
import Foundation
import PackageDescription

// Release builds target Haswell (AVX2 + FMA; the clang importer does not accept "x86-64-v3"): every machine this project runs on (developer,
// CI, benchmark) has it, and Swift's default SSE2 code generation leaves half of the vector width
// of the elementwise kernels unused. LLVM's vectoriser also runs the long pointwise loops (exp,
// SiLU, the LayerNorm rows) with one vector per iteration, latency-bound on one dependency
// chain; two interleaved vectors measured SiLU +15 % and a large-model step −5 %.
// Debug builds keep the defaults.
// `KERNELS_AVX2` lets the code report the level it was compiled for (Platform.kernelISA).
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell", "-Xllvm", "-force-vector-interleave=2"],
                                             .when(configuration: .release)),
                                .define("KERNELS_AVX2", .when(configuration: .release))]

// Swift 5 language mode: the kernels hand raw pointers to `DispatchQueue.concurrentPerform`
// closures, which Swift 6's strict sendability checking rejects without adding any safety here.
let settings: [SwiftSetting] = cpuFlags + [.swiftLanguageMode(.v5)]

// The CUDA C kernel sources: every `.cu` file in Sources/CUDA/Kernels is a family (embedded in
// the binary; `KernelSource.all` names each, and KernelCompileTests holds it to this folder).
let cudaKernelFamilies = ((try? FileManager.default.contentsOfDirectory(
    atPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Sources/CUDA/Kernels").path)) ?? [])
    .filter { $0.hasSuffix(".cu") }.map { String($0.dropLast(3)) }.sorted()

let package = Package(
    name: "nest-train",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nest-train", targets: ["nest-train"]),
        .executable(name: "nest-bench", targets: ["nest-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CFFTW", pkgConfig: "fftw3f", providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "CSndfile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CCPUID"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // The MPI calls of the processes' collectives, loaded at run time from the Open MPI
        // whose launcher started the process (nothing of MPI is linked; one process never loads it).
        .target(name: "CMPI"),

        // The CUDA driver API, NVRTC and cuBLAS, declared in a C shim and loaded with dlopen at
        // run time: nothing of CUDA is needed to build or to run without a GPU.
        .target(name: "CCUDA"),
        .target(name: "CUDA", dependencies: ["CCUDA", "Basics", "Tensor", "COpenBLAS"],
                resources: cudaKernelFamilies.map { .embedInCode("Kernels/\($0).cu") } + [.embedInCode("Emulation/host-emulation.h")],
                swiftSettings: settings),
        .target(name: "Tensor", dependencies: ["COpenBLAS", "CCPUID"], swiftSettings: settings),
        // What every target builds on: the one error type (`NestError`), bounds-checked byte
        // windows (`Bytes`), input files that must be regular (`RegularFile`) and whole-or-nothing
        // writes (`AtomicFile`).
        .target(name: "Basics", swiftSettings: settings),
        // File formats, readers and writers side by side (tar, zip, pickle, torch archives,
        // safetensors, npy, TensorBoard events, CRC-32) and one dtype enum. No format knows
        // about the model.
        .target(name: "Formats", dependencies: ["Basics", "CZlib"], swiftSettings: settings),
        .target(name: "HDF5", dependencies: ["CHDF5", "Basics", "Formats"], swiftSettings: settings),
        // The processes training one model (Open MPI under a launcher, loaded at run time, else
        // one process); the only target that sees MPI.
        .target(name: "Distributed", dependencies: ["CMPI", "Basics"], swiftSettings: settings),
        .target(name: "NN", dependencies: ["Tensor", "Basics", "Formats"], swiftSettings: settings),
        .target(name: "Audio", dependencies: ["Tensor", "Basics", "CFFTW", "CSndfile", "CSoxr"], swiftSettings: settings),
        .target(name: "Model", dependencies: ["NN", "Tensor"], swiftSettings: settings),
        // NeMo's YAML: documents, Hydra overrides, interpolations, the class defaults of absent
        // keys, and the run settings (`RunConfig`: model, front end, data, optimizer, trainer).
        .target(name: "Config", dependencies: ["Model", "Audio", "DataLoading", "NN", "Tensor", "Basics", "Formats", .product(name: "Yams", package: "Yams")],
                swiftSettings: settings),
        // What a run leaves and reads back: sealed checkpoints and the run folder, weight files,
        // `.nemo` import and export.
        .target(name: "Interop", dependencies: ["Config", "Model", "NN", "Tensor", "Basics", "Formats", "HDF5"], swiftSettings: settings),
        // The data path: manifests to batches (every batching policy, tarred shards, the loader and
        // its prefetch), and the settings a dataset section gives it.
        .target(name: "DataLoading", dependencies: ["Audio", "Model", "Tensor", "Basics", "Formats"], swiftSettings: settings),
        .target(name: "Training", dependencies: ["Config", "Interop", "DataLoading", "Model", "Audio", "NN", "Tensor", "Basics", "Formats", "HDF5", "Distributed"], swiftSettings: settings),
        .executableTarget(
            name: "nest-train",
            dependencies: ["Training", "Interop", "Config", "DataLoading", "Model", "Audio", "Tensor", "Basics", "Distributed", "CUDA", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: settings),
        .executableTarget(name: "nest-bench", dependencies: ["Audio", "Model", "NN", "Tensor", "COpenBLAS"], swiftSettings: settings),
        .target(name: "_TestSupport", dependencies: ["Tensor", "Basics", "Formats", "HDF5", "NN"], swiftSettings: settings),

        .testTarget(name: "BasicsTests", dependencies: ["Basics"], swiftSettings: settings),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "Basics"], swiftSettings: settings),
        .testTarget(name: "HDF5Tests", dependencies: ["HDF5", "Formats", "Basics"], swiftSettings: settings),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"], swiftSettings: settings),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "_TestSupport"], swiftSettings: settings),
        .testTarget(name: "NNTests", dependencies: ["NN", "Tensor"], swiftSettings: settings),
        .testTarget(name: "ModelTests", dependencies: ["Model", "Config", "Basics", "Formats", "_TestSupport"], swiftSettings: settings),
        .testTarget(name: "AudioTests", dependencies: ["Audio", "_TestSupport"], swiftSettings: settings),
        .testTarget(name: "DataLoadingTests", dependencies: ["DataLoading", "Audio", "_TestSupport"], swiftSettings: settings),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "Interop", "Training", "Audio", "Model", "NN", "Tensor", "_TestSupport"], swiftSettings: settings),
        .testTarget(name: "InteropTests", dependencies: ["Interop", "Training", "Config", "DataLoading", "Audio", "Model", "NN", "Tensor", "Basics", "Formats", "HDF5", "_TestSupport"],
                    swiftSettings: settings),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Interop", "Config", "DataLoading", "Basics", "_TestSupport"], swiftSettings: settings),
        .testTarget(name: "CUDATests", dependencies: ["CUDA", "Tensor"], swiftSettings: settings),
    ]
)
