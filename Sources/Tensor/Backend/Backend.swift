import Foundation

/// What a storage block holds. Float32 is the only element type computed today; the tag is on
/// every storage so that bf16 activations and Float64/Int64 state can join without a new
/// storage type.
public enum ElementType: String, Sendable {
    case float32

    public var byteSize: Int { 4 }
}

/// Where tensors live and which kernels compute on them: a device names one backend instance.
///
/// Every op checks that its operands share a device and allocates its result there (`Tensor`'s
/// `init(uninitializedShape:on:)`); values cross between host and device only through the
/// explicit copies (`Tensor(_:shape:on:)`, `array`, `withHostValues`, `withMutableHostValues`).
public final class Device: CustomStringConvertible, @unchecked Sendable {
    public let name: String
    public let backend: any Backend

    public init(name: String, backend: any Backend) {
        self.name = name
        self.backend = backend
    }

    public var description: String { name }

    /// The process's CPU: today's kernels over host memory.
    public static let cpu = Device(name: "cpu", backend: CPUBackend())

    /// A test-only device (see `CheckingBackend`): separate memory reached through explicit
    /// copies only, so code that still touches host memory behind the engine's back fails.
    public static let checking = Device(name: "checking", backend: CheckingBackend())

    /// Where tensors are created unless a caller says otherwise (as torch's default device).
    /// `NEST_TRAIN_BACKEND=checking` starts a process on the checking device: how `make test`
    /// runs parity, training and data-parallel tests through the seam.
    nonisolated(unsafe) public static var `default`: Device = {
        switch ProcessInfo.processInfo.environment["NEST_TRAIN_BACKEND"] {
        case "checking": return .checking
        case nil, "", "cpu": return .cpu
        case let other?: fatalError("NEST_TRAIN_BACKEND=\(other): expected cpu or checking")
        }
    }()

    /// The device every operand of `op` lives on; two devices are a programming error that
    /// names the op (a tensor was not moved with `to(_:)`).
    static func common(_ op: String, _ tensors: [Tensor?]) -> Device {
        var device: Device?
        for t in tensors {
            guard let d = t?.device else { continue }
            if let device { precondition(device === d, "\(op): operands on \(device) and \(d)") }
            device = d
        }
        return device ?? .default
    }
}

/// How much device memory tensors hold and held at most (bytes).
public struct DeviceMemory: Sendable {
    public var live: Int
    public var held: Int
    public var peakLive: Int
    public var peakTotal: Int
}

/// What a device was asked to do, counted since it was created: kernel launches, library GEMM
/// calls, blocking copies to the host, copies to the device, and blocks taken from and
/// returned to the driver. A fast GPU step asks for few of each, and for the same number at
/// any batch size; `bench` reports them per step (`gpu_counts_per_step`).
public struct DeviceActivity: Equatable, Sendable {
    public var launches = 0, gemms = 0, deviceToHost = 0, hostToDevice = 0, driverAllocations = 0, driverFrees = 0
    public init() {}

    /// Every count, under the name `bench` prints it.
    static let fields: [(name: String, key: WritableKeyPath<DeviceActivity, Int>)] = [
        ("launches", \.launches), ("gemms", \.gemms), ("device_to_host", \.deviceToHost), ("host_to_device", \.hostToDevice),
        ("driver_allocations", \.driverAllocations), ("driver_frees", \.driverFrees),
    ]

    private static func combine(_ a: DeviceActivity, _ b: DeviceActivity, _ op: (Int, Int) -> Int) -> DeviceActivity {
        var out = DeviceActivity()
        for field in fields { out[keyPath: field.key] = op(a[keyPath: field.key], b[keyPath: field.key]) }
        return out
    }

    public static func + (a: DeviceActivity, b: DeviceActivity) -> DeviceActivity { combine(a, b, +) }
    public static func - (a: DeviceActivity, b: DeviceActivity) -> DeviceActivity { combine(a, b, -) }

    /// The counts as `bench` prints them, divided by `steps`.
    public func perStep(_ steps: Int) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: Self.fields.map { ($0.name, Double(self[keyPath: $0.key]) / Double(max(steps, 1))) })
    }
}

