import Basics
import CCUDA

/// cuBLAS for the GEMMs, in fp32 without TF32 (`trainer.precision: 32` semantics; torch's
/// default `float32_matmul_precision` is "highest", which is the same).
public final class CUBLAS {
    public let device: CUDADevice
    /// The cuBLAS of the toolkit in use (`CUDALibraries.Toolkit`).
    let library: nest_cublas
    private let handle: nest_cublasHandle

    public init(_ device: CUDADevice, library: nest_cublas) throws {
        self.device = device
        self.library = library
        var h: nest_cublasHandle?
        try Self.check(library.cublasCreate(&h), "cublasCreate")
        guard let h else { throw NestError("cuBLAS: no handle") }
        handle = h
        try Self.check(library.cublasSetMathMode(h, Int32(NEST_CUBLAS_DEFAULT_MATH)), "cublasSetMathMode")
    }

    deinit { _ = library.cublasDestroy(handle) }

    /// e.g. 130100 for 13.1.0.
    public var version: Int {
        var v: Int32 = 0
        _ = library.cublasGetVersion(handle, &v)
        return Int(v)
    }

    /// `cublasSgemmStridedBatched` on device addresses (column-major, as cuBLAS states shapes).
    public func sgemmStridedBatched(_ g: ColumnMajorGEMM) throws {
        var alpha = g.alpha, beta = g.beta
        try Self.check(library.cublasSgemmStridedBatched(
            handle, Int32(g.transposeA ? NEST_CUBLAS_OP_T : NEST_CUBLAS_OP_N), Int32(g.transposeB ? NEST_CUBLAS_OP_T : NEST_CUBLAS_OP_N),
            Int32(g.m), Int32(g.n), Int32(g.k), &alpha, g.a.assumingMemoryBound(to: Float.self), Int32(g.lda), Int64(g.strideA),
            g.b.assumingMemoryBound(to: Float.self), Int32(g.ldb), Int64(g.strideB), &beta,
            g.c.assumingMemoryBound(to: Float.self), Int32(g.ldc), Int64(g.strideC), Int32(g.batches)), "cublasSgemmStridedBatched")
    }

    static func check(_ status: nest_cublasStatus, _ call: String) throws {
        guard status != 0 else { return }
        throw NestError("cuBLAS: \(call) failed with status \(status)")
    }
}
