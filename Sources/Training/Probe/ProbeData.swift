import Basics
import Audio
import Foundation
import Model
import Tensor

/// Items for `LinearProbe` from a manifest: features of a frozen encoder (eval mode; the
/// subsampling output as layer 0, then every Conformer layer) or of the log-mel front end,
/// with labels from a manifest field. `mean` pools each utterance over its valid frames (an
/// utterance label such as `speaker`); `none` keeps every 80 ms encoder frame whose centre a
/// timed segment of the field covers (`[[start_s, end_s, "label"], ...]`, e.g. phones).
public struct ProbeData {
    public enum Pool: String { case mean, none }
    public enum Encoder: String { case pretrained, randomInit = "random-init", logMel = "log-mel" }

    public var items: [[[Float]]] = []
    public var labels: [String] = []

    /// `model` nil means the log-mel baseline (8 consecutive frames stacked per encoder frame).
    public static func extract(manifest: String, labelKey: String, pool: Pool, model: NESTModel?, frontEnd: FilterbankFeatures,
                               sampleRate: Int, batchSize: Int = 8) throws -> ProbeData {
        let entries = try Manifest(paths: [manifest]).entries
        let rows = try Manifest.lines(of: String(contentsOfFile: manifest, encoding: .utf8))
            .map { try JSONSerialization.jsonObject(with: Data($0.text.utf8)) as? [String: Any] ?? [:] }
        guard rows.count == entries.count else { throw NestError(file: manifest, "could not pair lines and entries") }
        model?.eval()
        let stride = model?.config.encoder.subsamplingFactor ?? 8
        var data = ProbeData()
        for start in Swift.stride(from: 0, to: entries.count, by: batchSize) {
            let batch = Array(start..<min(entries.count, start + batchSize))
            let audio = try batch.map { try AudioFile.read(entries[$0].audioPath, offset: entries[$0].offset,
                                                           duration: entries[$0].offset > 0 ? entries[$0].duration : nil, sampleRate: sampleRate) }
            let lengths = audio.map(\.count), nMax = lengths.max() ?? 0
            let (features, frames) = frontEnd(audio.map { $0 + [Float](repeating: 0, count: nMax - $0.count) }, lengths: lengths, dither: nil)
            // Per utterance: [L][T_i][D] (encoder) or [1][T_i][8F] (log-mel, 8 frames per token).
            var perUtterance: [[[[Float]]]] = []
            if let model {
                let out = withoutGrad { model.encoder(features, lengths: frames, captureLayers: Set(-1..<model.config.encoder.nLayers)) }
                let (t, d) = (out.encoded.shape[1], out.encoded.shape[2])
                let layers = (-1..<model.config.encoder.nLayers).map { out.layerOutputs[$0]!.array }
                for b in batch.indices {
                    perUtterance.append(layers.map { values in
                        (0..<out.lengths[b]).map { i in Array(values[((b * t + i) * d)..<((b * t + i + 1) * d)]) }
                    })
                }
            } else {
                let (f, t) = (features.shape[1], features.shape[2])
                let values = features.array
                for b in batch.indices {
                    let tokens = frames[b] / stride
                    perUtterance.append([(0..<tokens).map { i in
                        (0..<stride).flatMap { k in (0..<f).map { c in values[(b * f + c) * t + i * stride + k] } }
                    }])
                }
            }
            for (b, index) in batch.enumerated() {
                let layers = perUtterance[b]
                switch pool {
                case .mean:
                    guard let label = labelText(rows[index][labelKey]) else { throw NestError("\(entries[index].origin): no \(labelKey) label") }
                    data.items.append(layers.map { frames in
                        let n = Float(max(frames.count, 1))
                        return (0..<(frames.first?.count ?? 0)).map { d in frames.reduce(0) { $0 + $1[d] } / n }
                    })
                    data.labels.append(label)
                case .none:
                    guard let segments = rows[index][labelKey] as? [[Any]] else {
                        throw NestError("\(entries[index].origin): \(labelKey) must list [start_s, end_s, label] segments")
                    }
                    let seconds = Double(stride) * 0.01
                    for i in 0..<(layers.first?.count ?? 0) {
                        let centre = (Double(i) + 0.5) * seconds
                        guard let seg = segments.first(where: { s in
                            s.count == 3 && ((s[0] as? NSNumber)?.doubleValue ?? .infinity) <= centre && centre < ((s[1] as? NSNumber)?.doubleValue ?? -1)
                        }), let label = labelText(seg[2]) else { continue }
                        data.items.append(layers.map { $0[i] })
                        data.labels.append(label)
                    }
                }
            }
        }
        return data
    }

    static func labelText(_ v: Any?) -> String? {
        if let s = v as? String { return s }
        if let n = v as? NSNumber { return n.stringValue }
        return nil
    }
}
