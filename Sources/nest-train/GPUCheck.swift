import ArgumentParser
import CUDA
import Foundation
import Tensor
import Training

/// `nest-train gpu-check`: every op of the engine on the GPU against the CPU engine on random
/// shapes (forward and every input gradient, fp32; `BackendComparison`), and the device's
/// large-SGEMM rate, written as one JSON report. Exits non-zero when a check is outside its
/// tolerance.
struct GPUCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check",
        abstract: "Check every op of the CUDA backend against the CPU engine on this machine's GPU; write a JSON report.")

    @Option(help: "The GPU: cuda or cuda:N.") var device = "cuda"
    @Option(help: "Write the JSON report here.") var json: String?
    @Option(help: "Size of the square SGEMM timed for the device's rate.") var gemmSize = 8192

    func run() throws {
        try reportingErrors {
            let gpu = try CUDADevice(ordinal: try DeviceOption.ordinal(device))
            let runtime = try CUDARuntime(device: gpu)
            let libraries = gpu.libraries
            log("device: \(gpu.summary)")
            log("libraries: \(libraries.driverPath), NVRTC \(runtime.compiler.version) \(runtime.toolkit.nvrtcPath), cuBLAS \(runtime.cublas.version) \(runtime.toolkit.cublasPath); \(runtime.choice)")
            let compileStart = Date()
            try runtime.loadEveryKernel()
            let compileSeconds = Date().timeIntervalSince(compileStart)
            log(String(format: "kernels: %d families compiled or loaded for sm_%d in %.2f s", KernelSource.all.count, gpu.architecture, compileSeconds))

            let cuda = Device(name: "cuda:\(gpu.ordinal)", backend: CUDABackend(runtime: runtime))
            var checks: [BackendComparison.Check] = []
            for seed in 1...3 { checks += BackendComparison(device: cuda, size: .large).all(seed: UInt64(seed)) }
            for c in checks where !c.passed {
                log(String(format: "FAIL %@ %@: relative error %.2e (tolerance %.0e)", c.name, "\(c.shape)", c.relativeError, c.tolerance))
            }
            let checksPeak = cuda.backend.memory.peakTotal
            let rate = StepBenchmark.deviceSGEMMRate(cuda, size: gemmSize) * 1e9
            let failed = checks.filter { !$0.passed }.count
            log(String(format: "%d checks, %d failed (worst relative error %.2e); SGEMM %d³ fp32: %.1f TFLOP/s; peak device memory of the checks %.1f MiB",
                       checks.count, failed, checks.map(\.relativeError).max() ?? 0, gemmSize, rate / 1e12, Double(checksPeak) / 1_048_576))
            if let json {
                let report: [String: Any] = [
                    "device": gpu.name, "architecture": "sm_\(gpu.architecture)", "multiprocessors": gpu.multiprocessors,
                    "memory_bytes": gpu.totalMemory, "driver_cuda_version": gpu.driverVersion, "nvrtc_version": runtime.compiler.version,
                    "cublas_version": runtime.cublas.version, "libraries": [libraries.driverPath, runtime.toolkit.nvrtcPath, runtime.toolkit.cublasPath], "toolkit": runtime.choice,
                    "kernel_compile_seconds": compileSeconds, "sgemm_size": gemmSize, "sgemm_tflops": rate / 1e12,
                    "checks": try JSONSerialization.jsonObject(with: JSONEncoder().encode(checks)), "failed": failed,
                    "host": Platform.summary,
                ]
                try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
            }
            if failed > 0 { throw ExitCode.failure }
        }
    }
}

/// `cpu`, `cuda` or `cuda:N`, as `--device` takes it.
enum DeviceOption {
    static func ordinal(_ text: String) throws -> Int {
        if text == "cuda" { return 0 }
        if text.hasPrefix("cuda:"), let n = Int(text.dropFirst(5)), n >= 0 { return n }
        throw ValidationError("--device: expected cuda or cuda:N, got '\(text)'")
    }
}
