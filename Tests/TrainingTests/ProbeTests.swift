import Foundation
import Tensor
import Training
import XCTest
import _TestSupport

/// The frozen-feature probe: the classifier on synthetic features, and the subcommand end to end.
final class ProbeTests: XCTestCase {
    /// Three layers of width 6; the label is linearly decodable from layer 1 only (the others
    /// are noise), 4 classes.
    func synthetic(_ n: Int, seed: UInt64) -> ([[[Float]]], [Int]) {
        let rng = RandomGenerator(seed: seed)
        var items: [[[Float]]] = [], labels: [Int] = []
        for _ in 0..<n {
            let label = rng.int(in: 0...3)
            let noise = { (0..<6).map { _ in Float(rng.normal()) } }
            var informative = noise().map { $0 * 0.3 }
            informative[label] += 3
            items.append([noise(), informative, noise()])
            labels.append(label)
        }
        return (items, labels)
    }

    func testDecodableLabelsAreLearnedAndShuffledOnesAreNot() {
        let (train, trainLabels) = synthetic(400, seed: 1), (test, testLabels) = synthetic(200, seed: 2)
        var settings = LinearProbe.Settings()
        settings.epochs = 60
        let r = LinearProbe.fit(train: train, trainLabels: trainLabels, test: test, testLabels: testLabels, classes: 4, settings: settings)
        XCTAssertGreaterThan(r.accuracy, 0.97)
        XCTAssertEqual(r.layerWeights.reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertEqual(r.layerWeights.firstIndex(of: r.layerWeights.max()!), 1, "the informative layer gets the largest weight: \(r.layerWeights)")
        // Labels shuffled against the features: no better than the majority by much.
        let shuffled = RandomGenerator(seed: 3).permutation(trainLabels.count).map { trainLabels[$0] }
        let testShuffled = RandomGenerator(seed: 4).permutation(testLabels.count).map { testLabels[$0] }
        let s = LinearProbe.fit(train: train, trainLabels: shuffled, test: test, testLabels: testShuffled, classes: 4, settings: settings)
        XCTAssertLessThan(s.accuracy, s.majorityAccuracy + 0.15, "shuffled labels: \(s.accuracy) vs majority \(s.majorityAccuracy)")
        // Deterministic from the seed.
        let again = LinearProbe.fit(train: train, trainLabels: trainLabels, test: test, testLabels: testLabels, classes: 4, settings: settings)
        XCTAssertEqual(again.accuracy, r.accuracy)
        XCTAssertEqual(again.layerWeights, r.layerWeights)
    }

    func testProbeSubcommandOnUtteranceAndFrameLabels() throws {
        try CLI.ensureTinyCorpus()
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path
        let dir = CLI.temporaryDirectory()
        // Frame labels: "first" for the first second of each utterance, "rest" after it.
        let lines = try String(contentsOfFile: manifest, encoding: .utf8).split(separator: "\n").map { line -> String in
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            o["audio_filepath"] = CLI.root.appendingPathComponent("Data/generated/tiny/" + (o["audio_filepath"] as! String)).path
            o["segments"] = [[0, 1.0, "first"], [1.0, 100, "rest"]]
            return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/m.json", atomically: true, encoding: .utf8)
        for (pool, label, encoder) in [("mean", "speaker", "--random-init"), ("none", "segments", "--log-mel"), ("none", "segments", "--random-init")] {
            let r = try CLI.run(["probe", "--config", "Configs/tiny.yaml", encoder, "--train", dir + "/m.json", "--test", dir + "/m.json",
                                 "--label", label, "--pool", pool, "--epochs", "5", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
            for key in ["task", "label", "encoder", "classes", "train_items", "test_items", "accuracy", "majority_accuracy", "layer_weights", "epochs", "seconds"] {
                XCTAssertNotNil(o[key], "\(key) in \(r.stdout)")
            }
            XCTAssertEqual(o["encoder"] as? String, encoder == "--log-mel" ? "log-mel" : "random-init")
            let weights = o["layer_weights"] as! [Double]
            XCTAssertEqual(weights.count, encoder == "--log-mel" ? 1 : 3, "subsampling output plus the tiny model's 2 layers")
            XCTAssertEqual(weights.reduce(0, +), 1, accuracy: 1e-5)
            if pool == "none" { XCTAssertGreaterThan(o["train_items"] as! Int, 7, "one item per 80 ms frame") }
        }
    }
}
