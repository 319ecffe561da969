@_spi(Backend) import Tensor

/// The engine's kernels on a GPU: memory from a `BufferPool` over the runtime's device memory
/// (the caching allocator: size classes, reuse without `cuMemAlloc` in the steady state, idle
/// blocks returned after a few steps), copies through the driver, every kernel pair of
/// `Backend` as a CUDA C kernel of `Sources/CUDA/Kernels` or a cuBLAS GEMM. `CPUBackend` is the
/// reference each one is checked against (`BackendComparison`, on the host emulation in
/// `make test` and on a GPU in `gpu-check`).
///
/// fp32 throughout, GEMMs without TF32 (torch's default `float32_matmul_precision`, "highest").
/// Reductions sum in a fixed order per output (no atomics), so a step computes the same bits
/// on every run on one device and build: resume stays bit-identical on the GPU.
public final class CUDABackend: Backend {
    /// The runtime every call goes through, counted (`CountingRuntime`).
    public let runtime: KernelRuntime
    public let counting: CountingRuntime
    let pool: BufferPool

    public init(runtime: KernelRuntime) {
        counting = CountingRuntime(runtime)
        self.runtime = counting
        pool = BufferPool(memory: counting.memory, trimming: .onFailure)
    }

    // MARK: memory

    public func allocate(_ count: Int) -> (address: UnsafeMutablePointer<Float>, capacity: Int) {
        let (address, capacity) = pool.acquire(count)
        return (address, capacity)
    }

    public func release(_ address: UnsafeMutablePointer<Float>, capacity: Int) { pool.release(address, capacity: capacity) }
    public var isHostMemory: Bool { false }

    public func copy(fromHost source: UnsafePointer<Float>, to storage: Storage, offset: Int, count: Int) {
        runtime.copy(fromHost: source, to: storage.kernelAddress + offset, bytes: count * 4)
    }

    public func copy(from storage: Storage, offset: Int, toHost destination: UnsafeMutablePointer<Float>, count: Int) {
        runtime.copy(from: storage.kernelAddress + offset, toHost: destination, bytes: count * 4)
    }

    public func endStep() { pool.endStep() }
    public var memory: DeviceMemory { pool.statistics }
    public var activity: DeviceActivity? { counting.activity }

    // MARK: launching

    var threads: Int { runtime.threadsPerBlock }

    /// A grid-stride launch over n elements.
    func launch(_ kernel: String, count n: Int, _ arguments: [KernelArgument]) {
        guard n > 0 else { return }
        runtime.launch(kernel, grid: min((n + threads - 1) / threads, runtime.maxBlocks), block: threads, sharedBytes: 0, arguments)
    }

    /// One block per row of `width` (the row kernels' block reductions: a power of two of
    /// threads, one float of shared memory each).
    func launchRows(_ kernel: String, rows: Int, width: Int, _ arguments: [KernelArgument]) {
        guard rows > 0 else { return }
        let threads = min(runtime.reductionThreadsPerBlock, max(32, 1 << (Int.bitWidth - (max(width, 1) - 1).leadingZeroBitCount)))
        runtime.launch(kernel, grid: rows, block: threads, sharedBytes: threads * 4, arguments)
    }

    static func arg(_ t: Tensor?) -> KernelArgument { .memory(t.map { UnsafeRawPointer($0.kernelAddress) }) }

    /// `values` in device memory for the duration of `body` (shapes, indices: 64-bit words, as
    /// a kernel's `const long *` reads them; or floats). The block goes back to the pool after
    /// `body`; work queued on the one stream still reads it before any later use.
    func withDevice<T, R>(_ values: [T], _ body: (KernelArgument) -> R) -> R {
        let bytes = max(values.count * MemoryLayout<T>.stride, 4)
        let (block, capacity) = pool.acquire((bytes + 3) / 4)
        defer { pool.release(block, capacity: capacity) }
        values.withUnsafeBytes { if let base = $0.baseAddress { runtime.copy(fromHost: base, to: block, bytes: $0.count) } }
        return body(.memory(UnsafeRawPointer(block)))
    }

