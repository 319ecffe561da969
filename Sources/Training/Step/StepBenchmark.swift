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
        let build = (seconds: MonotonicClock.seconds - buildStart, peakRSSMiB: peakRSSMiB())
        let bench = Bench(model: model, frontEnd: frontEnd, trainingStep: TrainingStep(model: model, config: config, group: group), config: config,
                          mode: mode, batch: batch, seconds: seconds, seed: seed, group: group)
        let measurement = bench.measure(steps: steps, warmup: warmup)
        var out = bench.report(measurement, configName: configName, build: build)
        if mode == .allreduce { out.merge(bench.allreduceReport(measurement)) { ours, _ in ours } }
        if mode == .train || mode == .allreduce { out.merge(bench.trainingReport(measurement)) { ours, _ in ours } }
        let data = (try? JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }

    /// `x` rounded to `digits` decimals, for the JSON line.
    static func rounded(_ x: Double, _ digits: Int = 4) -> Double { (x * pow(10, Double(digits))).rounded() / pow(10, Double(digits)) }

    /// What the steps gave: one row of timings per step (warm-up included) and, over the
    /// measured steps, the GEMM FLOPs, CPU time, wall time and what was asked of the device.
    struct Measurement {
        var rows: [[String: Double]] = []
        var losses: [Double] = [], lrs: [Double] = []
        var maskedFraction = 0.0
        var flops = 0, cpu = CPUTime(user: 0, sys: 0, minorFaults: 0), wall = 0.0
        var activity: DeviceActivity?
        var warmup = 0, steps = 0

        var measured: ArraySlice<[String: Double]> { rows.dropFirst(warmup) }
        var stepTimes: [Double] { measured.map { $0["step"]! } }
        var medianStep: Double { StepBenchmark.median(stepTimes) }
        func median(_ part: String) -> Double { StepBenchmark.median(measured.compactMap { $0[part] }) }
    }

    /// One benchmark: a model, its step and the synthetic batches it is timed on.
    struct Bench {
        let model: NESTModel, frontEnd: FilterbankFeatures, trainingStep: TrainingStep, config: RunConfig
        let mode: Mode, batch: Int, seconds: Double, seed: UInt64, group: ProcessGroup
        var training: Bool { mode == .train || mode == .allreduce }
        var samples: Int { Int(seconds * Double(config.sampleRate)) }

        func measure(steps: Int, warmup: Int) -> Measurement {
            var m = Measurement(activity: Device.default.backend.activity.map { _ in DeviceActivity() }, warmup: warmup, steps: steps)
            let masks = BlockMaskSampler(model: config.model)
            let augmentation = config.train.augmentation.map { MultiSpeakerNoiseAugmentation(settings: $0) }
            training ? model.train() : model.eval()
            for step in 0..<(warmup + steps) {
                m.rows.append(self.step(step, masks: masks, augmentation: augmentation, into: &m, measured: step >= warmup))
            }
            return m
        }

        /// One step on fresh synthetic audio (the reference's recipe: audio 0.1·N(0,1), noise
        /// 0.05·N(0,1)); its row of timings, and when `measured` its FLOPs, CPU and wall time
        /// added to `m`. Augmentation runs outside the timed step, as in NeMo's data loader.
        func step(_ step: Int, masks: BlockMaskSampler, augmentation: MultiSpeakerNoiseAugmentation?, into m: inout Measurement, measured: Bool) -> [String: Double] {
            let rng = RandomGenerator(seed: (seed &* 1000 &+ UInt64(step)) ^ (UInt64(group.rank) << 40))
            let lengths = [Int](repeating: samples, count: batch)
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
                let input = Batch(position: DataPosition(epoch: 0, index: step), audio: audio, noisy: noisy, lengths: lengths,
                                  frontEnd: frontEnd, masks: masks, slotRNGs: slots, dither: true, sampleRate: config.sampleRate, utterances: ["synthetic"],
                                  slots: Array((group.rank * batch)..<((group.rank + 1) * batch)))
                let frontEndSeconds = MonotonicClock.seconds - t0
                row["front_end"] = frontEndSeconds
                let before = Device.default.backend.activity
                let (metrics, outcome) = trainingStep.train([input], update: step + 1)
                // What the measured steps (the step alone: not the front end, which runs in the
                // data loader during training) asked of the device, where it counts (CUDA).
                if measured, let before, let after = Device.default.backend.activity {
                    m.activity = m.activity.map { $0 + (after - before) }
                }
                row["fwd_loss"] = frontEndSeconds + metrics.forwardSeconds
                row["bwd"] = metrics.backwardSeconds
                row["opt"] = metrics.updateSeconds
                row["comm"] = metrics.communicationSeconds
                row["exposed_comm"] = metrics.exposedCommunicationSeconds
                m.losses.append(metrics.loss)
                if case let .updated(_, lr, _) = outcome { m.lrs.append(lr) }
                m.maskedFraction = Double(input.frameMask.maskedFrames) / Double(input.frameMask.values.count)
            }
            row["step"] = MonotonicClock.seconds - t0
            let cpu1 = cpuTime()
            row["faults"] = Double(cpu1.minorFaults - cpu0.minorFaults)
            if measured {
                m.flops += GEMM.flops
                m.cpu = CPUTime(user: m.cpu.user + cpu1.user - cpu0.user, sys: m.cpu.sys + cpu1.sys - cpu0.sys,
                                minorFaults: m.cpu.minorFaults + cpu1.minorFaults - cpu0.minorFaults)
                m.wall += row["step"]!
            }
            return row
        }

        /// The fields of every mode: the run, the step's times and parts, memory, FLOPs and
        /// their rate against SGEMM on this machine.
        func report(_ m: Measurement, configName: String, build: (seconds: Double, peakRSSMiB: Double)) -> [String: Any] {
            let r = StepBenchmark.rounded
            let parts: [String] = mode == .allreduce ? ["fwd_loss", "bwd", "opt", "comm", "exposed_comm"]
                : mode == .train ? ["fwd_loss", "bwd", "opt"] : mode == .infer ? ["preprocessor", "encoder"] : ["preprocessor"]
            let summary = ModelSummary(model: model, config: config.model, batch: batch, seconds: seconds)
            let flopsPerStep = Double(m.flops) / Double(max(m.steps, 1))
            let gflopsPerSecond = flopsPerStep / max(m.medianStep, 1e-9) / 1e9
            // The step's own products are counted in `flops`; the reference runs are not.
            let singleCore = GEMM.rate(threads: 1), allCores = GEMM.rate(threads: Parallel.threads)
            // The step's tensor memory, read before the device's SGEMM run allocates its operands.
            let device = Device.default, stepMemory = device.backend.memory
            var out: [String: Any] = [
                "program": "nest-train", "mode": mode.rawValue, "config": configName, "batch": batch, "seconds": seconds,
                "sample_rate": config.sampleRate, "steps": m.steps, "warmup": m.warmup, "seed": seed, "threads": Parallel.threads,
                "cpu_count": ProcessInfo.processInfo.activeProcessorCount,
                "params": ["total": summary.total, "trainable": summary.trainable, "encoder": summary.encoder],
                "step_s": ["median": r(m.medianStep, 4), "min": r(m.stepTimes.min() ?? 0, 4), "max": r(m.stepTimes.max() ?? 0, 4)],
                "parts_median_s": Dictionary(uniqueKeysWithValues: parts.map { p in (p, r(m.median(p), 6)) }),
                "step_s_all": m.rows.map { r($0["step"]!, 4) },
                "audio_seconds_per_second": r(Double(batch) * seconds / max(m.medianStep, 1e-9), 3),
                "peak_rss_mib": r(peakRSSMiB(), 1), "peak_rss_after_build_mib": r(build.peakRSSMiB, 1),
                // Tensor memory: the most handed out at once, and that plus the pool's idle buffers.
                "tensor_peak_live_mib": stepMemory.peakLive >> 20, "tensor_peak_with_idle_mib": stepMemory.peakTotal >> 20,
                "measured_wall_s": r(m.wall, 3), "measured_cpu_user_s": r(m.cpu.user, 3), "measured_cpu_sys_s": r(m.cpu.sys, 3),
                "page_faults_per_step": m.cpu.minorFaults / max(m.steps, 1), "page_faults_all": m.rows.map { Int($0["faults"]!) },
                "build_s": r(build.seconds, 2),
                "gemm_flops_per_step": flopsPerStep, "gemm_gflops_per_second": r(gflopsPerSecond, 2),
                // Model FLOPs per step ÷ step time against sgemm on one core and on all the step's
                // threads (the latter can reach at most 1).
                "single_core_sgemm_gflops": r(singleCore, 1), "threads_sgemm_gflops": r(allCores, 1),
                "efficiency_vs_single_core_sgemm": r(gflopsPerSecond / singleCore, 3),
                "efficiency_vs_threads_sgemm": r(gflopsPerSecond / allCores, 3),
                "time_utc": ISO8601DateFormatter().string(from: Date()),
                "device": device.name,
            ].merging(Platform.fields) { ours, _ in ours }
            if !device.backend.isHostMemory {
                // On a GPU the ceiling is the device's own large SGEMM, measured here.
                let deviceRate = deviceSGEMMRate(device)
                out["device_sgemm_gflops"] = r(deviceRate, 1)
                out["efficiency_vs_device_sgemm"] = r(gflopsPerSecond / deviceRate, 3)
            }
            return out
        }

        /// allreduce: the sums' times per step, and the same bytes summed in one blocking call
        /// (the bandwidth the buckets could reach).
        func allreduceReport(_ m: Measurement) -> [String: Any] {
            let r = StepBenchmark.rounded
            let floats = trainingStep.optimizer.parameters.reduce(0) { $0 + $1.tensor.count }
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: floats)
            defer { buffer.deallocate() }
            buffer.update(repeating: 1, count: floats)
            let times: [Double] = (0..<5).map { _ in
                let t = MonotonicClock.seconds
                group.startSum(buffer, count: floats).wait()
                return MonotonicClock.seconds - t
            }
            let bytes = Double(floats * 4), seconds = StepBenchmark.median(times)
            return [
                "ranks": group.size, "gradient_bytes": floats * 4, "allreduce_blocking_s": r(seconds, 4),
                // Bus bandwidth (NCCL's convention): what each link carries in a ring, 2(N−1)/N × bytes.
                "allreduce_bus_gbytes_per_s": r(2 * Double(group.size - 1) / Double(group.size) * bytes / seconds / 1e9, 3),
                "comm_s_all": m.rows.map { r($0["comm"] ?? 0, 4) }, "exposed_comm_s_all": m.rows.map { r($0["exposed_comm"] ?? 0, 4) },
                "exposed_comm_share_of_step": r(m.median("exposed_comm") / max(m.medianStep, 1e-9), 3),
            ]
        }

        /// train and allreduce: losses, learning rates, masking, the front ends' share and what
        /// the step asked of the device.
        func trainingReport(_ m: Measurement) -> [String: Any] {
            let r = StepBenchmark.rounded
            var out: [String: Any] = [
                // NeMo computes the features in its forward, so `step_s` and `fwd_loss` include
                // the front ends; nest-train's loader thread computes them beside the step.
                "front_end_median_s": r(m.median("front_end"), 4),
                "step_without_front_end_median_s": r(StepBenchmark.median(m.measured.map { $0["step"]! - ($0["front_end"] ?? 0) }), 4),
                "losses": m.losses.map { r($0, 5) }, "lr_first_last": [m.lrs.first ?? 0, m.lrs.last ?? 0],
                "masked_frac_last": r(m.maskedFraction, 4),
                "aug_median_s": config.train.augmentation == nil ? NSNull() : r(m.median("aug"), 4),
            ]
            if let activity = m.activity { out["gpu_counts_per_step"] = activity.perStep(m.steps) }
            return out
        }
    }
}
