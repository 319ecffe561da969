import ArgumentParser
import CUDA
import Foundation
import Tensor
import Training

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The machine (CPU, instruction-set level, BLAS kernel, threads) and, with --config, parameter counts and a training-memory estimate.")

    @Option(help: "Config file.") var config: String?
    @Option(help: "A NeMo .nemo model: its architecture, parameter counts, versions and weight dtypes.") var nemo: String?
    @Option(help: "Batch size for the memory estimate.") var batch = 8
    @Option(help: "Utterance duration in seconds for the memory estimate.") var seconds = 10.0
    @Option(help: "cpu (default), or cuda / cuda:N: also describe that GPU and the CUDA libraries found.") var device = "cpu"
    @Flag(help: "Print JSON.") var json = false
    @Flag(name: .customLong("blas-kernel"), help: "Print only the OpenBLAS kernel nest-train runs (after its own selection), e.g. for OPENBLAS_CORETYPE.")
    var blasKernel = false
    @Argument(help: "Overrides (key.path=value).") var overrides: [String] = []

    func run() throws {
        if blasKernel {
            print(BLASKernel.core)
            return
        }
        try reportingErrors {
            if device != "cpu" {
                let gpu = try CUDADevice(ordinal: try DeviceOption.ordinal(device))
                let compiler = KernelCompiler(nvrtc: gpu.libraries.nvrtc, libraryPath: gpu.libraries.nvrtcPath)
                print("gpu:        \(gpu.summary)")
                print("cuBLAS:     \(try CUBLAS(gpu).version) (\(gpu.libraries.cublasPath))")
                print("NVRTC:      \(compiler.version) (\(gpu.libraries.nvrtcPath))")
                print("driver:     \(gpu.libraries.driverPath)")
            }
            if let nemo {
                let report = try NemoReport(path: nemo)
                print(json ? report.json : report.text)
                return
            }
            let summary = try config.map { path in
                let cfg = try loadConfig(path, overrides: overrides, requireData: false)
                return ModelSummary(model: ModelFactory.make(cfg).0, config: cfg.model, batch: batch, seconds: seconds)
            }
            if json {
                let platform = String(decoding: try JSONSerialization.data(withJSONObject: Platform.fields, options: [.sortedKeys]), as: UTF8.self)
                print(summary.map { "{\"platform\": \(platform), " + $0.json.dropFirst() } ?? "{\"platform\": \(platform)}")
            } else {
                print("machine:    \(Platform.summary)")
                if let summary { print(summary.text) }
            }
        }
    }
}