    func words(_ values: [Int], _ body: (KernelArgument) -> Void) { withDevice(values.map { Int64($0) }, body) }

    /// A device block of `count` floats for the duration of `body` (a kernel's scratch).
    func withScratch<R>(_ count: Int, _ body: (UnsafeMutableRawPointer) -> R) -> R {
        let (block, capacity) = pool.acquire(count)
        defer { pool.release(block, capacity: capacity) }
        return body(UnsafeMutableRawPointer(block))
    }

    /// A device block of `count` values of T, read back to the host after `body` fills it.
    func readBack<T: Numeric>(_ count: Int, as: T.Type, _ body: (KernelArgument) -> Void) -> [T] {
        let bytes = max(count * MemoryLayout<T>.stride, 4)
        let (block, capacity) = pool.acquire((bytes + 3) / 4)
        defer { pool.release(block, capacity: capacity) }
        body(.memory(UnsafeRawPointer(block)))
        var out = [T](repeating: 0, count: count)
        out.withUnsafeMutableBytes { if let base = $0.baseAddress { runtime.copy(from: block, toHost: base, bytes: $0.count) } }
        return out
    }
}

// MARK: moving values

extension CUDABackend {
    public func fill(_ t: Tensor, with value: Float) { runtime.fill(t.kernelAddress, word: value.bitPattern, count: t.count) }

    public func copy(_ src: Tensor, offset srcOffset: Int, into dst: Tensor, offset dstOffset: Int, count: Int) {
        runtime.copy(from: src.kernelAddress + srcOffset, to: dst.kernelAddress + dstOffset, bytes: count * 4)
    }

    public func copyBlocks(from src: Tensor, axis: Int, offset srcOffset: Int, to dst: Tensor, offset dstOffset: Int, length: Int) {
        let outer = src.shape[..<axis].reduce(1, *), inner = src.shape[(axis + 1)...].reduce(1, *)
        launch("copy_blocks", count: outer * length * inner,
               [Self.arg(src), Self.arg(dst), .int64(outer), .int64(length * inner), .int64(src.shape[axis] * inner), .int64(srcOffset * inner),
                .int64(dst.shape[axis] * inner), .int64(dstOffset * inner)])
    }

    public func gatherRows(_ x: Tensor, _ indices: [Int], into out: Tensor) {
        let rowSize = x.count / max(x.shape[0], 1)
        words(indices) { launch("gather_rows", count: indices.count * rowSize, [Self.arg(x), $0, Self.arg(out), .int64(indices.count), .int64(rowSize)]) }
    }

    public func scatterAddRows(_ g: Tensor, _ indices: [Int], into out: Tensor) {
        let rowSize = out.count / max(out.shape[0], 1)
        guard !indices.isEmpty else { return }
        // The source rows of each distinct target, in order (see scatter_add_rows).
        var sources: [Int: [Int]] = [:], targets: [Int] = []
        for (r, target) in indices.enumerated() {
            if sources[target] == nil { targets.append(target) }
            sources[target, default: []].append(r)
        }
        var starts = [0], rows: [Int] = []
        for t in targets {
            rows += sources[t]!
            starts.append(rows.count)
        }
        words(targets + starts + rows) {
            launch("scatter_add_rows", count: targets.count * rowSize, [Self.arg(g), $0, Self.arg(out), .int64(targets.count), .int64(rowSize)])
        }
    }

    public func expand(_ x: Tensor, into out: Tensor) {
        stridedCopy(x, dims: out.shape, strides: Shape.broadcastStrides(x.shape, to: out.shape), into: out)
    }

    public func permute(_ x: Tensor, _ order: [Int], into out: Tensor) {
        let strides = Shape.strides(x.shape)
        stridedCopy(x, dims: out.shape, strides: order.map { strides[$0] }, into: out)
    }

