import Config
import DataLoading
import Audio
import Distributed
import Foundation
import Model
import NN
import Tensor

/// `nest-train bench`: times NeMo's units of work on synthetic audio and prints one JSON line
/// with the fields of `../shared/bench/nemo_reference.py`, so the two can be compared side by side.
///
/// train: both front ends (clean, noisy; dither on), quantizer targets, block masking, encoder,
/// decoder, loss (`fwd_loss`), backward (`bwd`), AdamW with the config's schedule (`opt`).
/// Augmentation runs outside the step and is reported as `aug_median_s`, as NeMo's data loader
/// does. infer: eval-mode front end and encoder. features: the front end alone.
/// allreduce (under mpirun): the training step of every rank on its own synthetic batch, with
/// the gradient sums across ranks timed (all of it, and the part not hidden behind backward),
/// and a blocking sum of as many bytes for the bandwidth.
public enum StepBenchmark {
    public enum Mode: String, CaseIterable { case train, infer, features, loader, allreduce }

    struct CPUTime { let user: Double, sys: Double, minorFaults: Int }
    static func cpuTime() -> CPUTime {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return CPUTime(user: Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6,
                       sys: Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6, minorFaults: u.ru_minflt)
    }
    /// GFLOP/s of an 8192³ product on `device` through the engine (after a warm-up; reading one
    /// value back waits for the device).
    public static func deviceSGEMMRate(_ device: Device, size n: Int = 8192) -> Double {
        let a = Tensor(repeating: 0.5, shape: [n, n], on: device), b = Tensor(repeating: 0.25, shape: [n, n], on: device)
        _ = device.backend.elements(withoutGrad { Tensor.matmul(a, b) }, at: [0])
        let start = MonotonicClock.seconds
        let repeats = 5
        var c: Tensor?
        for _ in 0..<repeats { c = withoutGrad { Tensor.matmul(a, b) } }
        _ = device.backend.elements(c!, at: [0])
        return 2 * pow(Double(n), 3) * Double(repeats) / (MonotonicClock.seconds - start) / 1e9
    }

