import CCUDA
import Formats

/// A loaded cubin and the kernels in it.
public final class CUDAModule {
    public let device: CUDADevice
    private let handle: nest_CUmodule

    /// Compiles (or takes from the cache) `source` for the device's architecture and loads it.
    public init(_ source: KernelSource, on device: CUDADevice, compiler: KernelCompiler) throws {
        self.device = device
        let image = try compiler.cubin(source, architecture: device.architecture)
        var module: nest_CUmodule?
        try image.withUnsafeBytes { try device.check(device.libraries.driver.cuModuleLoadData(&module, $0.baseAddress), "cuModuleLoadData(\(source.family))") }
        guard let module else { throw NestError("\(source.family).cu: the driver loaded no module") }
        handle = module
    }

    deinit { _ = device.libraries.driver.cuModuleUnload(handle) }

    public func kernel(_ name: String) throws -> CUDAKernel {
        var function: nest_CUfunction?
        try device.check(device.libraries.driver.cuModuleGetFunction(&function, handle, name), "cuModuleGetFunction(\(name))")
        guard let function else { throw NestError("no kernel \(name)") }
        return CUDAKernel(name: name, function: function, module: self)
    }
}

/// One argument of a kernel launch, passed by value as the kernel's C signature declares it.
public enum KernelArgument {
    case buffer(DeviceBuffer?)
    case int32(Int32)
    case int64(Int)
    case uint32(UInt32)
    case float(Float)
}

public struct CUDAKernel {
    public let name: String
    let function: nest_CUfunction
    let module: CUDAModule

    /// Launches on the default stream (work on it runs in order).
    public func launch(grid: Int, block: Int, sharedBytes: Int = 0, _ arguments: [KernelArgument]) throws {
        // cuLaunchKernel reads each argument through a pointer to its value.
        let values: [UnsafeMutableRawPointer] = arguments.map { argument in
            let p = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
            switch argument {
            case .buffer(let b): p.storeBytes(of: b?.address ?? 0, as: nest_CUdeviceptr.self)
            case .int32(let v): p.storeBytes(of: v, as: Int32.self)
            case .int64(let v): p.storeBytes(of: Int64(v), as: Int64.self)
            case .uint32(let v): p.storeBytes(of: v, as: UInt32.self)
            case .float(let v): p.storeBytes(of: v, as: Float.self)
            }
            return p
        }
        defer { values.forEach { $0.deallocate() } }
        var parameters: [UnsafeMutableRawPointer?] = values
        let device = module.device
        try parameters.withUnsafeMutableBufferPointer { params in
            try device.check(device.libraries.driver.cuLaunchKernel(function, UInt32(grid), 1, 1, UInt32(block), 1, 1, UInt32(sharedBytes), nil,
                                                                   params.baseAddress, nil), "cuLaunchKernel(\(name))")
        }
        withExtendedLifetime(arguments) {}
    }
}