    private func stridedCopy(_ x: Tensor, dims: [Int], strides: [Int], into out: Tensor) {
        words(dims + strides) { launch("strided_copy", count: out.count, [Self.arg(x), Self.arg(out), .int64(out.count), .int32(Int32(dims.count)), $0]) }
    }

    public func sumToShape(_ x: Tensor, into out: Tensor) {
        let rank = x.rank
        let outDims = [Int](repeating: 1, count: rank - out.rank) + out.shape
        guard out.count > 0 else { return }
        // Summed over leading dimensions only (a bias gradient, or everything): column sums of
        // [rows, out.count].
        let lead = outDims.firstIndex { $0 != 1 } ?? rank
        if outDims[lead...].elementsEqual(x.shape[lead...]) {
            return columnSums(.value, rows: x.count / out.count, cols: out.count, of: UnsafeRawPointer(x.kernelAddress),
                              into: UnsafeMutableRawPointer(out.kernelAddress), accumulate: false)
        }
        words(x.shape + outDims + Shape.strides(x.shape)) {
            launch("sum_to_shape", count: out.count, [Self.arg(x), Self.arg(out), .int64(out.count), .int64(x.count / out.count), .int32(Int32(rank)), $0])
        }
    }

    /// Gathered on the device (as rows of one float) and read back in one copy.
    public func elements(_ x: Tensor, at indices: [Int]) -> [Float] {
        guard !indices.isEmpty else { return [] }
        return readBack(indices.count, as: Float.self) { out in
            words(indices) { launch("gather_rows", count: indices.count, [Self.arg(x), $0, out, .int64(indices.count), .int64(1)]) }
        }
    }

}

// MARK: pointwise

extension CUDABackend {
    public func unary(_ f: UnaryKernel, _ x: Tensor, into out: Tensor) {
        switch f {
        case .scale(let s): launch("scale", count: x.count, [Self.arg(x), Self.arg(out), .int64(x.count), .float(s)])
        }
    }

    public func binary(_ f: BinaryKernel, _ a: Tensor, _ b: Tensor, into out: Tensor) {
        let (code, fill): (Int32, Float)
        switch f {
        case .add: (code, fill) = (0, 0)
        case .subtract: (code, fill) = (1, 0)
        case .multiply: (code, fill) = (2, 0)
        case .divide: (code, fill) = (3, 0)
        case .fill(let value): (code, fill) = (4, value)
        }
        guard a.shape != out.shape || b.shape != out.shape else {
            return launch("binary", count: out.count, [Self.arg(a), Self.arg(b), Self.arg(out), .int64(out.count), .int32(0), .memory(nil), .int32(code), .float(fill)])
        }
        let (dims, sa, sb) = Self.merged(out.shape, Shape.broadcastStrides(a.shape, to: out.shape), Shape.broadcastStrides(b.shape, to: out.shape))
        words(dims + sa + sb) {
            launch("binary", count: out.count, [Self.arg(a), Self.arg(b), Self.arg(out), .int64(out.count), .int32(Int32(dims.count)), $0, .int32(code), .float(fill)])
        }
    }

    /// Adjacent dimensions that are contiguous in both operands merged into one (a bias row over
    /// [B, T, C] becomes [B·T, C]), and size-1 ones dropped: fewer divisions per element.
    static func merged(_ shape: [Int], _ stridesA: [Int], _ stridesB: [Int]) -> ([Int], [Int], [Int]) {
        var dims: [Int] = [], sa: [Int] = [], sb: [Int] = []
        for i in shape.indices where shape[i] != 1 {
            if let last = dims.indices.last, sa[last] == stridesA[i] * shape[i], sb[last] == stridesB[i] * shape[i] {
                dims[last] *= shape[i]
                (sa[last], sb[last]) = (stridesA[i], stridesB[i])
            } else {
                dims.append(shape[i]); sa.append(stridesA[i]); sb.append(stridesB[i])
            }
        }
        return dims.isEmpty ? ([1], [0], [0]) : (dims, sa, sb)
    }

