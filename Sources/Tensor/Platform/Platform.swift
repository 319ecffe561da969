import Foundation

/// What a run header, `nest-train info` and `nest-train bench` say about the machine: the CPU,
/// the instruction-set level of our own kernels, the BLAS library and kernel, and the threads.
public enum Platform {
    /// The level our own kernels were compiled for: release builds target Haswell (AVX2 + FMA,
    /// Package.swift), debug builds the x86-64 baseline.
    public static var kernelISA: CPU.ISA {
        #if KERNELS_AVX2
        .avx2
        #else
        .sse
        #endif
    }

    public static var fields: [String: Any] {
        let cpu = CPU.current
        return ["cpu_model": cpu.model, "cpu_family": cpu.family, "cpu_model_number": cpu.modelNumber,
                "cpu_isa": cpu.isa.description, "kernel_isa": kernelISA.description,
                "blas": BLASKernel.library.split(separator: " ").prefix(2).joined(separator: " "), "blas_kernel": BLASKernel.core,
                "blas_kernel_isa": BLASKernel.isa(ofCore: BLASKernel.core).description, "threads": Parallel.threads]
    }

    /// One line, e.g. "AMD EPYC (family 26 model 2, AVX-512) · own kernels AVX2+FMA · OpenBLAS 0.3.21, Cooperlake kernel (AVX-512) · 2 threads".
    public static var summary: String {
        let cpu = CPU.current, core = BLASKernel.core
        let blas = BLASKernel.library.split(separator: " ").prefix(2).joined(separator: " ")
        return "\(cpu.model) (family \(cpu.family) model \(cpu.modelNumber), \(cpu.isa)) · own kernels \(kernelISA) · "
            + "\(blas), \(core) kernel (\(BLASKernel.isa(ofCore: core))) · \(Parallel.threads) thread\(Parallel.threads == 1 ? "" : "s")"
    }
}
