import Basics
import CCUDA

/// A loaded module (a cubin, or PTX the driver compiles) and the kernels in it.
public final class CUDAModule {
    public let device: CUDADevice
    private let handle: nest_CUmodule

    /// Compiles (or takes from the cache) `source` for the device's architecture and loads it.
    public init(_ source: KernelSource, on device: CUDADevice, compiler: KernelCompiler) throws {
        self.device = device
        let image = try compiler.image(source, architecture: device.architecture)
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
    /// Device memory by address (a tensor's, on the CUDA backend); nil passes a null pointer.
    case memory(UnsafeRawPointer?)
    case int32(Int32)
    case int64(Int)
    case uint32(UInt32)
    case float(Float)

    /// The arguments as a fault report shows them: sizes as numbers, memory as its address.
    public static func describe(_ arguments: [KernelArgument]) -> String {
        "(" + arguments.map { argument in
            switch argument {
            case .memory(let p): p.map { "0x" + String(UInt(bitPattern: $0), radix: 16) } ?? "null"
            case .int32(let v): "\(v)"
            case .int64(let v): "\(v)"
            case .uint32(let v): "\(v)"
            case .float(let v): "\(v)"
            }
        }.joined(separator: ", ") + ")"
    }
}

public struct CUDAKernel {
    public let name: String
    let function: nest_CUfunction
    let module: CUDAModule

    /// Launches on the default stream (work on it runs in order).
    public func launch(grid: Int, block: Int, sharedBytes: Int = 0, _ arguments: [KernelArgument]) throws {
        let device = module.device
        try KernelArgument.withParameters(arguments) { params in
            try device.check(device.libraries.driver.cuLaunchKernel(function, UInt32(grid), 1, 1, UInt32(block), 1, 1, UInt32(sharedBytes), nil,
                                                                   params, nil), "cuLaunchKernel(\(name))")
        }
    }
}

extension KernelArgument {
    /// The launch's parameter array as cuLaunchKernel reads it: one pointer to each argument's
    /// value, valid during `body`.
    public static func withParameters<R>(_ arguments: [KernelArgument], _ body: (UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws -> R) rethrows -> R {
        let values: [UnsafeMutableRawPointer] = arguments.map { argument in
            let p = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
            switch argument {
            case .memory(let m): p.storeBytes(of: nest_CUdeviceptr(UInt(bitPattern: m)), as: nest_CUdeviceptr.self)
            case .int32(let v): p.storeBytes(of: v, as: Int32.self)
            case .int64(let v): p.storeBytes(of: Int64(v), as: Int64.self)
            case .uint32(let v): p.storeBytes(of: v, as: UInt32.self)
            case .float(let v): p.storeBytes(of: v, as: Float.self)
            }
            return p
        }
        defer { values.forEach { $0.deallocate() } }
        var parameters: [UnsafeMutableRawPointer?] = values
        return try withExtendedLifetime(arguments) { try parameters.withUnsafeMutableBufferPointer { try body($0.baseAddress) } }
    }
}
