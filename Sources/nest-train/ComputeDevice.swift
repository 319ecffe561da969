import Basics
import Config
import ArgumentParser
import CUDA
import Foundation
import Tensor
import Training

/// The device a command computes on: Lightning's `trainer.accelerator` and `trainer.devices`
/// for training, `--device cpu|cuda[:N]` for the other commands. A chosen GPU becomes
/// `Device.default`, so the model, the batches and every op live there.
enum ComputeDevice {
    /// One CUDA device per ordinal and process.
    nonisolated(unsafe) private static var opened: [Int: (device: Device, description: String)] = [:]

    /// GPU `ordinal` with the CUDA backend; the error names what is missing (library, driver,
    /// device). `NEST_TRAIN_CUDA_RUNTIME=host-emulation` runs the same backend on the host
    /// emulation of its kernels instead (slow; how tests train "on a GPU" without one).
    static func cuda(ordinal: Int) throws -> (device: Device, description: String) {
        if let known = opened[ordinal] { return known }
        let runtime: KernelRuntime
        let description: String
        if emulated {
            let visible = visibleGPUs(emulated: ())
            guard ordinal < visible else { throw NestError("cuda:\(ordinal): the host emulation shows \(visible) GPU\(visible == 1 ? "" : "s") (CUDA_VISIBLE_DEVICES)") }
            runtime = try HostKernelRuntime()
            description = "cuda:\(ordinal) on the host emulation of the CUDA kernels (NEST_TRAIN_CUDA_RUNTIME)"
        } else {
            let gpu = try CUDADevice(ordinal: ordinal)
            let cuda = try CUDARuntime(device: gpu)
            runtime = cuda
            description = "cuda:\(ordinal) \(gpu.summary) · cuBLAS \(cuda.cublas.version) · NVRTC \(cuda.compiler.version) (\(cuda.toolkit.cublasPath)) · \(cuda.choice)"
        }
        let profiled = ProcessInfo.processInfo.environment["NEST_TRAIN_GPU_PROFILE"] == "1" ? ProfilingRuntime(runtime) : nil
        let device = Device(name: "cuda:\(ordinal)", backend: CUDABackend(runtime: profiled ?? runtime))
        opened[ordinal] = (device, description + (profiled == nil ? "" : "; every kernel timed (NEST_TRAIN_GPU_PROFILE)"))
        return opened[ordinal]!
    }

    /// With NEST_TRAIN_GPU_PROFILE=1: where the GPU's time went, kernel by kernel, on stderr.
    static func reportProfile() {
        for (_, opened) in opened.sorted(by: { $0.key < $1.key }) {
            guard let profiled = (opened.device.backend as? CUDABackend)?.counting.inner as? ProfilingRuntime else { continue }
            log("\(opened.device.name) time by kernel (each timed alone, launch latency included):")
            for line in profiled.report() { log("  " + line) }
        }
    }

    /// Whether the CUDA backend runs on the host emulation of its kernels.
    static var emulated: Bool { ProcessInfo.processInfo.environment["NEST_TRAIN_CUDA_RUNTIME"] == "host-emulation" }

    /// The GPUs this process sees: the driver's count, which `CUDA_VISIBLE_DEVICES` narrows
    /// (a launcher that gives each task its own GPU sets it to one per process).
    static func visibleGPUs() throws -> Int { emulated ? visibleGPUs(emulated: ()) : try CUDADevice.count() }

    /// The emulation's count follows `CUDA_VISIBLE_DEVICES` as the driver does; 8 when unset.
    private static func visibleGPUs(emulated: Void) -> Int {
        ProcessInfo.processInfo.environment["CUDA_VISIBLE_DEVICES"].map { $0.split(separator: ",").count } ?? 8
    }

    /// `--device`: cpu (nil: the default device), cuda or cuda:N.
    static func named(_ text: String) throws -> (device: Device?, description: String) {
        if text == "cpu" { return (nil, "cpu") }
        let gpu = try cuda(ordinal: try DeviceOption.ordinal(text))
        return (gpu.device, gpu.description)
    }

    /// This process's device for training. Under a launcher, local rank r of the node takes the
    /// r-th GPU of `devices` (one process per GPU, as Lightning's DDP runs them), or the one GPU
    /// it sees when the launcher gave each task its own (Slurm's `--gpus-per-task=1`,
    /// Kubernetes, `CUDA_VISIBLE_DEVICES` set per rank); `auto` falls back to the CPU, saying
    /// why, where `gpu` is an error naming what is missing.
    static func forTraining(_ config: RunConfig, local: (rank: Int, size: Int)) throws -> (device: Device?, description: String) {
        guard config.accelerator != .cpu else { return (nil, "cpu (trainer.accelerator: cpu)") }
        switch config.devices {
        case .auto, .list: break
        case .count(let n):
            guard local.size == n || (local.size == 1 && n == 1) else {
                throw NestError("trainer.devices: \(n) needs one process per GPU on each machine, started by the launcher (mpirun -np \(n) "
                                + "or srun --ntasks-per-node=\(n)); this machine runs \(local.size) process\(local.size == 1 ? "" : "es"); nest-train does not spawn them itself")
            }
        }
        if case .list(let ordinals) = config.devices, local.size != ordinals.count {
            throw NestError("trainer.devices lists \(ordinals.count) GPU\(ordinals.count == 1 ? "" : "s") (\(ordinals)) for \(local.size) "
                            + "process\(local.size == 1 ? "" : "es") on this machine: one process per GPU, started by the launcher (mpirun, srun)")
        }
        do {
            let visible = try visibleGPUs()
            let ordinal: Int
            if case .list(let ordinals) = config.devices {
                ordinal = ordinals[local.rank]
            } else if visible == 1 {
                ordinal = 0   // each task sees its own GPU
            } else {
                // Every process of the machine needs a GPU of its own; otherwise `auto` keeps
                // them all on the CPU rather than mixing devices across the ranks of one job.
                guard local.size <= visible else {
                    throw NestError("\(local.size) processes on this machine and \(visible) GPU\(visible == 1 ? "" : "s") visible to each: "
                                    + "one process per GPU (or one visible GPU per process)")
                }
                ordinal = local.rank
            }
            let gpu = try cuda(ordinal: ordinal)
            return (gpu.device, gpu.description)
        } catch {
            guard config.accelerator == .auto else { throw NestError("trainer.accelerator: gpu: \(error)") }
            return (nil, "cpu (trainer.accelerator: auto found no usable GPU: \(error))")
        }
    }

    /// This process's place on its machine under mpirun (Open MPI, MPICH), srun or torchrun;
    /// (0, 1) alone.
    static var localRank: (rank: Int, size: Int) {
        let env = ProcessInfo.processInfo.environment
        for (rank, size) in [("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"), ("MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
                             ("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")] {
            if let r = env[rank].flatMap(Int.init) { return (r, env[size].flatMap(Int.init) ?? r + 1) }
        }
        return (0, 1)
    }
}

/// `--device cpu|cuda[:N]` of extract, probe and bench: where the model and its tensors live.
struct DeviceOptions: ParsableArguments {
    @Option(help: "cpu (default), cuda or cuda:N: compute on that GPU.") var device = "cpu"

    /// Makes the chosen device the default one and says which it is.
    func select() throws {
        let chosen = try ComputeDevice.named(device)
        if let d = chosen.device {
            Device.default = d
            log("device: \(chosen.description)")
        }
    }
}
