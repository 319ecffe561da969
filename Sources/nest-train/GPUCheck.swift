import ArgumentParser
import CUDA
import Foundation
import Tensor

/// `nest-train gpu-check`: every CUDA kernel against the CPU engine on random shapes (forward
/// and backward, fp32), cuBLAS's GEMM against the CPU's, and the device's large-SGEMM rate,
/// written as one JSON report. Exits non-zero when a check is outside its tolerance.
struct GPUCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-check",
        abstract: "Check the CUDA kernels and cuBLAS against the CPU engine on this machine's GPU; write a JSON report.")

    @Option(help: "The GPU: cuda or cuda:N.") var device = "cuda"
    @Option(help: "Write the JSON report here.") var json: String?
    @Option(help: "Size of the square SGEMM timed for the device's rate.") var gemmSize = 8192

    /// Norm-relative tolerances: elementwise results, and results that sum over a row or column.
    static let elementwiseTolerance = 1e-5, reductionTolerance = 1e-4

    struct Check: Encodable {
        let name: String
        let shape: [Int]
        let relativeError: Double
        let tolerance: Double
        var passed: Bool { relativeError <= tolerance }
        enum CodingKeys: String, CodingKey { case name, shape, relativeError = "relative_error", tolerance, passed }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(shape, forKey: .shape)
            try c.encode(relativeError, forKey: .relativeError)
            try c.encode(tolerance, forKey: .tolerance)
            try c.encode(passed, forKey: .passed)
        }
    }

    func run() throws {
        try reportingErrors {
            let gpu = try CUDADevice(ordinal: try DeviceOption.ordinal(device))
            let libraries = gpu.libraries
            let compiler = KernelCompiler(nvrtc: libraries.nvrtc, libraryPath: libraries.nvrtcPath)
            let cublas = try CUBLAS(gpu)
            log("device: \(gpu.summary)")
            log("libraries: \(libraries.driverPath), NVRTC \(compiler.version) \(libraries.nvrtcPath), cuBLAS \(cublas.version) \(libraries.cublasPath)")
            let compileStart = Date()
            var modules: [String: CUDAModule] = [:]
            for source in KernelSource.all { modules[source.family] = try CUDAModule(source, on: gpu, compiler: compiler) }
            let compileSeconds = Date().timeIntervalSince(compileStart)
            log(String(format: "kernels: %d families compiled or loaded for sm_%d in %.2f s", modules.count, gpu.architecture, compileSeconds))

            var checks: [Check] = []
            let kernels = KernelChecks(gpu: gpu, modules: modules, cublas: cublas)
            for seed in 1...3 { checks += try kernels.all(seed: UInt64(seed)) }
            for c in checks where !c.passed || c.name.hasPrefix("gemm") {
                log(String(format: "%@ %@ %@: relative error %.2e (tolerance %.0e)", c.passed ? "ok  " : "FAIL", c.name, "\(c.shape)", c.relativeError, c.tolerance))
            }
            let rate = try kernels.sgemmRate(size: gemmSize)
            let failed = checks.filter { !$0.passed }.count
            log(String(format: "%d checks, %d failed; SGEMM %d³ fp32: %.1f TFLOP/s", checks.count, failed, gemmSize, rate / 1e12))
            if let json {
                let report: [String: Any] = [
                    "device": gpu.name, "architecture": "sm_\(gpu.architecture)", "multiprocessors": gpu.multiprocessors,
                    "memory_bytes": gpu.totalMemory, "driver_cuda_version": gpu.driverVersion, "nvrtc_version": compiler.version,
                    "cublas_version": cublas.version, "libraries": [libraries.driverPath, libraries.nvrtcPath, libraries.cublasPath],
                    "kernel_compile_seconds": compileSeconds, "sgemm_size": gemmSize, "sgemm_tflops": rate / 1e12,
                    "checks": try JSONSerialization.jsonObject(with: JSONEncoder().encode(checks)), "failed": failed,
                    "host": Platform.summary,
                ]
                try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
            }
            if failed > 0 { throw ExitCode.failure }
        }
    }
}

/// `cpu`, `cuda` or `cuda:N`, as `--device` takes it.
enum DeviceOption {
    static func ordinal(_ text: String) throws -> Int {
        if text == "cuda" { return 0 }
        if text.hasPrefix("cuda:"), let n = Int(text.dropFirst(5)), n >= 0 { return n }
        throw ValidationError("--device: expected cuda or cuda:N, got '\(text)'")
    }
}

/// Each kernel run on the GPU and its CPU engine counterpart on the same random inputs.
struct KernelChecks {
    let gpu: CUDADevice
    let modules: [String: CUDAModule]
    let cublas: CUBLAS

