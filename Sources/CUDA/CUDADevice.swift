import Basics
import CCUDA
import Foundation

/// One GPU through the driver API: its primary context made current on the calling thread,
/// what `info` and the run header say about it, and plain allocations and copies.
public final class CUDADevice: @unchecked Sendable {
    public let libraries: CUDALibraries
    public let ordinal: Int
    public let name: String
    /// Compute capability as one number: 90 for 9.0 (sm_90).
    public let architecture: Int
    public let multiprocessors: Int
    public let totalMemory: Int
    /// The driver's CUDA version, e.g. 13000 for 13.0.
    public let driverVersion: Int
    private let device: nest_CUdevice
    private let context: nest_CUcontext

    /// How many GPUs the driver reports; the error names what is missing (library, driver).
    public static func count() throws -> Int {
        let api = try CUDALibraries.shared.get().driver
        try check(api.cuInit(0), "cuInit", api)
        var count: Int32 = 0
        try check(api.cuDeviceGetCount(&count), "cuDeviceGetCount", api)
        return Int(count)
    }

    /// Opens GPU `ordinal`; the error names what is missing (library, driver, device).
    public init(ordinal: Int = 0) throws {
        libraries = try CUDALibraries.shared.get()
        self.ordinal = ordinal
        let api = libraries.driver
        try Self.check(api.cuInit(0), "cuInit", api)
        var version: Int32 = 0, count: Int32 = 0
        try Self.check(api.cuDriverGetVersion(&version), "cuDriverGetVersion", api)
        try Self.check(api.cuDeviceGetCount(&count), "cuDeviceGetCount", api)
        guard ordinal >= 0 && ordinal < count else {
            throw NestError("cuda:\(ordinal): the driver reports \(count) GPU\(count == 1 ? "" : "s")")
        }
        var dev: nest_CUdevice = 0
        try Self.check(api.cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet", api)
        var nameBytes = [CChar](repeating: 0, count: 256)
        try Self.check(api.cuDeviceGetName(&nameBytes, Int32(nameBytes.count), dev), "cuDeviceGetName", api)
        func attribute(_ a: Int32) throws -> Int {
            var v: Int32 = 0
            try Self.check(api.cuDeviceGetAttribute(&v, a, dev), "cuDeviceGetAttribute", api)
            return Int(v)
        }
        architecture = try attribute(Int32(NEST_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)) * 10
            + attribute(Int32(NEST_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))
        multiprocessors = try attribute(Int32(NEST_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT))
        var total = 0
        try Self.check(api.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem", api)
        var ctx: nest_CUcontext?
        try Self.check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain", api)
        guard let ctx else { throw NestError("cuda:\(ordinal): no context") }
        try Self.check(api.cuCtxSetCurrent(ctx), "cuCtxSetCurrent", api)
        name = String(cString: nameBytes)
        totalMemory = total
        driverVersion = Int(version)
        device = dev
        context = ctx
    }

    /// Makes this device's context current on the calling thread (the driver's current context
    /// is per thread).
    public func makeCurrent() throws { try check(libraries.driver.cuCtxSetCurrent(context), "cuCtxSetCurrent") }

    public var freeMemory: Int {
        var free = 0, total = 0
        _ = libraries.driver.cuMemGetInfo(&free, &total)
        return free
    }

    /// "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB, 139.1 GiB free) · driver CUDA 13.0"
    public var summary: String {
        String(format: "%@ (sm_%d, %d SMs, %.1f GiB, %.1f GiB free) · driver CUDA %d.%d", name, architecture, multiprocessors,
               Double(totalMemory) / 1_073_741_824, Double(freeMemory) / 1_073_741_824, driverVersion / 1000, driverVersion % 1000 / 10)
    }

    /// Runs a driver call under `lock` with this device's context current on the calling thread
    /// (data-loading threads create tensors too); a failure ends the process with the driver's
    /// message (see `KernelRuntime`).
    func call(_ what: String, lock: NSLock, _ body: (nest_cuda_driver) -> nest_CUresult) {
        lock.lock()
        defer { lock.unlock() }
        do {
            try makeCurrent()
            try check(body(libraries.driver), what)
        } catch {
            fatalError("cuda:\(ordinal) (\(name)): \(error)")
        }
    }

    public func synchronize() throws { try check(libraries.driver.cuCtxSynchronize(), "cuCtxSynchronize") }

    func check(_ result: nest_CUresult, _ call: String) throws { try Self.check(result, call, libraries.driver) }

    static func check(_ result: nest_CUresult, _ call: String, _ api: nest_cuda_driver) throws {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = api.cuGetErrorString(result, &text)
        throw NestError("CUDA: \(call) failed: \(text.map { String(cString: $0) } ?? "error \(result)")")
    }
}
