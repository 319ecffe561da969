import Audio
import Foundation
import Model
import Tensor

/// The front end's real-time factor (whole-model steps: `nest-train bench`).
enum ModelBenchmarks {
    static func frontEnd() {
        print("\nFront end (NeMo log-mel), 8 utterances × 10 s, eval mode")
        let rng = RandomGenerator(seed: 5)
        let audio = (0..<8).map { _ in (0..<160_000).map { _ in Float(rng.normal() * 0.1) } }
        let fe = FilterbankFeatures()
        let t = EngineBenchmark.median(5) { _ = fe(audio, lengths: audio.map(\.count), dither: nil) }
        print(String(format: "  %.2f ms per second of audio (real-time factor %.5f; NeMo on this machine: about 0.5 ms)", t * 1000 / 80, t / 80))
    }
}
