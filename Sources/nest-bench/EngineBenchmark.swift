import COpenBLAS
import Foundation
import Model
import NN
import Tensor

/// `make bench`: engine micro-benchmarks (GEMM through the engine vs raw cblas_sgemm,
/// elementwise kernels vs memcpy bandwidth, one Conformer layer forward + backward).
/// Prints figures and ratios; timings are medians of repeated runs.
@main
struct EngineBenchmark {
    static func median(_ runs: Int = 7, _ body: () -> Void) -> Double {
        body()   // warm-up: page faults, pool fill, OpenBLAS thread start
        var times: [Double] = []
        for _ in 0..<runs {
            let t = MonotonicClock.seconds
            body()
            times.append(MonotonicClock.seconds - t)
        }
        return times.sorted()[runs / 2]
    }

    /// Median seconds of each case over `rounds` rounds that run the cases in turn, so that a
    /// noisy minute on this shared machine hits all of them alike (the first round warms up).
    static func alternating(rounds: Int, _ cases: [() -> Void]) -> [Double] {
        var times = [[Double]](repeating: [], count: cases.count)
        for round in 0..<rounds {
            for (i, run) in cases.enumerated() {
                let t = MonotonicClock.seconds
                run()
                if round > 0 { times[i].append(MonotonicClock.seconds - t) }
            }
        }
        return times.map { $0.sorted()[$0.count / 2] }
    }

    static func main() {
        for notice in BLASKernel.selectBest() { print("warning: \(notice)") }
        print("nest-train engine benchmark (medians of alternating rounds)")
        print(Platform.summary)
        gemm()
        elementwise()
        conformerLayer()
        ModelBenchmarks.frontEnd()
    }