    static func code(_ f: ActivationFunction) -> Int32 {
        switch f {
        case .relu: 0
        case .sigmoid: 1
        case .silu: 2
        case .gelu: 3
        }
    }

    public func activationForward(_ f: ActivationFunction, _ x: Tensor, into y: Tensor) {
        launch("activation_forward", count: x.count, [Self.arg(x), Self.arg(y), .int64(x.count), .int32(Self.code(f))])
    }

    public func activationBackward(_ f: ActivationFunction, saved: Tensor, _ g: Tensor, into dx: Tensor) {
        launch("activation_backward", count: g.count, [Self.arg(saved), Self.arg(g), Self.arg(dx), .int64(g.count), .int32(Self.code(f))])
    }

    public func gluForward(_ x: Tensor, into y: Tensor) {
        let c = x.shape[x.rank - 1] / 2, rows = x.count / max(2 * c, 1)
        launch("glu_forward", count: rows * c, [Self.arg(x), Self.arg(y), .int64(rows), .int32(Int32(c))])
    }

    public func gluBackward(_ x: Tensor, _ g: Tensor, into dx: Tensor) {
        let c = x.shape[x.rank - 1] / 2, rows = x.count / max(2 * c, 1)
        launch("glu_backward", count: rows * c, [Self.arg(x), Self.arg(g), Self.arg(dx), .int64(rows), .int32(Int32(c))])
    }

    public func dropout(_ x: Tensor, into y: Tensor, _ mask: DropoutMask) {
        let count = x.count
        let rowSize = mask.rows.map { count / max($0.count, 1) } ?? max(count, 1)
        precondition(((mask.rows?.max() ?? 0) + 1) * rowSize <= Int(UInt32.max), "dropout indexes elements with 32 bits")
        let threshold = UInt32(min(Double(mask.p) * 4_294_967_296, 4_294_967_295))
        let arguments: (KernelArgument) -> [KernelArgument] = { rows in
            [Self.arg(x), Self.arg(y), .int64(count), .int64(rowSize), rows, .uint32(threshold), .float(1 / (1 - mask.p)),
             .uint32(UInt32(truncatingIfNeeded: mask.seed)), .uint32(UInt32(truncatingIfNeeded: mask.seed >> 32))]
        }
        if let rows = mask.rows {
            words(rows) { launch("dropout_forward", count: count, arguments($0)) }
        } else {
            launch("dropout_forward", count: count, arguments(.memory(nil)))
        }
    }
}

// MARK: rows

extension CUDABackend {
    public func softmaxForward(_ x: Tensor, mask: Tensor?, into y: Tensor) {
        let n = x.shape[x.rank - 1]
        let heads = mask == nil ? 1 : x.shape[1], rowsPerMaskRow = mask == nil ? 1 : x.shape[2]
        launchRows("softmax_forward", rows: x.count / max(n, 1), width: n,
                   [Self.arg(x), Self.arg(mask), Self.arg(y), .int32(Int32(n)), .int32(Int32(heads)), .int32(Int32(rowsPerMaskRow))])
    }

    public func softmaxBackward(_ y: Tensor, _ g: Tensor, into dx: Tensor) {
        let n = g.shape[g.rank - 1]
        launchRows("softmax_backward", rows: g.count / max(n, 1), width: n, [Self.arg(y), Self.arg(g), Self.arg(dx), .int32(Int32(n))])
    }

    public func logSoftmaxForward(_ x: Tensor, into y: Tensor) {
        let n = x.shape[x.rank - 1]
        launchRows("log_softmax_forward", rows: x.count / max(n, 1), width: n, [Self.arg(x), Self.arg(y), .int32(Int32(n))])
    }

