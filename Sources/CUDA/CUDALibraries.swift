import Basics
import CCUDA
import Foundation

/// Finds and loads the CUDA driver, NVRTC and cuBLAS at run time (nothing of CUDA is linked).
///
/// The driver (`libcuda.so.1`) comes with the GPU driver and is on the loader's path (or in
/// `/usr/local/nvidia/lib64` in containers). NVRTC and cuBLAS come with a CUDA toolkit, or with
/// PyPI's `nvidia-*` wheels inside a Python environment, which is how PyTorch users have them;
/// `NEST_TRAIN_CUDA_LIBS` (folders separated by `:`) is searched first. The driver is asked its
/// CUDA version before the toolkits are chosen (`majors(forDriver:)`).
public final class CUDALibraries: @unchecked Sendable {
    public var driver = nest_cuda_driver()
    public let driverPath: String
    /// The CUDA version the driver supports, e.g. 12040 for 12.4 (`cuDriverGetVersion`).
    public let driverVersion: Int
    /// The toolkits whose NVRTC and cuBLAS loaded, newest major first among those the driver
    /// supports: the runtime takes the first whose cuBLAS handle and kernels load, else the next.
    public let toolkits: [Toolkit]
    /// Majors passed over and why (driver too old, a library missing), for `info` and errors.
    public let passedOver: [String]

    /// NVRTC and cuBLAS of one CUDA major (their C ABIs are the same across 12 and 13).
    public struct Toolkit: @unchecked Sendable {
        public let major: Int
        public let nvrtc: nest_nvrtc, nvrtcPath: String
        public let cublas: nest_cublas, cublasPath: String
    }

    static let driverNames = ["libcuda.so.1", "libcuda.so"]
    /// The CUDA majors nest-train knows, newest first.
    static let majors = [13, 12]

    /// Loaded once per process; the error says what was looked for where.
    public static let shared: Result<CUDALibraries, NestError> = Result { try CUDALibraries() }.mapError { $0 as? NestError ?? NestError("\($0)") }

    private init() throws {
        let folders = Self.searchFolders()
        var d = nest_cuda_driver()
        driverPath = try Self.load("the CUDA driver (libcuda.so.1, installed with the NVIDIA driver)", names: Self.driverNames,
                                   folders: folders + ["/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"]) { nest_cuda_driver_load($0, &d, $1, $2) }
        driver = d
        var version: Int32 = 0
        guard d.cuDriverGetVersion(&version) == 0 else { throw NestError("CUDA: cuDriverGetVersion failed: the driver at \(driverPath) does not answer") }
        driverVersion = Int(version)
        var (order, passedOver) = Self.majors(forDriver: driverVersion)
        var toolkits: [Toolkit] = []
        for major in order {
            var n = nest_nvrtc(), c = nest_cublas()
            do {
                let nvrtcPath = try Self.load("NVRTC \(major) (libnvrtc.so.\(major))", names: ["libnvrtc.so.\(major)"], folders: folders) { nest_nvrtc_load($0, &n, $1, $2) }
                let cublasPath = try Self.load("cuBLAS \(major) (libcublas.so.\(major))", names: ["libcublas.so.\(major)"], folders: folders) { nest_cublas_load($0, &c, $1, $2) }
                toolkits.append(Toolkit(major: major, nvrtc: n, nvrtcPath: nvrtcPath, cublas: c, cublasPath: cublasPath))
            } catch {
                passedOver.append("CUDA \(major): \(error)")
            }
        }
        guard !toolkits.isEmpty else {
            throw NestError("no CUDA toolkit this driver can run (it supports CUDA \(Self.describe(driverVersion))): \(passedOver.joined(separator: "; ")). "
                            + "Install NVRTC and cuBLAS of a CUDA major the driver supports (pip install nvidia-cuda-nvrtc-cu12 nvidia-cublas-cu12 for CUDA 12), "
                            + "or a newer driver")
        }
        self.toolkits = toolkits
        self.passedOver = passedOver
    }

    /// "12.4" for 12040.
    public static func describe(_ version: Int) -> String { "\(version / 1000).\(version % 1000 / 10)" }

    /// The majors to try with a driver of `driverVersion`, newest first, and why the others are
    /// not: a toolkit's libraries need a driver of at least its major (minor versions within a
    /// major are compatible for machine code).
    public static func majors(forDriver driverVersion: Int) -> (order: [Int], passedOver: [String]) {
        var order: [Int] = [], passedOver: [String] = []
        for major in majors {
            if driverVersion >= major * 1000 {
                order.append(major)
            } else {
                passedOver.append("CUDA \(major): its libraries need a driver for CUDA \(major).0 or newer; this one supports \(describe(driverVersion))")
            }
        }
        return (order, passedOver)
    }

