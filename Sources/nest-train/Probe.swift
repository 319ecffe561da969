import ArgumentParser
import Audio
import Foundation
import Model
import Training

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Frozen-feature probe: learned softmax weights over the encoder's layers (subsampling output as layer 0) and a linear classifier, trained with AdamW on features extracted once; or the same on log-mel features.")

    @OptionGroup var encoderModel: ModelOptions
    @OptionGroup var compute: DeviceOptions
    @Flag(name: .customLong("random-init"), help: "The config's architecture at its random initialisation (seeded).") var randomInit = false
    @Flag(name: .customLong("log-mel"), help: "The log-mel front end instead of an encoder (8 frames per 80 ms token).") var logMel = false
    @Option(help: "Manifest to train the classifier on.") var train: String
    @Option(help: "Manifest to test it on.") var test: String
    @Option(help: "Manifest field holding the label (e.g. speaker), or timed segments with --pool none.") var label: String
    @Option(help: "mean: one item per utterance; none: one per 80 ms frame, labelled by the segment covering it.") var pool = "mean"
    @Option(help: "Training epochs of the classifier.") var epochs = 100
    @Option(help: "Seed of the classifier (and of --random-init).") var seed: UInt64 = 1
    @Flag(help: "Print one JSON line.") var json = false

    func run() throws {
        try reportingErrors {
            guard let p = ProbeData.Pool(rawValue: pool) else { throw ValidationError("--pool must be mean or none") }
            try compute.select()
            let started = Date()
            if randomInit && encoderModel.nemo != nil { throw ValidationError("--random-init takes the architecture from --config, not --nemo") }
            let (cfg, model) = try encoderModel.load(overrides: ["++seed=\(seed)"], withWeights: !randomInit && !logMel)
            let encoder: ProbeData.Encoder = logMel ? .logMel : randomInit ? .randomInit : .pretrained
            let frontEnd = FilterbankFeatures(settings: cfg.frontEnd)
            let source = encoder == .logMel ? nil : model
            let trainData = try ProbeData.extract(manifest: train, labelKey: label, pool: p, model: source, frontEnd: frontEnd, sampleRate: cfg.sampleRate)
            let testData = try ProbeData.extract(manifest: test, labelKey: label, pool: p, model: source, frontEnd: frontEnd, sampleRate: cfg.sampleRate)
            let classes = Array(Set(trainData.labels)).sorted()
            let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
            // Test items whose label never occurs in training cannot be predicted: they count as errors.
            var settings = LinearProbe.Settings()
            settings.epochs = epochs
            settings.seed = seed
            let result = LinearProbe.fit(train: trainData.items, trainLabels: trainData.labels.map { index[$0]! },
                                         test: testData.items, testLabels: testData.labels.map { index[$0] ?? -1 }, classes: classes.count, settings: settings)
            let out: [String: Any] = [
                "task": p == .mean ? "utterance" : "frame", "label": label, "encoder": encoder.rawValue, "classes": classes.count,
                "train_items": result.trainItems, "test_items": result.testItems, "accuracy": result.accuracy,
                "majority_accuracy": result.majorityAccuracy, "layer_weights": result.layerWeights, "epochs": result.epochs,
                "seconds": Date().timeIntervalSince(started),
            ]
            if json {
                print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
            } else {
                log(String(format: "%@ probe of %@ (%@): accuracy %.3f vs majority %.3f on %d test items, %d classes",
                           p == .mean ? "utterance" : "frame", label, encoder.rawValue, result.accuracy, result.majorityAccuracy, result.testItems, classes.count))
            }
        }
    }
}
