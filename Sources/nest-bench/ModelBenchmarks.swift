import Audio
import Foundation
import Model
import Tensor
import Training

/// Front-end real-time factor and whole-model training steps on synthetic input.
enum ModelBenchmarks {
    static func peakRSSGiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / Double(1 << 20)   // ru_maxrss is in KiB on Linux
    }

    static func frontEnd() {
        print("\nFront end (NeMo log-mel), 8 utterances × 10 s, eval mode")
        let rng = RandomGenerator(seed: 5)
        let audio = (0..<8).map { _ in (0..<160_000).map { _ in Float(rng.normal() * 0.1) } }
        let fe = FilterbankFeatures()
        let t = EngineBenchmark.median(5) { _ = fe(audio, lengths: audio.map(\.count), rng: nil) }
        print(String(format: "  %.2f ms per second of audio (real-time factor %.5f; NeMo on this machine: about 0.5 ms)", t * 1000 / 80, t / 80))
    }

    /// Forward + backward of the whole NEST objective (encoder, decoder on masked tokens, loss)
    /// on synthetic features with a real frame mask; prints time and peak RSS.
    static func trainingStep(config path: String, batch: Int, seconds: Double, repeats: Int) {
        guard let doc = try? ConfigDocument(contentsOf: path), let config = try? RunConfig(doc, requireData: false) else {
            print("  cannot read \(path)")
            return
        }
        let (model, fe) = ModelFactory.make(config)
        model.train()
        let rng = RandomGenerator(seed: 6)
        let samples = Int(seconds * 16000)
        let audio = (0..<batch).map { _ in (0..<samples).map { _ in Float(rng.normal() * 0.1) } }
        let (clean, lengths) = fe(audio, lengths: audio.map(\.count), rng: rng)
        let (noisy, _) = fe(audio, lengths: audio.map(\.count), rng: rng)
        let mask = model.maskProcessor.drawMask(lengths: lengths, frames: noisy.shape[2], rng: rng)
        let params = model.trainableParameters().map(\.tensor)
        let t = EngineBenchmark.median(repeats) {
            let r = model.maskedTokenLoss(clean: clean, noisy: noisy, noisyLengths: lengths, frameMask: mask)
            r.loss.backward()
            Gradients.zero(params)
        }
        print(String(format: "  %@ batch %d × %.0f s: forward + backward %.2f s, peak RSS %.2f GiB", (path as NSString).lastPathComponent, batch, seconds, t, peakRSSGiB()))
    }
}
