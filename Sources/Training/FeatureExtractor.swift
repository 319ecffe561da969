import Basics
import Formats
import Audio
import Foundation
import HDF5
import Model
import NN
import Tensor

/// Eval-mode layer features, in the files NeMo's `scripts/ssl/extract_features.py` writes: one
/// `.npy` of [n_layers, D, T_i] per input (each layer's output after its norm_out, trimmed to
/// the utterance's encoded length) and `features.json` listing them.
public struct FeatureExtractor {
    public let model: NESTModel
    public let frontEnd: FilterbankFeatures
    public let sampleRate: Int

    public init(model: NESTModel, frontEnd: FilterbankFeatures, sampleRate: Int) {
        self.model = model
        self.frontEnd = frontEnd
        self.sampleRate = sampleRate
        model.eval()
    }

    /// Inputs: a manifest (.json/.jsonl), a folder (searched recursively for `.fileType`), or one file.
    public static func inputs(_ input: String, fileType: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else { throw NestError(file: input, "no such file or folder") }
        if isDirectory.boolValue {
            let files = FileManager.default.enumerator(atPath: input)?.compactMap { $0 as? String } ?? []
            return files.filter { $0.hasSuffix("." + fileType) }.sorted().map { input + "/" + $0 }
        }
        if input.hasSuffix(".json") || input.hasSuffix(".jsonl") {
            return try Manifest(paths: [input]).entries.map(\.audioPath)
        }
        return [input]
    }

    /// NeMo's file name: the audio path with "/" and "." replaced by "_", its last 256 characters.
    public static func featureName(_ audioPath: String) -> String {
        String(audioPath.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ".", with: "_").suffix(256)) + ".npy"
    }

    /// Layer outputs [n_layers, D, T_i] for a batch of files.
    public func features(_ paths: [String], layers: [Int]) throws -> [[Float]] {
        let audio = try paths.map { try AudioFile.read($0, sampleRate: sampleRate) }
        let lengths = audio.map(\.count)
        let nMax = lengths.max() ?? 0
        let (feats, frames) = frontEnd(audio.map { $0 + [Float](repeating: 0, count: nMax - $0.count) }, lengths: lengths, dither: nil)
        let out = withoutGrad { model.encoder(feats, lengths: frames, captureLayers: Set(layers)) }
        let (t, d) = (out.encoded.shape[1], out.encoded.shape[2])
        let outputs = layers.map { out.layerOutputs[$0]!.array }
        return paths.indices.map { b in
            let ti = out.lengths[b]
            var values = [Float](); values.reserveCapacity(layers.count * d * ti)
            for layer in outputs {
                for c in 0..<d { for s in 0..<ti { values.append(layer[(b * t + s) * d + c]) } }
            }
            return values
        }
    }

    public func run(inputs: [String], output: String, layers: [Int], batchSize: Int) throws -> Int {
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        var manifest = ""
        for start in stride(from: 0, to: inputs.count, by: max(batchSize, 1)) {
            let chunk = Array(inputs[start..<min(inputs.count, start + batchSize)])
            let feats = try features(chunk, layers: layers)
            for (path, values) in zip(chunk, feats) {
                let d = model.config.encoder.dModel
                let shape = [layers.count, d, values.count / max(layers.count * d, 1)]
                let featurePath = output + "/" + Self.featureName(path)
                guard FileManager.default.createFile(atPath: featurePath, contents: NPYWriter.data(ArrayData(values, shape: shape))) else {
                    throw NestError(file: featurePath, "cannot write features (disk full?)")
                }
                let row: [String: Any] = ["audio_filepath": path, "duration": NSNull(), "text": "-", "feature_path": featurePath]
                manifest += String(decoding: try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self) + "\n"
            }
            Device.default.backend.endStep()
        }
        try manifest.write(toFile: output + "/features.json", atomically: true, encoding: .utf8)
        return inputs.count
    }
}
