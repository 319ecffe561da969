import CFFTW
import Foundation
import Tensor

/// NeMo's `AudioToMelSpectrogramPreprocessor` (`FilterbankFeatures`, NeMo ≥ 2.5 behaviour):
/// dither (training only), pre-emphasis with zeroing past the valid length, centred STFT with
/// zero padding, power spectrum, Slaney mel, log with a 2⁻²⁴ guard, per-feature normalisation
/// (unbiased std + 1e-5) over valid frames, zeroed padding frames, time padded to `padTo`.
///
/// Computes on the host into a host view of its output tensor: the front end never touches the
/// autodiff tape.
public final class FilterbankFeatures: @unchecked Sendable {
    public struct Settings: Equatable {
        public var sampleRate = 16000
        public var windowSize = 400
        public var hop = 160
        public var nFFT = 512
        public var features = 80
        public var preemphasis: Float? = 0.97
        public var dither: Float = 1e-5
        public var padTo = 16
        public var logGuard: Float = 5.960464477539063e-08   // 2^-24
        /// `per_feature` normalisation; false gives raw log-mel.
        public var normalize = true
        public init() {}
    }

    public let settings: Settings
    /// The 400-sample symmetric Hann window (NeMo's `featurizer.window`).
    public let window: [Float]
    /// [features, nFFT/2 + 1] Slaney mel weights (NeMo's `featurizer.fb`).
    public let filterbank: [Float]
    private let plan: fftwf_plan
    private let planLock = NSLock()

    public init(settings: Settings = Settings()) {
        self.settings = settings
        window = Window.symmetricHann(settings.windowSize)
        filterbank = MelFilterbank.slaney(sampleRate: settings.sampleRate, nFFT: settings.nFFT, nMels: settings.features)
        let input = fftwf_alloc_real(settings.nFFT)!
        let output = fftwf_alloc_complex(settings.nFFT / 2 + 1)!
        // FFTW planning is not thread-safe; the plan is made once and executed on each
        // thread's own FFTW-allocated (equally aligned) buffers.
        plan = fftwf_plan_dft_r2c_1d(Int32(settings.nFFT), input, output, UInt32(FFTW_ESTIMATE))
        fftwf_free(input)
        fftwf_free(output)
    }

    deinit { fftwf_destroy_plan(plan) }

    /// Valid frames for `samples` valid samples: floor(N / hop).
    public func validFrames(_ samples: Int) -> Int { samples / settings.hop }

    /// Padded frame count for a batch whose longest padded signal has `samples` samples.
    public func paddedFrames(_ samples: Int) -> Int {
        let f = 1 + samples / settings.hop
        return (f + settings.padTo - 1) / settings.padTo * settings.padTo
    }

    /// Features [B, F, T] and valid frame counts for a batch [B][N_max] (zero-padded beyond
    /// `lengths`). `dither` holds one generator per utterance for its dither noise; nil
    /// disables dither (evaluation). An utterance's valid frames depend on nothing else in the
    /// batch (its padding frames are zeros), so features can be made in pieces of a batch.
    public func callAsFunction(_ audio: [[Float]], lengths: [Int], dither: [RandomGenerator]?) -> (Tensor, [Int]) {
        let nMax = audio.map(\.count).max() ?? 0
        let t = paddedFrames(nMax)
        let f = settings.features
        // Dither noise: each utterance draws from its own generator, inside its own task, so the
        // draws (160,000 normals per 10 s) run in parallel and do not depend on threads.
        let ditherScale = settings.dither
        let generators = ditherScale > 0 ? dither : nil
        // Computed on the host and copied to the device once: a host view of a fresh device
        // tensor would first download it, waiting for everything queued on the device (the
        // training step a data-loading thread runs beside).
        var features = [Float](repeating: 0, count: audio.count * f * t)
        var frameCounts = [Int](repeating: 0, count: audio.count)
        features.withUnsafeMutableBufferPointer { features in
            frameCounts.withUnsafeMutableBufferPointer { counts in
                let (features, counts) = (features, counts)
                DispatchQueue.concurrentPerform(iterations: audio.count) { b in
                    let noise = generators.map { $0[b].normals(lengths[b]).map { ditherScale * $0 } }
                    counts[b] = utterance(audio[b], length: lengths[b], nMax: nMax, noise: noise, into: features.baseAddress! + b * f * t, frames: t)
                }
            }
        }
        return (Tensor(features, shape: [audio.count, f, t]), frameCounts)
    }

