import Tensor

/// What the CUDA backend needs of a GPU: memory, copies, kernel launches by name and cuBLAS's
/// strided-batched SGEMM, all in the order they are called (one stream).
///
/// `CUDARuntime` is the GPU (driver API, NVRTC, cuBLAS). `HostKernelRuntime` runs the same
/// kernel sources on host threads, compiled by the host's C++ compiler with CUDA's few
/// built-ins emulated, and SGEMM with OpenBLAS in cuBLAS's column-major convention: how the
/// backend's launch geometry, argument packing and kernel logic are tested without a GPU.
///
/// A failure here (a driver error, a kernel that does not load) ends the process with the
/// driver's message: the engine's kernels do not throw, and a GPU that faults mid-step has
/// nothing to continue with.
public protocol KernelRuntime: AnyObject {
    /// "cuda:0 (NVIDIA H200)" or "host emulation".
    var name: String { get }
    /// Fresh device blocks for the backend's `BufferPool`.
    var memory: RawMemory { get }
    /// The most blocks a grid-stride launch uses (the emulator runs blocks one after another).
    var maxBlocks: Int { get }
    /// Threads per block of the backend's launches: a power of two ≥ 32 (the row kernels'
    /// block reductions need one); the emulator's are host threads, so it asks for few.
    var threadsPerBlock: Int { get }
    /// Threads per block of the block reductions (row kernels, sums of squares): the GPU's own
    /// size on the emulation too, since a reduction's order and its use of shared memory depend
    /// on it.
    var reductionThreadsPerBlock: Int { get }
    func copy(fromHost source: UnsafeRawPointer, to address: UnsafeMutableRawPointer, bytes: Int)
    func copy(from address: UnsafeRawPointer, toHost destination: UnsafeMutableRawPointer, bytes: Int)
    func copy(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, bytes: Int)
    /// `count` 32-bit words at `address` set to `word`.
    func fill(_ address: UnsafeMutableRawPointer, word: UInt32, count: Int)
    /// One launch of a kernel of `KernelSource.all` with a 1-D grid.
    func launch(_ kernel: String, grid: Int, block: Int, sharedBytes: Int, _ arguments: [KernelArgument])
    /// cuBLAS's `cublasSgemmStridedBatched`, column-major.
    func sgemm(_ g: ColumnMajorGEMM)
    /// Returns when everything called so far is done.
    func synchronize()
}

/// One column-major strided-batched SGEMM as cuBLAS takes it: C = alpha·op(A)·op(B) + beta·C.
public struct ColumnMajorGEMM {
    public var transposeA: Bool, transposeB: Bool
    public var m: Int, n: Int, k: Int
    public var alpha: Float, beta: Float
    public var a: UnsafeRawPointer, lda: Int, strideA: Int
    public var b: UnsafeRawPointer, ldb: Int, strideB: Int
    public var c: UnsafeMutableRawPointer, ldc: Int, strideC: Int
    public var batches: Int
}