    /// NVRTC alone (compiling needs no GPU and no driver): for checks on machines without a GPU.
    public static func loadCompiler() throws -> (nest_nvrtc, String) {
        var n = nest_nvrtc()
        let path = try load("NVRTC (libnvrtc.so.13 or .12: a CUDA toolkit, or pip's nvidia-cuda-nvrtc)", names: majors.map { "libnvrtc.so.\($0)" },
                            folders: searchFolders()) { nest_nvrtc_load($0, &n, $1, $2) }
        return (n, path)
    }

    /// Tries each folder's copy of each name, then each name through the loader's own search.
    private static func load(_ what: String, names: [String], folders: [String],
                             _ loader: (String, UnsafeMutablePointer<CChar>, Int) -> Int32) throws -> String {
        var tried: [String] = []
        let candidates = folders.flatMap { folder in names.map { "\(folder)/\($0)" } }.filter { FileManager.default.fileExists(atPath: $0) } + names
        for path in candidates {
            preloadCompanions(of: path)
            var error = [CChar](repeating: 0, count: 512)
            if loader(path, &error, error.count) == 0 { return path }
            tried.append("\(path): \(String(cString: error))")
        }
        throw NestError("cannot load \(what); looked in NEST_TRAIN_CUDA_LIBS, CUDA_HOME, /usr/local/cuda, the nvidia/*/lib folders of "
                        + "Python environments (VIRTUAL_ENV, CONDA_PREFIX, python3 on the PATH, ~/.local, /usr/local, /usr) and the loader's path. "
                        + "Last error: \(tried.last ?? "none")")
    }

    /// NVRTC opens `libnvrtc-builtins.so.X.Y` by name when it compiles, which the loader finds
    /// only on its own path; loading the one beside the chosen library first makes it found.
    private static func preloadCompanions(of path: String) {
        guard path.contains("/"), path.contains("libnvrtc") else { return }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        for file in ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        where file.hasPrefix("libnvrtc-builtins.so.") {
            _ = dlopen("\(folder)/\(file)", RTLD_NOW | RTLD_GLOBAL)
        }
    }

    /// `NEST_TRAIN_CUDA_LIBS`, `CUDA_HOME`/`CUDA_PATH`, `/usr/local/cuda`, then the `nvidia/*/lib`
    /// folders of PyPI's CUDA wheels (`nvidia/cu13/lib` for CUDA 13, `nvidia/cublas/lib` and
    /// the like for 12) in Python environments: `VIRTUAL_ENV`, `CONDA_PREFIX`, the one whose
    /// `python3` is first on the PATH, the user's `~/.local`, then `/usr/local` and `/usr`
    /// (Debian's pip installs into `dist-packages`).
    public static func searchFolders(environment env: [String: String] = ProcessInfo.processInfo.environment,
                              systemPrefixes: [String] = ["/usr/local", "/usr"]) -> [String] {
        var folders = (env["NEST_TRAIN_CUDA_LIBS"] ?? "").split(separator: ":").map(String.init)
        for home in [env["CUDA_HOME"], env["CUDA_PATH"], "/usr/local/cuda"].compactMap({ $0 }) {
            folders += [home + "/lib64", home + "/lib"]
        }
        var prefixes = [env["VIRTUAL_ENV"], env["CONDA_PREFIX"]].compactMap { $0 }
        for dir in (env["PATH"] ?? "").split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/python3") {
            prefixes.append(URL(fileURLWithPath: String(dir)).deletingLastPathComponent().path)
            break
        }
        prefixes += (env["HOME"].map { [$0 + "/.local"] } ?? []) + systemPrefixes
        let fm = FileManager.default
        var seen = Set<String>()
        for prefix in prefixes where seen.insert(prefix).inserted {
            for python in ((try? fm.contentsOfDirectory(atPath: prefix + "/lib")) ?? []).filter({ $0.hasPrefix("python3") }).sorted() {
                for packages in ["site-packages", "dist-packages"] {
                    let nvidia = "\(prefix)/lib/\(python)/\(packages)/nvidia"
                    for package in ((try? fm.contentsOfDirectory(atPath: nvidia)) ?? []).sorted() where fm.fileExists(atPath: "\(nvidia)/\(package)/lib") {
                        folders.append("\(nvidia)/\(package)/lib")
                    }
                }
            }
        }
        return folders
    }
}
