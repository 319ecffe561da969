import Audio
import Foundation

/// What a dataset section (`model.train_ds`, `model.validation_ds`) asks of the loader: the
/// manifests, batching, filters, augmentation and shards, read by `RunConfig`.
public struct DataSettings {
    public init() {}

    public var manifests: [String] = []
    public var noiseManifests: [String] = []
    public var batchSize = 8
    public var shuffle = true
    public var dropLast = true
    public var minDuration: Double? = 1.0
    public var maxDuration: Double? = 60.0
    public var skipBadAudio = true
    public var augmentation: MultiSpeakerNoiseAugmentation.Settings? = nil
    /// Validation: fixed masks drawn per utterance (each draw another set of masked tokens),
    /// so that the estimates rest on enough tokens.
    public var maskDraws = 1
    /// NeMo's tarred dataset (`is_tarred: true`).
    public var tarred: TarredShards.Settings? = nil
    /// Batches by seconds of audio (`batch_duration`, NeMo's Lhotse loader); `batchSize`
    /// is then its utterance cap, 0 for none.
    public var duration: DurationBatching? = nil
    /// Several weighted inputs (`input_cfg`); `manifests` lists theirs in order.
    public var mixture: Mixture? = nil

    public struct Mixture: Equatable {
        /// The manifest files of each input.
        public var inputs: [[String]]
        /// Each input's `weight` (nil when none has one: equal chances).
        public var weights: [Double]?
        /// `reweight_temperature` (1: the weights as given).
        public var temperature = 1.0

        public init(inputs: [[String]], weights: [Double]?, temperature: Double = 1) {
            self.inputs = inputs
            self.weights = weights
            self.temperature = temperature
        }
    }

    /// One process's batch in words: "8" or "60 s of audio (at most 16 utterances)".
    public var batchDescription: String {
        guard let duration else { return "\(batchSize)" }
        return String(format: "%g s of audio", duration.seconds) + (duration.maxUtterances.map { " (at most \($0) utterances)" } ?? "")
    }
}