/// A device's memory and kernels. Ops (`Sources/Tensor/Ops`) do shape checks, allocate results
/// and record backward rules once; the arithmetic is here, as forward/backward kernel pairs
/// named after the op (`softmaxForward` / `softmaxBackward`). `CPUBackend` (`Sources/Tensor/Kernels`)
/// is the reference implementation every other backend is checked against.
///
/// Order: kernels and copies take effect in the order they are called, as if queued on one
/// stream per device; the CPU runs each at once. A copy to the host (and a kernel returning a
/// host value, such as `elements` or `sumsOfSquares`) returns when everything queued before
/// it is done, so host code never sees a value early; a GPU backend queues kernels on its
/// stream and synchronises only there.
///
/// Kernels write every element of their output unless they say they accumulate into it.
/// Results are Float32; reductions that need more range return Double on the host.
public protocol Backend: AnyObject {
    // MARK: memory

    /// `count` floats (at least) of device memory and the capacity actually reserved.
    func allocate(_ count: Int) -> (address: UnsafeMutablePointer<Float>, capacity: Int)
    func release(_ address: UnsafeMutablePointer<Float>, capacity: Int)
    /// Whether host code may read the memory in place (the CPU): host views are then the
    /// memory itself, else staged copies.
    var isHostMemory: Bool { get }
    func copy(fromHost source: UnsafePointer<Float>, to storage: Storage, offset: Int, count: Int)
    func copy(from storage: Storage, offset: Int, toHost destination: UnsafeMutablePointer<Float>, count: Int)
    /// End of a training step: the allocator may return memory idle for several steps.
    func endStep()
    var memory: DeviceMemory { get }
    /// What the device was asked to do so far; nil where nothing is counted (the CPU, whose
    /// kernels are function calls).
    var activity: DeviceActivity? { get }

    // MARK: moving values

    func fill(_ t: Tensor, with value: Float)
    /// dst[dstOffset ..< dstOffset + count] = src[srcOffset ..< srcOffset + count]
    func copy(_ src: Tensor, offset srcOffset: Int, into dst: Tensor, offset dstOffset: Int, count: Int)
    /// `length` entries along `axis` from `src` at `srcOffset` to `dst` at `dstOffset` (equal in
    /// every other dimension).
    func copyBlocks(from src: Tensor, axis: Int, offset srcOffset: Int, to dst: Tensor, offset dstOffset: Int, length: Int)
    /// out[r] = x[indices[r]] over the first dimension.
    func gatherRows(_ x: Tensor, _ indices: [Int], into out: Tensor)
    /// out[indices[r]] += g[r] (out accumulates; rows may repeat).
    func scatterAddRows(_ g: Tensor, _ indices: [Int], into out: Tensor)
    /// out = x read through broadcast strides (x's shape broadcasts to out's).
    func expand(_ x: Tensor, into out: Tensor)
    /// out dimension i = x dimension order[i].
    func permute(_ x: Tensor, _ order: [Int], into out: Tensor)
    /// out = x summed over the dimensions along which out's shape was broadcast to x's.
    func sumToShape(_ x: Tensor, into out: Tensor)
    /// The values at flat `indices`, on the host.
    func elements(_ x: Tensor, at indices: [Int]) -> [Float]

    // MARK: pointwise

    func unary(_ f: UnaryKernel, _ x: Tensor, into out: Tensor)
    /// out = f(a, b) with NumPy broadcasting to out's shape.
    func binary(_ f: BinaryKernel, _ a: Tensor, _ b: Tensor, into out: Tensor)
    func activationForward(_ f: ActivationFunction, _ x: Tensor, into y: Tensor)
    /// dx = g·f′(saved): saved is y or x as `f.derivativeFromOutput` says.
    func activationBackward(_ f: ActivationFunction, saved: Tensor, _ g: Tensor, into dx: Tensor)
    func gluForward(_ x: Tensor, into y: Tensor)
    func gluBackward(_ x: Tensor, _ g: Tensor, into dx: Tensor)
    /// y = x·keep/(1−p) with the keep decisions of `DropoutMask`.
    func dropout(_ x: Tensor, into y: Tensor, _ mask: DropoutMask)

    // MARK: rows

