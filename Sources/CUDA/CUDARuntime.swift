import Basics
import CCUDA
import Foundation
import Tensor

/// The GPU behind the CUDA backend: `cuMemAlloc`ed blocks, the driver's copies, the kernels of
/// `KernelSource.all` compiled by NVRTC on first use (one module per family, cached on disk),
/// and cuBLAS. Every call runs on the legacy default stream, so work runs in call order and a
/// copy to the host waits for what came before it. Copies to the device go through
/// `PinnedUploads` and return without waiting for the GPU: a loading thread's batch is queued
/// behind the step in flight instead of waiting for it.
public final class CUDARuntime: KernelRuntime, @unchecked Sendable {
    public let device: CUDADevice
    public let cublas: CUBLAS
    public let compiler: KernelCompiler
    private var modules: [String: CUDAModule] = [:]
    private var kernels: [String: CUDAKernel] = [:]
    private let lock: NSLock
    private let uploads: PinnedUploads<DriverUploadQueue>

    /// The toolkit in use and why: "CUDA 13 (driver supports CUDA 13.0)", with the majors
    /// passed over and their reasons.
    public let choice: String
    public let toolkit: CUDALibraries.Toolkit

    /// Takes the first toolkit (`CUDALibraries.toolkits`, newest major the driver supports
    /// first) whose cuBLAS handle and kernels this driver loads; a failure passes to the next.
    public init(device: CUDADevice) throws {
        self.device = device
        let libraries = device.libraries
        var passedOver = libraries.passedOver
        var chosen: (CUDALibraries.Toolkit, CUBLAS, KernelCompiler, CUDAModule)?
        for toolkit in libraries.toolkits {
            do {
                let cublas = try CUBLAS(device, library: toolkit.cublas)
                let compiler = KernelCompiler(nvrtc: toolkit.nvrtc, libraryPath: toolkit.nvrtcPath)
                // One family compiled and loaded now, so that code this driver cannot load
                // passes to the next toolkit here rather than failing at the first kernel.
                let probe = try CUDAModule(KernelSource.named(Self.probeFamily), on: device, compiler: compiler)
                chosen = (toolkit, cublas, compiler, probe)
                break
            } catch {
                passedOver.append("CUDA \(toolkit.major): \(error)")
            }
        }
        guard let (toolkit, cublas, compiler, probe) = chosen else {
            throw NestError("cuda:\(device.ordinal): no CUDA toolkit works with this driver (CUDA \(CUDALibraries.describe(libraries.driverVersion))): "
                            + passedOver.joined(separator: "; "))
        }
        self.toolkit = toolkit
        self.cublas = cublas
        self.compiler = compiler
        modules[Self.probeFamily] = probe
        choice = "CUDA \(toolkit.major) (driver supports CUDA \(CUDALibraries.describe(libraries.driverVersion)))"
            + (passedOver.isEmpty ? "" : "; passed over: " + passedOver.joined(separator: "; "))
        let lock = NSLock()
        self.lock = lock
        uploads = PinnedUploads(DriverUploadQueue(device: device, lock: lock))
    }

    /// The smallest kernel family, loaded first to check a toolkit.
    static let probeFamily = "dropout"

    public var name: String { "cuda:\(device.ordinal) (\(device.name))" }
    public var maxBlocks: Int { 65_535 }
    public var threadsPerBlock: Int { 256 }
    public var reductionThreadsPerBlock: Int { 256 }

    public var memory: RawMemory {
        let device = self.device
        return RawMemory(name: "GPU", allocate: { count in
            var p: nest_CUdeviceptr = 0
            guard (try? device.makeCurrent()) != nil, device.libraries.driver.cuMemAlloc(&p, max(count, 1) * 4) == 0 else { return nil }
            return UnsafeMutablePointer(bitPattern: UInt(p))
        }, deallocate: { block, _ in
            // A failed free is an earlier fault surfacing (the driver reports errors at the next
            // call): named, never ignored.
            do {
                try device.makeCurrent()
                try device.check(device.libraries.driver.cuMemFree(nest_CUdeviceptr(UInt(bitPattern: block))), "cuMemFree")
            } catch {
                fatalError("cuda:\(device.ordinal) (\(device.name)): \(error)")
            }
        })
    }

    /// `NEST_TRAIN_CUDA_SYNC=1`: wait for the GPU after every kernel and GEMM, so that a fault
    /// is reported by the launch that caused it (kernel, grid, arguments) instead of by a later
    /// call. Slow; for finding a fault, never for training.
    static let synchronizeEachLaunch = ProcessInfo.processInfo.environment["NEST_TRAIN_CUDA_SYNC"] == "1"

    private func call(_ what: String, _ body: (nest_cuda_driver) -> nest_CUresult) { device.call(what, lock: lock, body) }

    fileprivate static func address(_ p: UnsafeRawPointer) -> nest_CUdeviceptr { nest_CUdeviceptr(UInt(bitPattern: p)) }

    /// Staged in page-locked memory and queued (see `PinnedUploads`); a plain synchronous copy
    /// where the system gives no page-locked memory.
    public func copy(fromHost source: UnsafeRawPointer, to address: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes > 0, !uploads.upload(from: source, to: address, bytes: bytes) else { return }
        call("cuMemcpyHtoD") { $0.cuMemcpyHtoD(Self.address(address), source, bytes) }
    }