    /// One utterance into `dst` [F, T]; returns its valid frame count.
    private func utterance(_ x: [Float], length: Int, nMax: Int, noise: [Float]?, into dst: UnsafeMutablePointer<Float>, frames t: Int) -> Int {
        let s = settings
        let valid = validFrames(length)
        let pad = s.nFFT / 2
        // Dither, pre-emphasis, zeroing past the valid length, and the centring pad.
        var signal = [Float](repeating: 0, count: nMax + 2 * pad)
        for n in 0..<min(length, nMax) {
            let cur = (n < x.count ? x[n] : 0) + (noise.map { n < $0.count ? $0[n] : 0 } ?? 0)
            signal[pad + n] = cur
        }
        // Dither also lands on padding samples in NeMo, but those are zeroed right after the
        // pre-emphasis; only the sample before the first padded one matters (already included).
        if let p = s.preemphasis {
            for n in stride(from: min(length, nMax) - 1, through: 1, by: -1) { signal[pad + n] -= p * signal[pad + n - 1] }
        }
        // Only the valid frames: the others are zeroed below anyway, and computing them would
        // make the mel GEMM's shape, so its rounding, depend on the longest utterance of the batch.
        let frameCount = valid
        let bins = s.nFFT / 2 + 1
        let windowOffset = (s.nFFT - s.windowSize) / 2
        let input = fftwf_alloc_real(s.nFFT)!
        let spectrum = fftwf_alloc_complex(bins)!
        defer { fftwf_free(input); fftwf_free(spectrum) }
        var power = [Float](repeating: 0, count: frameCount * bins)
        for fr in 0..<frameCount {
            input.update(repeating: 0, count: s.nFFT)
            let start = fr * s.hop
            for i in 0..<s.windowSize { input[windowOffset + i] = signal[start + windowOffset + i] * window[i] }
            fftwf_execute_dft_r2c(plan, input, spectrum)
            let raw = UnsafeMutableRawPointer(spectrum).assumingMemoryBound(to: Float.self)
            for k in 0..<bins {
                let re = raw[2 * k], im = raw[2 * k + 1]
                // NeMo takes the magnitude and squares it (mag_power 2).
                let magnitude = (re * re + im * im).squareRoot()
                power[fr * bins + k] = magnitude * magnitude
            }
        }
        // Mel: [frames, bins] · fbᵀ [bins, F] → [frames, F].
        var mel = [Float](repeating: 0, count: frameCount * s.features)
        if frameCount > 0 { power.withUnsafeBufferPointer { p in
            filterbank.withUnsafeBufferPointer { fb in
                mel.withUnsafeMutableBufferPointer { m in
                    GEMM.run(transposeA: false, transposeB: true, m: frameCount, n: s.features, k: bins,
                             a: p.baseAddress!, lda: bins, b: fb.baseAddress!, ldb: bins, c: m.baseAddress!, ldc: s.features)
                }
            }
        } }
        for i in 0..<mel.count { mel[i] = log(mel[i] + s.logGuard) }
        // Per-feature normalisation over the valid frames, written transposed into [F, T].
        for fe in 0..<s.features {
            let row = dst + fe * t
            var mean = 0.0, variance = 0.0
            if s.normalize {
                for fr in 0..<valid { mean += Double(mel[fr * s.features + fe]) }
                mean /= Double(max(valid, 1))
                for fr in 0..<valid { let d = Double(mel[fr * s.features + fe]) - mean; variance += d * d }
                variance = valid > 1 ? variance / Double(valid - 1) : 0
            }
            let std = s.normalize ? Float(variance.squareRoot()) + 1e-5 : 1
            let mu = Float(mean)
            for fr in 0..<min(valid, frameCount) { row[fr] = (mel[fr * s.features + fe] - mu) / std }
        }
        return valid
    }
}
