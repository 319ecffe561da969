import Foundation

/// librosa's `filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney")`: triangular
/// filters on the Slaney mel scale, each scaled to unit area (2 / bandwidth in Hz).
public enum MelFilterbank {
    /// Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    static func hzToMel(_ f: Double) -> Double {
        let minLogHz = 1000.0, minLogMel = minLogHz / (200.0 / 3), logStep = log(6.4) / 27
        return f < minLogHz ? f / (200.0 / 3) : minLogMel + log(f / minLogHz) / logStep
    }

    static func melToHz(_ m: Double) -> Double {
        let minLogHz = 1000.0, minLogMel = minLogHz / (200.0 / 3), logStep = log(6.4) / 27
        return m < minLogMel ? m * (200.0 / 3) : minLogHz * exp(logStep * (m - minLogMel))
    }

    /// Row-major [nMels, nFFT/2 + 1] weights, rounded to Float32 as NeMo stores them.
    public static func slaney(sampleRate: Int, nFFT: Int, nMels: Int, fMin: Double = 0, fMax: Double? = nil) -> [Float] {
        let bins = nFFT / 2 + 1
        let top = fMax ?? Double(sampleRate) / 2
        let melMin = hzToMel(fMin), melMax = hzToMel(top)
        let edges = (0..<(nMels + 2)).map { melToHz(melMin + (melMax - melMin) * Double($0) / Double(nMels + 1)) }
        var weights = [Float](repeating: 0, count: nMels * bins)
        for i in 0..<nMels {
            let lower = edges[i], center = edges[i + 1], upper = edges[i + 2]
            let norm = 2 / (upper - lower)
            for k in 0..<bins {
                let f = Double(k) * Double(sampleRate) / Double(nFFT)
                let w = max(0, min((f - lower) / (center - lower), (upper - f) / (upper - center)))
                weights[i * bins + k] = Float(w * norm)
            }
        }
        return weights
    }
}

/// Analysis windows.
public enum Window {
    /// Symmetric Hann (torch.hann_window(n, periodic=False)): w[i] = 0.5 − 0.5·cos(2πi/(n−1)).
    public static func symmetricHann(_ n: Int) -> [Float] {
        (0..<n).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n - 1))) }
    }
}