    static func peakRSSMiB() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_maxrss) / 1024
    }

    /// loader: the data pipeline alone on the config's training manifest (reading, resampling,
    /// augmentation with the noise manifest, both front ends, masks), as the background worker
    /// runs it; audio-seconds per second of one worker, and the share of feature frames that
    /// are padding (what batching by duration and buckets is for).
    public static func loader(config: RunConfig, configName: String, batches: Int) throws -> String {
        let frontEnd = FilterbankFeatures(settings: config.frontEnd)
        let loader = try BatchLoader(settings: config.train, frontEnd: frontEnd, masks: BlockMaskSampler(model: config.model),
                                     sampleRate: config.sampleRate, seed: config.seed, training: true)
        var position = DataPosition(epoch: 0, index: 0)
        var audioSeconds = 0.0, validFrames = 0, paddedFrames = 0, utterances = 0
        let t0 = MonotonicClock.seconds
        for _ in 0..<batches {
            let batch = try loader.batch(at: position)
            audioSeconds += batch.audioSeconds
            validFrames += batch.lengths.reduce(0, +)
            paddedFrames += batch.lengths.count * batch.clean.shape[2]
            utterances += batch.lengths.count
            position = loader.next(after: position)
        }
        let wall = MonotonicClock.seconds - t0
        let out: [String: Any] = ["program": "nest-train", "mode": "loader", "config": configName, "batches": batches,
                                  "batch": config.train.batchDescription, "utterances_per_batch": Double(utterances) / Double(max(batches, 1)),
                                  "padding_share": 1 - Double(validFrames) / Double(max(paddedFrames, 1)), "augmentation": config.train.augmentation != nil,
                                  "noise_manifests": config.train.noiseManifests, "wall_s": wall, "audio_seconds": audioSeconds,
                                  "audio_seconds_per_second": audioSeconds / max(wall, 1e-9)]
        return String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self)
    }

    public static func run(config: RunConfig, configName: String, mode: Mode, batch: Int, seconds: Double,
                           steps: Int, warmup: Int, seed: UInt64, group: ProcessGroup = .single) -> String {
        let buildStart = MonotonicClock.seconds
        let (model, frontEnd) = ModelFactory.make(config)
        let buildSeconds = MonotonicClock.seconds - buildStart
        let rssBuild = peakRSSMiB()
        let trainingStep = TrainingStep(model: model, config: config, group: group)
        let training = mode == .train || mode == .allreduce
        let masks = BlockMaskSampler(model: config.model)
        let samples = Int(seconds * Double(config.sampleRate))
        let lengths = [Int](repeating: samples, count: batch)
        let augmentation = config.train.augmentation.map { MultiSpeakerNoiseAugmentation(settings: $0) }
        var rows: [[String: Double]] = []
        var losses: [Double] = [], lrs: [Double] = []
        var maskedFraction = 0.0
        var measuredFlops = 0, measuredCPU = CPUTime(user: 0, sys: 0, minorFaults: 0), measuredWall = 0.0
        // What the measured steps (the step alone: not the front end, which runs in the data
        // loader during training) asked of the device, where it counts (the CUDA device).
        var measuredActivity = Device.default.backend.activity.map { _ in DeviceActivity() }
        training ? model.train() : model.eval()
        for step in 0..<(warmup + steps) {
            // Same recipe as the reference: audio 0.1·N(0,1), noise 0.05·N(0,1).
            let rng = RandomGenerator(seed: (seed &* 1000 &+ UInt64(step)) ^ (UInt64(group.rank) << 40))
            let audio = (0..<batch).map { _ in (0..<samples).map { _ in Float(0.1 * rng.normal()) } }
            let noise = (0..<batch).map { _ in (0..<samples).map { _ in Float(0.05 * rng.normal()) } }
            let slots = (0..<batch).map { rng.derived(UInt64($0)) }
            var row: [String: Double] = [:]
            var noisy = zip(audio, noise).map { a, n in zip(a, n).map(+) }
            if training, let augmentation {
                let t = MonotonicClock.seconds
                noisy = augmentation(audio, lengths: lengths, rngs: slots.map { $0.derived(4) }) { i, n in Array(noise[i].prefix(n)) }.noisy
                row["aug"] = MonotonicClock.seconds - t
            }
            GEMM.resetFlops()
            let cpu0 = cpuTime(), t0 = MonotonicClock.seconds
            switch mode {
            case .loader:
                preconditionFailure("the loader mode is StepBenchmark.loader(config:configName:batches:)")
            case .features:
                _ = frontEnd(audio, lengths: lengths, dither: nil)
                row["preprocessor"] = MonotonicClock.seconds - t0
            case .infer:
                let (features, frames) = frontEnd(audio, lengths: lengths, dither: nil)
                let t1 = MonotonicClock.seconds
                _ = withoutGrad { model.encoder(features, lengths: frames) }
                row["preprocessor"] = t1 - t0
                row["encoder"] = MonotonicClock.seconds - t1
            case .train, .allreduce:
                // The front ends run in the data loader during training; NeMo runs them in its
                // forward, so they count as forward here.
                let batch = Batch(position: DataPosition(epoch: 0, index: step), audio: audio, noisy: noisy, lengths: lengths,
                                  frontEnd: frontEnd, masks: masks, slotRNGs: slots, dither: true, sampleRate: config.sampleRate, utterances: ["synthetic"],
                                  slots: Array((group.rank * batch)..<((group.rank + 1) * batch)))
                let frontEndSeconds = MonotonicClock.seconds - t0
                row["front_end"] = frontEndSeconds
                let before = Device.default.backend.activity
                let (metrics, outcome) = trainingStep.train([batch], update: step + 1)
                if step >= warmup, let before, let after = Device.default.backend.activity {
                    measuredActivity = measuredActivity.map { $0 + (after - before) }
                }
                row["fwd_loss"] = frontEndSeconds + metrics.forwardSeconds
                row["bwd"] = metrics.backwardSeconds
                row["opt"] = metrics.updateSeconds
                row["comm"] = metrics.communicationSeconds
                row["exposed_comm"] = metrics.exposedCommunicationSeconds
                losses.append(metrics.loss)
                if case let .updated(_, lr, _) = outcome { lrs.append(lr) }
                maskedFraction = Double(batch.frameMask.maskedFrames) / Double(batch.frameMask.values.count)
            }
            row["step"] = MonotonicClock.seconds - t0
            let cpu1 = cpuTime()
            row["faults"] = Double(cpu1.minorFaults - cpu0.minorFaults)
            if step >= warmup {
                measuredFlops += GEMM.flops
                measuredCPU = CPUTime(user: measuredCPU.user + cpu1.user - cpu0.user, sys: measuredCPU.sys + cpu1.sys - cpu0.sys,
                                      minorFaults: measuredCPU.minorFaults + cpu1.minorFaults - cpu0.minorFaults)
                measuredWall += row["step"]!
            }
            rows.append(row)
        }
        let measured = Array(rows.dropFirst(warmup))
        func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2) }
        func r(_ x: Double, _ digits: Int = 4) -> Double { (x * pow(10, Double(digits))).rounded() / pow(10, Double(digits)) }
        let stepTimes = measured.map { $0["step"]! }
        let parts: [String] = mode == .allreduce ? ["fwd_loss", "bwd", "opt", "comm", "exposed_comm"]
            : mode == .train ? ["fwd_loss", "bwd", "opt"] : mode == .infer ? ["preprocessor", "encoder"] : ["preprocessor"]
        let summary = ModelSummary(model: model, config: config.model, batch: batch, seconds: seconds)
        let flopsPerStep = Double(measuredFlops) / Double(max(steps, 1))
        // The step's own products are counted in `flops`; the reference runs are not.
        let singleCore = GEMM.rate(threads: 1), allCores = GEMM.rate(threads: Parallel.threads)
        // The step's tensor memory, read before the device's SGEMM run allocates its operands.
        let device = Device.default, stepMemory = device.backend.memory
        let deviceRate = device.backend.isHostMemory ? nil : deviceSGEMMRate(device)
        var out: [String: Any] = [
            "program": "nest-train", "mode": mode.rawValue, "config": configName, "batch": batch, "seconds": seconds,
            "sample_rate": config.sampleRate, "steps": steps, "warmup": warmup, "seed": seed, "threads": Parallel.threads,
            "cpu_count": ProcessInfo.processInfo.activeProcessorCount,
            "params": ["total": summary.total, "trainable": summary.trainable, "encoder": summary.encoder],
            "step_s": ["median": r(median(stepTimes)), "min": r(stepTimes.min() ?? 0), "max": r(stepTimes.max() ?? 0)],
            "parts_median_s": Dictionary(uniqueKeysWithValues: parts.map { p in (p, r(median(measured.compactMap { $0[p] }), 6)) }),
            "step_s_all": rows.map { r($0["step"]!) },
            "audio_seconds_per_second": r(Double(batch) * seconds / max(median(stepTimes), 1e-9), 3),
            "peak_rss_mib": r(peakRSSMiB(), 1), "peak_rss_after_build_mib": r(rssBuild, 1),
            // Tensor memory: the most handed out at once, and that plus the pool's idle buffers.
            "tensor_peak_live_mib": stepMemory.peakLive >> 20, "tensor_peak_with_idle_mib": stepMemory.peakTotal >> 20,
            "measured_wall_s": r(measuredWall, 3), "measured_cpu_user_s": r(measuredCPU.user, 3), "measured_cpu_sys_s": r(measuredCPU.sys, 3),
            "page_faults_per_step": measuredCPU.minorFaults / max(steps, 1), "page_faults_all": rows.map { Int($0["faults"]!) },
            "build_s": r(buildSeconds, 2),
            "gemm_flops_per_step": flopsPerStep, "gemm_gflops_per_second": r(flopsPerStep / max(median(stepTimes), 1e-9) / 1e9, 2),
            // Model FLOPs per step ÷ step time against sgemm on one core and on all the step's
            // threads (the latter can reach at most 1).
            "single_core_sgemm_gflops": r(singleCore, 1), "threads_sgemm_gflops": r(allCores, 1),
            "efficiency_vs_single_core_sgemm": r(flopsPerStep / max(median(stepTimes), 1e-9) / 1e9 / singleCore, 3),
            "efficiency_vs_threads_sgemm": r(flopsPerStep / max(median(stepTimes), 1e-9) / 1e9 / allCores, 3),
            "time_utc": ISO8601DateFormatter().string(from: Date()),
            "device": device.name,
        ].merging(Platform.fields) { ours, _ in ours }
        if let deviceRate {
            // On a GPU the ceiling is the device's own large SGEMM, measured here.
            out["device_sgemm_gflops"] = r(deviceRate, 1)
            out["efficiency_vs_device_sgemm"] = r(flopsPerStep / max(median(stepTimes), 1e-9) / 1e9 / deviceRate, 3)
        }
        if mode == .allreduce {
            // The same bytes summed in one blocking call: the bandwidth the buckets could reach.
            let floats = trainingStep.optimizer.parameters.reduce(0) { $0 + $1.tensor.count }
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: floats)
            defer { buffer.deallocate() }
            buffer.update(repeating: 1, count: floats)
            let times: [Double] = (0..<5).map { _ in
                let t = MonotonicClock.seconds
                group.startSum(buffer, count: floats).wait()
                return MonotonicClock.seconds - t
            }
            let bytes = Double(floats * 4), seconds = median(times)
            out["ranks"] = group.size
            out["gradient_bytes"] = floats * 4
            out["allreduce_blocking_s"] = r(seconds, 4)
            // Bus bandwidth (NCCL's convention): what each link carries in a ring, 2(N−1)/N × bytes.
            out["allreduce_bus_gbytes_per_s"] = r(2 * Double(group.size - 1) / Double(group.size) * bytes / seconds / 1e9, 3)
            out["comm_s_all"] = rows.map { r($0["comm"] ?? 0) }
            out["exposed_comm_s_all"] = rows.map { r($0["exposed_comm"] ?? 0) }
            out["exposed_comm_share_of_step"] = r(median(measured.compactMap { $0["exposed_comm"] }) / max(median(stepTimes), 1e-9), 3)
        }
        if training {
            // NeMo computes the features in its forward, so `step_s` and `fwd_loss` include the
            // front ends; nest-train's loader thread computes them beside the step.
            out["front_end_median_s"] = r(median(measured.compactMap { $0["front_end"] }), 4)
            out["step_without_front_end_median_s"] = r(median(measured.map { $0["step"]! - ($0["front_end"] ?? 0) }), 4)
            if let measuredActivity { out["gpu_counts_per_step"] = measuredActivity.perStep(steps) }
            out["losses"] = losses.map { r($0, 5) }
            out["lr_first_last"] = [lrs.first ?? 0, lrs.last ?? 0]
            out["masked_frac_last"] = r(maskedFraction, 4)
            out["aug_median_s"] = augmentation == nil ? NSNull() : r(median(measured.compactMap { $0["aug"] }), 4)
        }
        let data = (try? JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