    public func logSoftmaxBackward(_ y: Tensor, _ g: Tensor, into dx: Tensor) {
        let n = g.shape[g.rank - 1]
        launchRows("log_softmax_backward", rows: g.count / max(n, 1), width: n, [Self.arg(y), Self.arg(g), Self.arg(dx), .int32(Int32(n))])
    }

    public func layerNormForward(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float, into y: Tensor, stats: Tensor) {
        let d = x.shape[x.rank - 1]
        launchRows("layernorm_forward", rows: x.count / max(d, 1), width: d,
                   [Self.arg(x), Self.arg(weight), Self.arg(bias), Self.arg(y), Self.arg(stats), .int32(Int32(d)), .float(eps)])
    }

    public func layerNormBackward(_ x: Tensor, _ g: Tensor, weight: Tensor, stats: Tensor, dx: Tensor?, affine: Tensor?) {
        let d = x.shape[x.rank - 1], rows = x.count / max(d, 1)
        if let dx {
            launchRows("layernorm_backward", rows: rows, width: d, [Self.arg(x), Self.arg(g), Self.arg(weight), Self.arg(stats), Self.arg(dx), .int32(Int32(d))])
        }
        if let affine {
            columnSums(.layerNormGradient, rows: rows, cols: d, of: UnsafeRawPointer(x.kernelAddress), g: g, a: stats,
                       into: UnsafeMutableRawPointer(affine.kernelAddress), accumulate: false)
        }
    }

    public func batchNormStatistics(_ x: Tensor, runningMean: Tensor, runningVar: Tensor, momentum: Float, eps: Float,
                                    combine: ((inout [Double]) -> Void)?, into stats: Tensor) -> Double {
        let c = x.shape[x.rank - 1], rows = x.count / max(c, 1)
        return withScratch(2 * (2 * c)) { sums in
            columnSums(.valueAndSquare, rows: rows, cols: c, of: UnsafeRawPointer(x.kernelAddress), into: nil, doubles: sums)
            let total = combined(sums, count: 2 * c, rows: Double(rows), combine)
            launch("batchnorm_statistics", count: c, [.memory(UnsafeRawPointer(sums)), Self.arg(stats), Self.arg(runningMean), Self.arg(runningVar),
                                                      .int32(Int32(c)), .int64(Int(total)), .float(momentum), .float(eps), .int32(1)])
            return total
        }
    }

    public func batchNormRunningStatistics(runningMean: Tensor, runningVar: Tensor, eps: Float, into stats: Tensor) {
        launch("batchnorm_statistics", count: runningMean.count, [.memory(nil), Self.arg(stats), Self.arg(runningMean), Self.arg(runningVar),
                                                                  .int32(Int32(runningMean.count)), .int64(0), .float(0), .float(eps), .int32(0)])
    }

    public func batchNormApply(_ x: Tensor, weight: Tensor, bias: Tensor, stats: Tensor, into y: Tensor) {
        launch("batchnorm_apply", count: x.count, [Self.arg(x), Self.arg(y), Self.arg(weight), Self.arg(bias), Self.arg(stats),
                                                   .int64(x.count), .int32(Int32(x.shape[x.rank - 1]))])
    }

    public func batchNormBackward(_ x: Tensor, _ g: Tensor, weight: Tensor, stats: Tensor, training: Bool, rows total: Double,
                                  combine: ((inout [Double]) -> Void)?, dx: Tensor?, affine: Tensor?) {
        let c = x.shape[x.rank - 1], rows = x.count / max(c, 1)
        withScratch(2 * (2 * c)) { sums in
            columnSums(.batchNormGradient, rows: rows, cols: c, of: UnsafeRawPointer(x.kernelAddress), g: g, a: stats,
                       b: UnsafeRawPointer(stats.kernelAddress + c), into: affine.map { UnsafeMutableRawPointer($0.kernelAddress) }, doubles: sums)
            _ = combined(sums, count: 2 * c, rows: total, combine)
            guard let dx else { return }
            launch("batchnorm_backward_input", count: x.count, [Self.arg(x), Self.arg(g), Self.arg(weight), Self.arg(stats), .memory(UnsafeRawPointer(sums)),
                                                                Self.arg(dx), .int64(x.count), .int32(Int32(c)), .int64(Int(total)), .int32(training ? 1 : 0)])
        }
    }

