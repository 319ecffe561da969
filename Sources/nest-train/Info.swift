import Interop
import DataLoading
import ArgumentParser
import Config
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
    @Option(help: "cuda or cuda:N: describe that GPU and the CUDA libraries found (default: what trainer.accelerator: auto would use).")
    var device: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(name: .customLong("blas-kernel"), help: "Print only the OpenBLAS kernel nest-train runs (after its own selection), e.g. for OPENBLAS_CORETYPE.")
    var blasKernel = false
    @Flag(name: .customLong("class-defaults"), help: "Print what an absent config key means, per NeMo class (docs/configuration.md).")
    var classDefaults = false
    @Argument(help: "Overrides (key.path=value).") var overrides: [String] = []

    func run() throws {
        if blasKernel {
            print(BLASKernel.core)
            return
        }
        if classDefaults {
            print(ClassDefaults.reference, terminator: "")
            return
        }
        try reportingErrors {
            if let device, device != "cpu" {
                let gpu = try CUDADevice(ordinal: try DeviceOption.ordinal(device))
                let runtime = try CUDARuntime(device: gpu)
                print("gpu:        \(gpu.summary)")
                print("toolkit:    \(runtime.choice)")
                print("cuBLAS:     \(runtime.cublas.version) (\(runtime.toolkit.cublasPath))")
                print("NVRTC:      \(runtime.compiler.version) (\(runtime.toolkit.nvrtcPath)), kernels for \(KernelCompiler.target(for: gpu.architecture, supported: runtime.compiler.supportedArchitectures)?.name ?? "none")")
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
            let auto = Self.autoDevice()
            if json {
                var fields = Platform.fields
                fields["device"] = auto
                let platform = String(decoding: try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)
                print(summary.map { "{\"platform\": \(platform), " + $0.json.dropFirst() } ?? "{\"platform\": \(platform)}")
            } else {
                print("machine:    \(Platform.summary)")
                print("device:     \(auto)")
                if let summary { print(summary.text) }
            }
        }
    }

    /// What training with `trainer.accelerator: auto` would compute on (the first GPU, as a
    /// single process takes it: driver, CUDA, cuBLAS, NVRTC and free memory), or why the CPU.
    static func autoDevice() -> String {
        do {
            return "\(try ComputeDevice.cuda(ordinal: 0).description) (what trainer.accelerator: auto uses)"
        } catch {
            return "cpu (trainer.accelerator: auto finds no usable GPU: \(error))"
        }
    }
}