    static func gemm() {
        print("\nGEMM, FastConformer-L shapes: engine Linear vs raw cblas_sgemm (OpenBLAS threads = cores)")
        for (m, k, n) in [(4096, 512, 2048), (4096, 2048, 512), (4096, 512, 512)] {
            let a = Tensor(zeros: [m, k]), w = Tensor(zeros: [n, k]), c = Tensor(zeros: [m, n])
            RandomGenerator(seed: 1).fillUniform(a, -1, 1)
            RandomGenerator(seed: 2).fillUniform(w, -1, 1)
            let flops = 2.0 * Double(m * n * k)
            // Raw OpenBLAS with its own threads on every core, as a user of the library gets it;
            // the engine runs OpenBLAS single-threaded and splits the rows itself.
            // Not alternated: after a threaded call OpenBLAS's workers spin for a while and take
            // a core from the engine (measured: the engine at half its rate). The pause lets them
            // sleep before the engine runs.
            openblas_set_num_threads(Int32(ProcessInfo.processInfo.activeProcessorCount))
            // The CPU's host views are its memory itself: no copies in the timed call.
            let raw = a.withHostValues { pa in w.withHostValues { pw in c.withMutableHostValues { pc in
                median(21) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, pa.baseAddress, Int32(k),
                                pw.baseAddress, Int32(k), 0, pc.baseAddress, Int32(n))
                }
            } } }
            openblas_set_num_threads(1)
            usleep(500_000)
            let engine = median(21) { _ = withoutGrad { Tensor.linear(a, weight: w, bias: nil) } }
            print(String(format: "  %d×%d · (%d×%d)ᵀ   raw %.1f GFLOP/s   engine %.1f GFLOP/s   engine/raw %.2f",
                         m, k, n, k, flops / raw / 1e9, flops / engine / 1e9, raw / engine))
        }
    }

    static func elementwise() {
        print("\nElementwise, 4096×512 floats (8 MiB): throughput vs memcpy (read + write bytes per second)")
        let n = 4096 * 512
        let x = Tensor(zeros: [4096, 512]), y = Tensor(zeros: [4096, 512])
        RandomGenerator(seed: 3).fillUniform(x, -3, 3)
        let bytes = Double(2 * n * 4)
        // The CPU's host views are its memory itself (the engine's tensors on the CPU device).
        let (xp, yp) = (x.withHostValues { $0.baseAddress! }, y.withMutableHostValues { $0.baseAddress! })
        let w = Tensor(repeating: 1, shape: [512]), b = Tensor(zeros: [512])
        let cases: [() -> Void] = [
            // memcpy split over the same threads as the kernels, so the ratio compares like with like.
            { Parallel.forRanges(n) { r in (yp + r.lowerBound).update(from: xp + r.lowerBound, count: r.count) } },
            { yp.update(from: xp, count: n) },   // one plain memcpy call
            { _ = withoutGrad { x.silu() } },
            { _ = withoutGrad { x.layerNorm(weight: w, bias: b) } },
            {
                let xin = x.detached(); xin.requiresGrad = true
                let out = xin.layerNorm(weight: w, bias: b)
                out.backward(seed: y)
            },
        ]
        let medians = alternating(rounds: 301, cases)
        let (copy, plainCopy, silu, ln, lnBackward) = (medians[0], medians[1], medians[2], medians[3], medians[4])
        // Ratio = memcpy bandwidth ÷ the op's bandwidth (bytes read + written per second): how
        // many times slower than memory the op moves its data. Against the memcpy on the same
        // threads (the like-for-like figure), and in brackets against one plain memcpy call.
        let copyRate = bytes / copy, plainRate = bytes / plainCopy
        func line(_ name: String, _ moved: Double, _ t: Double) {
            print(String(format: "  %@ %.1f GB/s   (%.2f× memcpy; %.2f× one memcpy call)", name, moved / t / 1e9,
                         copyRate / (moved / t), plainRate / (moved / t)))
        }
        print(String(format: "  memcpy            %.1f GB/s on %d threads, %.1f GB/s as one call", copyRate / 1e9, Parallel.threads, plainRate / 1e9))
        line("SiLU forward     ", bytes, silu)
        line("LayerNorm forward", bytes, ln)
        line("LayerNorm fwd+bwd", 2.5 * bytes, lnBackward)   // x, y, g in; dx out; x again
    }

    static func conformerLayer() {
        print("\nOne Conformer layer (d 512, 8 heads, kernel 9), batch 4 × 10 s (T′ = 126), train mode")
        var config = EncoderConfig()
        config.dropout = 0.1
        let rng = RandomGenerator(seed: 4)
        let layer = ConformerLayer(config: config, rng: rng, keys: DropoutKeys(seed: 4))
        let (b, t, d) = (4, 126, 512)
        let x = Tensor(zeros: [b, t, d])
        rng.fillUniform(x, -1, 1)
        let positions = PositionalEncoding(config: config, rng: rng, keys: DropoutKeys(seed: 4)).positionTable(length: t)
        let mask = AttentionMask.dense(TimeMask.attention([t, t, t, t], length: t))
        let valid = TimeMask.rows([t, t, t, t], length: t, shape: [b, t, 1])
        let seed = Tensor(zeros: [b, t, d])
        rng.fillUniform(seed, -1, 1)
        let forward = median(5) { _ = withoutGrad { layer(x, positions: positions, attentionMask: mask, validSteps: valid) } }
        let step = median(5) {
            let out = layer(x, positions: positions, attentionMask: mask, validSteps: valid)
            out.backward(seed: seed)
            Gradients.zero(layer.trainableParameters().map(\.tensor))
        }
        // Multiply-adds of the layer: 4 FF matrices (8·d²), q/k/v/out (4·d²), two pointwise
        // convs (3·d²) per frame, linear_pos on 2T′−1 rows, and the two attention products.
        let perFrame = 15.0 * Double(d * d)
        let flops = 2.0 * (Double(b * t) * perFrame + Double((2 * t - 1) * d * d) + 2.0 * Double(b * t * t * d) + Double(b * t * (2 * t - 1) * d))
        print(String(format: "  forward            %.1f ms   %.1f GFLOP/s", forward * 1e3, flops / forward / 1e9))
        print(String(format: "  forward + backward %.1f ms   %.1f GFLOP/s (backward counted as 2× forward)", step * 1e3, 3 * flops / step / 1e9))
    }
}