    /// The `count` device doubles at `sums` passed through `combine` on the host with `rows`
    /// appended (one read and one write), or left as they are; returns the (combined) rows.
    private func combined(_ sums: UnsafeMutableRawPointer, count: Int, rows: Double, _ combine: ((inout [Double]) -> Void)?) -> Double {
        guard let combine else { return rows }
        var values = [Double](repeating: 0, count: count)
        values.withUnsafeMutableBytes { runtime.copy(from: UnsafeRawPointer(sums), toHost: $0.baseAddress!, bytes: $0.count) }
        values.append(rows)
        combine(&values)
        values.withUnsafeBytes { runtime.copy(fromHost: $0.baseAddress!, to: sums, bytes: 8 * count) }
        return values[count]
    }
}

// MARK: targets and loss

extension CUDABackend {
    public func l2NormalizeGroups(_ x: Tensor, width: Int, into out: Tensor) {
        launch("l2_normalize_groups", count: x.count / max(width, 1), [Self.arg(x), Self.arg(out), .int64(x.count / max(width, 1)), .int32(Int32(width))])
    }

    public func nearestCodes(_ x: Tensor, codebooks: Tensor, books: Int, classes: Int, cosine: Bool, into codes: Tensor) {
        let width = x.shape[x.rank - 1] / books
        launch("nearest_codes", count: codes.count, [Self.arg(x), Self.arg(codebooks), Self.arg(codes), .int64(codes.count), .int32(Int32(books)),
                                                     .int32(Int32(classes)), .int32(Int32(width)), .int32(cosine ? 1 : 0)])
    }

    public func gatherColumns(_ x: Tensor, columns: Tensor, into out: Tensor) {
        launch("gather_columns", count: out.count, [Self.arg(x), Self.arg(columns), Self.arg(out), .int64(out.count), .int64(x.shape[x.rank - 1])])
    }

    public func addToColumns(_ value: Tensor, scale: Float, columns: Tensor, into out: Tensor) {
        launch("add_to_columns", count: columns.count, [Self.arg(value), .float(scale), Self.arg(columns), Self.arg(out), .int64(columns.count),
                                                        .int64(out.shape[out.rank - 1])])
    }

    public func rowArgmax(_ x: Tensor, into out: Tensor) {
        launch("row_argmax", count: out.count, [Self.arg(x), Self.arg(out), .int64(out.count), .int64(x.shape[x.rank - 1])])
    }
}

// MARK: optimizer

extension CUDABackend {
    public func adamwUpdate(parameter: Tensor, gradient: Tensor, m: Tensor, v: Tensor, _ c: AdamWStep) {
        launch("adamw_update", count: parameter.count,
               [Self.arg(parameter), Self.arg(gradient), Self.arg(m), Self.arg(v), .int64(parameter.count), .float(c.decay), .float(c.w1),
                .float(c.b2), .float(c.w2), .float(c.bc2Sqrt), .float(c.eps), .float(c.stepSize)])
    }