    public func copy(from address: UnsafeRawPointer, toHost destination: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes > 0 else { return }
        call("cuMemcpyDtoH") { $0.cuMemcpyDtoH(destination, Self.address(address), bytes) }
    }

    public func copy(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes > 0 else { return }
        call("cuMemcpyDtoD") { $0.cuMemcpyDtoD(Self.address(destination), Self.address(source), bytes) }
    }

    public func fill(_ address: UnsafeMutableRawPointer, word: UInt32, count: Int) {
        guard count > 0 else { return }
        call("cuMemsetD32") { $0.cuMemsetD32(Self.address(address), word, count) }
    }

    public func launch(_ kernel: String, grid: Int, block: Int, sharedBytes: Int, _ arguments: [KernelArgument]) {
        lock.lock()
        defer { lock.unlock() }
        do {
            try device.makeCurrent()
            try loaded(kernel).launch(grid: grid, block: block, sharedBytes: sharedBytes, arguments)
            if Self.synchronizeEachLaunch { try device.synchronize() }
        } catch {
            fatalError("\(name): kernel \(kernel) (grid \(grid) × \(block) threads, \(sharedBytes) B shared; arguments \(KernelArgument.describe(arguments))): \(error)")
        }
    }

    /// Compiles (or reads from the cache) and loads every kernel family now, instead of at each
    /// family's first launch: how `gpu-check` times compilation.
    public func loadEveryKernel() throws {
        lock.lock()
        defer { lock.unlock() }
        try device.makeCurrent()
        for name in KernelSource.familyOfKernel.keys.sorted() { _ = try loaded(name) }
    }

    /// The kernel, its family's module compiled (or read from the cache) and loaded on first use.
    private func loaded(_ kernel: String) throws -> CUDAKernel {
        if let k = kernels[kernel] { return k }
        guard let family = KernelSource.familyOfKernel[kernel] else { preconditionFailure("no kernel \(kernel) in Sources/CUDA/Kernels") }
        if modules[family] == nil { modules[family] = try CUDAModule(KernelSource.named(family), on: device, compiler: compiler) }
        let k = try modules[family]!.kernel(kernel)
        kernels[kernel] = k
        return k
    }

    public func sgemm(_ g: ColumnMajorGEMM) {
        lock.lock()
        defer { lock.unlock() }
        do {
            try device.makeCurrent()
            try cublas.sgemmStridedBatched(g)
            if Self.synchronizeEachLaunch { try device.synchronize() }
        } catch {
            fatalError("\(name): cublasSgemmStridedBatched (\(g.batches) × m \(g.m), n \(g.n), k \(g.k), transposes \(g.transposeA) \(g.transposeB)): \(error)")
        }
    }

    public func synchronize() { call("cuCtxSynchronize") { $0.cuCtxSynchronize() } }
}

/// `PinnedUploads`' queue on the GPU: `cuMemHostAlloc`ed memory, `cuMemcpyHtoDAsync` on the
/// legacy default stream (the one every kernel runs on) and events without timing.
final class DriverUploadQueue: UploadQueue {
    let device: CUDADevice
    let lock: NSLock

    init(device: CUDADevice, lock: NSLock) {
        self.device = device
        self.lock = lock
    }

    private func call(_ what: String, _ body: (nest_cuda_driver) -> nest_CUresult) { device.call(what, lock: lock, body) }

    func allocatePinned(bytes: Int) -> UnsafeMutableRawPointer? {
        var p: UnsafeMutableRawPointer?
        lock.lock()
        defer { lock.unlock() }
        guard (try? device.makeCurrent()) != nil, device.libraries.driver.cuMemHostAlloc(&p, bytes, 0) == 0 else { return nil }
        return p
    }

    func freePinned(_ address: UnsafeMutableRawPointer) { call("cuMemFreeHost") { $0.cuMemFreeHost(address) } }

    func queueCopy(from pinned: UnsafeRawPointer, to device: UnsafeMutableRawPointer, bytes: Int) {
        call("cuMemcpyHtoDAsync") { $0.cuMemcpyHtoDAsync(CUDARuntime.address(device), pinned, bytes, nil) }
    }

    func makeEvent() -> nest_CUevent {
        var event: nest_CUevent?
        call("cuEventCreate") { $0.cuEventCreate(&event, UInt32(NEST_CU_EVENT_DISABLE_TIMING)) }
        return event!
    }

    func record(_ event: nest_CUevent) { call("cuEventRecord") { $0.cuEventRecord(event, nil) } }

    func isDone(_ event: nest_CUevent) -> Bool {
        var status: nest_CUresult = 0
        call("cuEventQuery") { api in
            status = api.cuEventQuery(event)
            return status == NEST_CUDA_ERROR_NOT_READY ? 0 : status
        }
        return status == 0
    }

    func wait(_ event: nest_CUevent) { call("cuEventSynchronize") { $0.cuEventSynchronize(event) } }
    func destroy(_ event: nest_CUevent) { call("cuEventDestroy") { $0.cuEventDestroy(event) } }
}