    func softmaxForward(_ x: Tensor, mask: Tensor?, into y: Tensor)
    func softmaxBackward(_ y: Tensor, _ g: Tensor, into dx: Tensor)
    func logSoftmaxForward(_ x: Tensor, into y: Tensor)
    func logSoftmaxBackward(_ y: Tensor, _ g: Tensor, into dx: Tensor)
    /// y and per-row (mean, 1/σ) in `stats` [rows, 2].
    func layerNormForward(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float, into y: Tensor, stats: Tensor)
    /// dx (when given) and the affine gradients [dw; db] into `affine` [2, d] (when given).
    func layerNormBackward(_ x: Tensor, _ g: Tensor, weight: Tensor, stats: Tensor, dx: Tensor?, affine: Tensor?)
    /// BatchNorm's batch statistics over the rows of x [rows, c]: per channel mean and 1/σ
    /// into `stats` [2, c] (biased variance, eps inside the sqrt), and the running statistics
    /// moved by `momentum` (with the unbiased variance). The sums (Σx (c), Σx² (c), rows) are
    /// taken in Double; with `combine` they pass through it on the host (SyncBatchNorm adds
    /// every process's). Returns the rows of the (combined) batch; with none, stats are 0 and
    /// the running statistics stay.
    func batchNormStatistics(_ x: Tensor, runningMean: Tensor, runningVar: Tensor, momentum: Float, eps: Float,
                             combine: ((inout [Double]) -> Void)?, into stats: Tensor) -> Double
    /// Evaluation's statistics: the running mean and 1/√(running var + eps) into `stats` [2, c].
    func batchNormRunningStatistics(runningMean: Tensor, runningVar: Tensor, eps: Float, into stats: Tensor)
    /// y = x·k + o per channel, k = rstd·w and o = b − mean·rstd·w.
    func batchNormApply(_ x: Tensor, weight: Tensor, bias: Tensor, stats: Tensor, into y: Tensor)
    /// The sums Σg and Σg·x̂ per channel (x̂ = (x − mean)·rstd, in Double) into `affine`
    /// [2, c] (the bias and weight gradients, this process's own); then, with `combine`, the
    /// sums pass through it. dx: training, w·rstd·(g − Σg/rows − x̂·Σg·x̂/rows); evaluation
    /// (the statistics constants), g·rstd·w.
    func batchNormBackward(_ x: Tensor, _ g: Tensor, weight: Tensor, stats: Tensor, training: Bool, rows: Double,
                           combine: ((inout [Double]) -> Void)?, dx: Tensor?, affine: Tensor?)

    // MARK: products