    /// ‖gpu − cpu‖∞ / ‖cpu‖∞.
    static func relativeError(_ gpu: [Float], _ cpu: [Float]) -> Double {
        precondition(gpu.count == cpu.count, "compared \(gpu.count) with \(cpu.count) values")
        var worst = 0.0, scale = 1e-30
        for (a, b) in zip(gpu, cpu) {
            worst = max(worst, abs(Double(a) - Double(b)))
            scale = max(scale, abs(Double(b)))
        }
        return worst / scale
    }

    func buffer(_ t: Tensor) throws -> DeviceBuffer { try DeviceBuffer(gpu, copying: t.array) }
    func buffer(count: Int) throws -> DeviceBuffer { try DeviceBuffer(gpu, count: count) }

    /// Grid-stride launch geometry for n elements.
    func blocks(_ n: Int) -> Int { min(max((n + 255) / 256, 1), 65_535) }

    /// Threads per row for the row kernels: a power of two ≥ 32, at most 1024.
    func rowThreads(_ n: Int) -> Int { min(1024, max(32, 1 << (Int.bitWidth - (max(n, 1) - 1).leadingZeroBitCount))) }

    func all(seed: UInt64) throws -> [GPUCheck.Check] {
        let rng = RandomGenerator(seed: seed)
        let e = GPUCheck.elementwiseTolerance, r = GPUCheck.reductionTolerance
        var out: [GPUCheck.Check] = []

        // SiLU: [n] with n odd and past one grid's worth.
        let n = rng.int(in: 1...3_000_000) | 1
        let x = randomTensor([n], rng, -8, 8), g = randomTensor([n], rng)
        x.requiresGrad = true
        x.silu().backward(seed: g)
        let xd = try buffer(x), gd = try buffer(g), y = try buffer(count: n), dx = try buffer(count: n)
        try modules["activations"]!.kernel("silu_forward").launch(grid: blocks(n), block: 256, [.buffer(xd), .buffer(y), .int64(n)])
        try modules["activations"]!.kernel("silu_backward").launch(grid: blocks(n), block: 256, [.buffer(xd), .buffer(gd), .buffer(dx), .int64(n)])
        out.append(.init(name: "silu_forward", shape: [n], relativeError: Self.relativeError(try y.download(), withoutGrad { x.silu() }.array), tolerance: e))
        out.append(.init(name: "silu_backward", shape: [n], relativeError: Self.relativeError(try dx.download(), x.grad!.array), tolerance: e))
        // GELU on the same inputs (the Transformer encoder's activation).
        x.grad = nil
        x.gelu().backward(seed: g)
        try modules["activations"]!.kernel("gelu_forward").launch(grid: blocks(n), block: 256, [.buffer(xd), .buffer(y), .int64(n)])
        try modules["activations"]!.kernel("gelu_backward").launch(grid: blocks(n), block: 256, [.buffer(xd), .buffer(gd), .buffer(dx), .int64(n)])
        out.append(.init(name: "gelu_forward", shape: [n], relativeError: Self.relativeError(try y.download(), withoutGrad { x.gelu() }.array), tolerance: e))
        out.append(.init(name: "gelu_backward", shape: [n], relativeError: Self.relativeError(try dx.download(), x.grad!.array), tolerance: e))

        // GLU over rows of 2C (the convolution module's gate).
        let (gluRows, gluC) = (rng.int(in: 1...3000), rng.int(in: 1...600))
        let gx = randomTensor([gluRows, 2 * gluC], rng, -4, 4), gg = randomTensor([gluRows, gluC], rng)
        gx.requiresGrad = true
        gx.glu().backward(seed: gg)
        let gxd = try buffer(gx), gy = try buffer(count: gluRows * gluC), gdx = try buffer(count: gluRows * 2 * gluC)
        try modules["activations"]!.kernel("glu_forward").launch(grid: blocks(gluRows * gluC), block: 256, [.buffer(gxd), .buffer(gy), .int64(gluRows), .int32(Int32(gluC))])
        try modules["activations"]!.kernel("glu_backward").launch(grid: blocks(gluRows * gluC), block: 256,
            [.buffer(gxd), .buffer(try buffer(gg)), .buffer(gdx), .int64(gluRows), .int32(Int32(gluC))])
        out.append(.init(name: "glu_forward", shape: [gluRows, 2 * gluC], relativeError: Self.relativeError(try gy.download(), withoutGrad { gx.glu() }.array), tolerance: e))
        out.append(.init(name: "glu_backward", shape: [gluRows, 2 * gluC], relativeError: Self.relativeError(try gdx.download(), gx.grad!.array), tolerance: e))

        // AdamW: three steps of the CPU optimizer against the kernel with the same scalars.
        let an = rng.int(in: 1...2_000_000)
        let weights = randomTensor([an], rng), gradients = (0..<3).map { _ in randomTensor([an], rng) }
        weights.requiresGrad = true
        let start = weights.array
        let optimizer = AdamW(parameters: [("w", weights)], settings: .init(betas: (0.9, 0.98), eps: 1e-8, weightDecay: 1e-3))
        let pd = try DeviceBuffer(gpu, copying: start), md = try buffer(count: an), vd = try buffer(count: an)
        try md.upload([Float](repeating: 0, count: an))
        try vd.upload([Float](repeating: 0, count: an))
        for (k, grad) in gradients.enumerated() {
            let lr = 0.004 * Double(k + 1)
            weights.grad = grad
            optimizer.update(lr: lr)
            let t = Double(k + 1)
            try modules["adamw"]!.kernel("adamw_update").launch(grid: blocks(an), block: 256,
                [.buffer(pd), .buffer(try buffer(grad)), .buffer(md), .buffer(vd), .int64(an), .float(Float(1 - lr * 1e-3)), .float(Float(1 - 0.9)),
                 .float(0.98), .float(Float(1 - 0.98)), .float(Float((1 - pow(0.98, t)).squareRoot())), .float(1e-8), .float(Float(lr / (1 - pow(0.9, t))))])
        }
        // The change of the weights, not the weights, so that the update itself is compared.
        let moved = zip(try pd.download(), start).map { $0 - $1 }, expected = zip(weights.array, start).map { $0 - $1 }
        out.append(.init(name: "adamw_update (3 steps, the change)", shape: [an], relativeError: Self.relativeError(moved, expected), tolerance: r))

        // Dropout: bit-identical masks, with a row map as data parallelism uses it.
        let rows = rng.int(in: 1...64), width = rng.int(in: 1...5000)
        let rowMap = (0..<rows).map { $0 * 3 + 1 }
        let p: Float = 0.1 * Float(rng.int(in: 1...5)), dropSeed = UInt64(rng.int(in: 1...1_000_000)) << 20 | 7
        let dIn = randomTensor([rows, width], rng)
        let dOut = withoutGrad { dIn.dropout(p, seed: dropSeed, rows: rowMap) }
        let rowsD = try DeviceBuffer(gpu, copyingIndices: rowMap)
        let dy = try buffer(count: rows * width)
        let threshold = UInt32(min(Double(p) * 4_294_967_296, 4_294_967_295))
        try modules["dropout"]!.kernel("dropout_forward").launch(grid: blocks(rows * width), block: 256,
            [.buffer(try buffer(dIn)), .buffer(dy), .int64(rows * width), .int64(width), .buffer(rowsD), .uint32(threshold),
             .float(1 / (1 - p)), .uint32(UInt32(truncatingIfNeeded: dropSeed)), .uint32(UInt32(truncatingIfNeeded: dropSeed >> 32))])
        let dropped = try dy.download()
        out.append(.init(name: "dropout_forward (bit-identical)", shape: [rows, width],
                         relativeError: dropped.map(\.bitPattern) == dOut.array.map(\.bitPattern) ? 0 : 1, tolerance: 0))

        // Softmax with NeMo's attention mask: scores [B, H, T, T], mask [B, 1, T, T].
        let b = rng.int(in: 1...3), h = rng.int(in: 1...4), t = rng.int(in: 1...700)
        let scores = randomTensor([b, h, t, t], rng, -6, 6), sg = randomTensor([b, h, t, t], rng)
        let mask = Tensor((0..<(b * t * t)).map { _ in rng.int(in: 0...5) == 0 ? 1 : 0 }, shape: [b, 1, t, t])
        scores.requiresGrad = true
        let probabilities = scores.softmax(mask: mask)
        probabilities.backward(seed: sg)
        let sy = try buffer(count: b * h * t * t), sdx = try buffer(count: b * h * t * t)
        let threads = rowThreads(t)
        try modules["softmax"]!.kernel("softmax_forward").launch(grid: b * h * t, block: threads, sharedBytes: threads * 4,
            [.buffer(try buffer(scores)), .buffer(try buffer(mask)), .buffer(sy), .int32(Int32(t)), .int32(Int32(h)), .int32(Int32(t))])
        try modules["softmax"]!.kernel("softmax_backward").launch(grid: b * h * t, block: threads, sharedBytes: threads * 4,
            [.buffer(sy), .buffer(try buffer(sg)), .buffer(sdx), .int32(Int32(t))])
        out.append(.init(name: "softmax_forward (masked)", shape: [b, h, t, t], relativeError: Self.relativeError(try sy.download(), probabilities.array), tolerance: r))
        out.append(.init(name: "softmax_backward", shape: [b, h, t, t], relativeError: Self.relativeError(try sdx.download(), scores.grad!.array), tolerance: r))

        // LayerNorm: [R, D] with its affine parameters.
        let lr = rng.int(in: 1...4000), ld = rng.int(in: 1...1100)
        let lx = randomTensor([lr, ld], rng, -3, 3), lw = randomTensor([ld], rng, 0.5, 1.5), lb = randomTensor([ld], rng), lg = randomTensor([lr, ld], rng)
        for t in [lx, lw, lb] { t.requiresGrad = true }
        let ly = lx.layerNorm(weight: lw, bias: lb)
        ly.backward(seed: lg)
        let lxd = try buffer(lx), lgd = try buffer(lg), lwd = try buffer(lw), stats = try buffer(count: 2 * lr)
        let lyd = try buffer(count: lr * ld), ldx = try buffer(count: lr * ld), ldw = try buffer(count: ld), ldb = try buffer(count: ld)
        let lt = rowThreads(ld)
        try modules["layernorm"]!.kernel("layernorm_forward").launch(grid: lr, block: lt, sharedBytes: lt * 4,
            [.buffer(lxd), .buffer(lwd), .buffer(try buffer(lb)), .buffer(lyd), .buffer(stats), .int32(Int32(ld)), .float(1e-5)])
        try modules["layernorm"]!.kernel("layernorm_backward").launch(grid: lr, block: lt, sharedBytes: lt * 4,
            [.buffer(lxd), .buffer(lgd), .buffer(lwd), .buffer(stats), .buffer(ldx), .int32(Int32(ld))])
        try modules["layernorm"]!.kernel("layernorm_backward_affine").launch(grid: (ld + 255) / 256, block: 256,
            [.buffer(lxd), .buffer(lgd), .buffer(stats), .buffer(ldw), .buffer(ldb), .int64(lr), .int32(Int32(ld))])
        out.append(.init(name: "layernorm_forward", shape: [lr, ld], relativeError: Self.relativeError(try lyd.download(), ly.array), tolerance: r))
        out.append(.init(name: "layernorm_backward dx", shape: [lr, ld], relativeError: Self.relativeError(try ldx.download(), lx.grad!.array), tolerance: r))
        out.append(.init(name: "layernorm_backward dweight", shape: [ld], relativeError: Self.relativeError(try ldw.download(), lw.grad!.array), tolerance: r))
        out.append(.init(name: "layernorm_backward dbias", shape: [ld], relativeError: Self.relativeError(try ldb.download(), lb.grad!.array), tolerance: r))

        // GEMM: odd shapes, and one the size of a large-model projection.
        for (m, k, nn) in [(rng.int(in: 1...300), rng.int(in: 1...300), rng.int(in: 1...300)), (4 * 125, 1024, 4096)] {
            let a = randomTensor([m, k], rng), bm = randomTensor([k, nn], rng)
            let c = try buffer(count: m * nn)
            try cublas.gemm(m: m, n: nn, k: k, a: try buffer(a), b: try buffer(bm), c: c)
            out.append(.init(name: "gemm", shape: [m, k, nn], relativeError: Self.relativeError(try c.download(), withoutGrad { Tensor.matmul(a, bm) }.array), tolerance: r))
        }
        try gpu.synchronize()
        return out
    }

    /// FLOP/s of cuBLAS fp32 SGEMM on size³ (after a warm-up), the ceiling step efficiency is
    /// measured against.
    func sgemmRate(size s: Int) throws -> Double {
        let a = try buffer(count: s * s), b = try buffer(count: s * s), c = try buffer(count: s * s)
        try a.upload([Float](repeating: 0.5, count: s * s))
        try b.upload([Float](repeating: 0.25, count: s * s))
        try cublas.gemm(m: s, n: s, k: s, a: a, b: b, c: c)
        try gpu.synchronize()
        let repeats = 10, start = Date()
        for _ in 0..<repeats { try cublas.gemm(m: s, n: s, k: s, a: a, b: b, c: c) }
        try gpu.synchronize()
        return 2 * pow(Double(s), 3) * Double(repeats) / Date().timeIntervalSince(start)
    }

    func randomTensor(_ shape: [Int], _ rng: RandomGenerator, _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        let t = Tensor(zeros: shape)
        rng.fillUniform(t, lo, hi)
        return t
    }
}