    /// One block-sum launch per tensor into one scratch block, read back once; each tensor's
    /// block sums are added in order on the host.
    public func sumsOfSquares(_ xs: [Tensor]) -> [Double] {
        let threads = runtime.reductionThreadsPerBlock
        let blocks = xs.map { min(($0.count + threads - 1) / threads, runtime.maxBlocks, 256) }
        var starts = [0]
        for b in blocks { starts.append(starts.last! + b) }
        let partial = readBack(starts.last!, as: Double.self) { out in
            guard case .memory(let base) = out, let base else { return }
            for (i, x) in xs.enumerated() where x.count > 0 {
                runtime.launch("sum_of_squares", grid: blocks[i], block: threads, sharedBytes: threads * 8,
                               [Self.arg(x), .int64(x.count), .memory(base + 8 * starts[i])])
            }
        }
        return xs.indices.map { i in partial[starts[i]..<starts[i + 1]].reduce(0, +) }
    }
}

// MARK: column sums

/// What `column_sums_partial` sums per element of a [rows, cols] matrix (see layout.cu).
enum ColumnTerm: Int32 {
    case value = 0, valueAndSquare, batchNormGradient, layerNormGradient

    var sums: Int { self == .value ? 1 : 2 }
}

extension CUDABackend {
    /// Rows per chunk of the first pass: at least 32, at most 512 chunks.
    static func chunkRows(_ rows: Int) -> Int { max(32, (rows + 511) / 512) }

    /// Sums over `rows` in two passes, deterministic in any launch geometry: `partials` launches
    /// a kernel that writes each chunk's sums (of `chunkRows` rows) as doubles at
    /// partial[chunk · width + i]; `finish` then adds the chunks in order (`column_sums_finish`).
    func chunkedSums<R>(rows: Int, width: Int, _ partials: (_ partial: KernelArgument, _ chunkRows: Int, _ chunks: Int) -> Void,
                        finish: (_ partial: KernelArgument, _ chunks: Int) -> R) -> R {
        let chunk = Self.chunkRows(rows), chunks = max((rows + chunk - 1) / chunk, 1)
        return withScratch(2 * chunks * width) { partial in
            let p = KernelArgument.memory(UnsafeRawPointer(partial))
            if rows > 0 { partials(p, chunk, chunks) } else { runtime.fill(partial, word: 0, count: 2 * chunks * width) }
            return finish(p, chunks)
        }
    }

    /// `chunkedSums` written to (or, with `accumulate`, added to) `width` device floats.
    func chunkedSums(rows: Int, width: Int, into out: UnsafeMutableRawPointer, accumulate: Bool = false,
                     _ partials: (_ partial: KernelArgument, _ chunkRows: Int, _ chunks: Int) -> Void) {
        chunkedSums(rows: rows, width: width, partials) { partial, chunks in
            launch("column_sums_finish", count: width,
                   [partial, .memory(UnsafeRawPointer(out)), .memory(nil), .int64(chunks), .int64(width), .int32(accumulate ? 1 : 0)])
        }
    }

    /// The column sums of `rows` × `cols` floats at `x` (with `g`, `a` and `b` as `term` reads
    /// them), [sum 0 (cols), sum 1 (cols)]: into device floats (added to them with
    /// `accumulate`), into device doubles, or both.
    func columnSums(_ term: ColumnTerm, rows: Int, cols: Int, of x: UnsafeRawPointer, g: Tensor? = nil, a: Tensor? = nil, b: UnsafeRawPointer? = nil,
                    into floats: UnsafeMutableRawPointer?, accumulate: Bool = false, doubles: UnsafeMutableRawPointer? = nil) {
        chunkedSums(rows: rows, width: term.sums * cols, { p, chunk, chunks in
            launch("column_sums_partial", count: chunks * cols,
                   [.memory(x), Self.arg(g), Self.arg(a), .memory(b), p, .int64(rows), .int64(cols), .int64(chunk), .int32(term.rawValue)])
        }, finish: { partial, chunks in
            launch("column_sums_finish", count: term.sums * cols, [partial, .memory(floats.map(UnsafeRawPointer.init)),
                                                                   .memory(doubles.map(UnsafeRawPointer.init)), .int64(chunks),
                                                                   .int64(term.sums * cols), .int32(accumulate ? 1 : 0)])
        })
    }
}