    /// C = alpha·op(A)·op(B) + beta·C, `problem.batches` times at the given strides.
    func gemm(_ problem: GEMMProblem, a: Tensor, b: Tensor, c: Tensor)
    func relPositionScoresForward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, into s: Tensor)
    func relPositionScoresBackward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, _ g: Tensor,
                                   dq: Tensor, dk: Tensor, dp: Tensor, du: Tensor, dv: Tensor)
    func attentionContextForward(_ a: Tensor, _ v: Tensor, into out: Tensor)
    func attentionContextBackward(_ aForV: Tensor?, _ vForA: Tensor?, _ g: Tensor, da: Tensor?, dv: Tensor?)
    /// Banded scores: `s` is zero on entry.
    func bandedScoresForward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, left: Int, into s: Tensor)
    /// Gradients accumulate into zeroed outputs.
    func bandedScoresBackward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, left: Int, _ g: Tensor,
                              dq: Tensor, dk: Tensor, dp: Tensor, du: Tensor, dv: Tensor)
    /// `out` is zero on entry.
    func bandedContextForward(_ a: Tensor, _ v: Tensor, left: Int, into out: Tensor)
    /// da is written, dv accumulates into zeros.
    func bandedContextBackward(_ aForV: Tensor?, _ vForA: Tensor?, left: Int, _ g: Tensor, da: Tensor?, dv: Tensor?)
    func conv2dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, _ geometry: Conv2dGeometry, into y: Tensor)
    /// Gradients into zeroed dx, dw, db.
    func conv2dBackward(_ x: Tensor, weight: Tensor, _ geometry: Conv2dGeometry, _ g: Tensor, dx: Tensor?, dw: Tensor?, db: Tensor?)
    func depthwiseConv1dForward(_ x: Tensor, weight: Tensor, bias: Tensor?, left: Int, into y: Tensor)
    /// dx into zeros; dw written.
    func depthwiseConv1dBackward(_ x: Tensor?, weight: Tensor, left: Int, _ g: Tensor, dx: Tensor?, dw: Tensor?)

    // MARK: targets and loss

    /// Each group of `width` values of x scaled to unit L2 norm (the norm summed in Float in
    /// order, at least 1e-12).
    func l2NormalizeGroups(_ x: Tensor, width: Int, into out: Tensor)
    /// For each group of C values of x [P, N·C] (N books per position, book fastest): the
    /// index of the nearest of `classes` codes of its book, compared in Double, the first of
    /// equal ones; nearest by squared distance, or with `cosine` by the largest dot product.
    /// `codebooks` holds N·classes·C doubles, each in two floats (`Tensor(doubles:)`); the
    /// indices go to `codes` [P·N] as floats.
    func nearestCodes(_ x: Tensor, codebooks: Tensor, books: Int, classes: Int, cosine: Bool, into codes: Tensor)
    /// out[r] = x[r, columns[r]] for x [R, V] and columns [R] (indices as floats).
    func gatherColumns(_ x: Tensor, columns: Tensor, into out: Tensor)
    /// out[r, columns[r]] += scale·value[0] (out accumulates).
    func addToColumns(_ value: Tensor, scale: Float, columns: Tensor, into out: Tensor)
    /// out[r] = the column of the largest value of row r of x [R, V] (the first of equal ones),
    /// as a float.
    func rowArgmax(_ x: Tensor, into out: Tensor)

    // MARK: optimizer

    func adamwUpdate(parameter: Tensor, gradient: Tensor, m: Tensor, v: Tensor, _ step: AdamWStep)
    /// Σx² of each tensor, in Double: one call for all of a model's gradients, so a device
    /// returns them with one copy to the host.
    func sumsOfSquares(_ xs: [Tensor]) -> [Double]
}

/// A pointwise function of one value, as kernels know it.
public enum UnaryKernel: Equatable {
    case scale(Float)
}

/// A pointwise function of two values, as kernels know it.
public enum BinaryKernel: Equatable {
    case add, subtract, multiply, divide
    /// `value` where the right operand is non-zero, the left elsewhere.
    case fill(Float)
}

/// The nonlinearities, each with its derivative.
public enum ActivationFunction: Equatable {
    case relu, sigmoid, silu, gelu

    /// Whether f′ is computed from the output y rather than the input x: the backward rule then
    /// keeps only y alive.
    public var derivativeFromOutput: Bool { self == .relu || self == .sigmoid }
}

/// Inverted dropout's keep decisions, a pure function of the seed and each element's index in
/// its batch row: `rows[b]` is the batch row that leading row b stands for (nil: row b).
public struct DropoutMask {
    public let p: Float
    public let seed: UInt64
    public let rows: [Int]?
}

/// One product C = alpha·op(A)·op(B) + beta·C (row-major, leading dimensions of the stored
/// matrices), or `batches` of them at fixed strides (cuBLAS's strided-batched GEMM).
public struct GEMMProblem {
    public var transposeA = false, transposeB = false
    public var m: Int, n: Int, k: Int
    public var alpha: Float = 1, beta: Float = 0
    public var lda: Int, ldb: Int, ldc: Int
    public var offsetA = 0, offsetB = 0, offsetC = 0
    public var batches = 1, strideA = 0, strideB = 0, strideC = 0

    public init(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0,
                lda: Int, ldb: Int, ldc: Int) {
        self.transposeA = transposeA
        self.transposeB = transposeB
        (self.m, self.n, self.k, self.alpha, self.beta, self.lda, self.ldb, self.ldc) = (m, n, k, alpha, beta, lda, ldb, ldc)
    }
}

/// One AdamW update's coefficients (torch's operation order; see `AdamW`).
public struct AdamWStep {
    public let decay: Float, w1: Float, b2: Float, w2: Float, bc2Sqrt: Float, eps: Float, stepSize: Float
}
