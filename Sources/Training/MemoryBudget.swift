import Basics
import Config
import Foundation
import Model

/// What training a config holds in memory, estimated from the config alone, so that a model
/// that cannot fit is refused before anything is allocated (sizes each allowed alone can be
/// impossible together: `d_model: 65536`, or 1024 layers of 2048).
///
/// Parameters are counted from the sizes of their largest blocks (the O(d²) products of every
/// layer, the subsampling's output projection, the decoders), within a few per cent of the
/// count NeMo reports for each of its NEST recipes (`NeMoRecipeTests`). Activations follow `ModelSummary`'s calibrated
/// rule, which both share.
public struct MemoryBudget {
    /// Trainable parameters (weights, gradients and two AdamW moments: 16 B each).
    public let parameters: Double
    /// Frozen values (the quantizer's projection and codebooks: 4 B each).
    public let frozen: Double
    public let activationBytes: Double
    public let batch: Int, seconds: Double
    /// The process before the model: runtime, libraries, the data loader's buffers.
    static let baseline = Double(150 << 20)

    public var bytes: Double { 16 * parameters + 4 * frozen + Self.baseline + activationBytes }

    public init(model c: NESTConfig, batch: Int, seconds: Double) {
        let e = c.encoder, d = Double(e.dModel), layers = Double(e.nLayers)
        // Every layer: q/k/v/out and the relative-position projection; feed-forward modules
        // (two in a Conformer layer, one in a Transformer layer); a Conformer's convolution
        // module (pointwise 2d and d outputs, the depthwise kernel).
        let attention = (e.selfAttentionModel == .absPos && e.architecture != .transformer ? 4.0 : 5.0) * d * d
        let perLayer: Double
        switch e.architecture {
        case .conformer:
            perLayer = attention + 2 * (2 * Double(e.ffExpansionFactor) * d * d) + 3 * d * d + Double(e.convKernelSize) * d
        case .asrTransformer: perLayer = attention + 2 * Double(e.ffExpansionFactor) * d * d
        case .transformer: perLayer = attention + 2 * e.ffExpansion * d * d
        }
        // The front end: the convolution subsampling's stages and output projection, or the
        // Transformer's stacking projection.
        let frontEnd: Double
        if e.architecture == .transformer {
            frontEnd = Double(e.subsamplingFactor * e.featIn) * d
        } else {
            var stages = 0, factor = e.subsamplingFactor
            while factor > 1 { stages += 1; factor /= 2 }
            let channels = Double(e.subsamplingConvChannels)
            let frequencies = (Double(e.featIn) / Double(1 << stages)).rounded(.up)
            // Every stage after the first: a full 3×3 convolution (striding), or a depthwise
            // 3×3 and a pointwise one (dw_striding).
            let laterStage = e.subsampling == .striding ? 9 * channels * channels : channels * channels + 9 * channels
            frontEnd = channels * frequencies * d + Double(max(stages - 1, 0)) * laterStage + 9 * channels
        }
        let decoders = Double(c.decoder.numDecoders) * Double(c.decoder.featIn) * Double(c.decoder.numClasses)
        parameters = layers * perLayer + frontEnd + decoders
        let q = c.quantizer
        frozen = Double(q.numBooks) * Double(q.numClasses) * Double(q.codeDim) + Double(q.featIn * q.combineTimeSteps) * Double(q.codeDim)
        activationBytes = Self.activations(e, batch: batch, seconds: seconds)
        self.batch = batch
        self.seconds = seconds
    }

    /// What backward keeps plus the pool's idle buffers: per layer about 30 [B, T′, D]-sized
    /// tensors (the 4·D feed-forward hidden counts 4×) and 4 [B, H, T′, T′]-sized attention
    /// tensors, plus one of the subsampling's first convolution maps. Calibrated on measured
    /// peaks (nest-train bench): large 4 × 10 s 2464–2476 MiB, XL 1 × 10 s 10012–10031 MiB,
    /// XL 4 × 10 s 11347 MiB.
    static func activations(_ e: EncoderConfig, batch: Int, seconds: Double) -> Double {
        let tPrime = (seconds * 100 / Double(max(e.subsamplingFactor, 1))).rounded(.down) + 2
        let b = Double(batch)
        let perLayer = 30.0 * b * tPrime * Double(e.dModel) + 4.0 * b * Double(e.nHeads) * tPrime * tPrime
        let subsampling = b * Double(e.subsamplingConvChannels) * (seconds * 100 / 2) * Double(e.featIn / 2)
        return 4.0 * (Double(e.nLayers) * perLayer + subsampling)
    }

    /// The largest batch a dataset makes, as utterances × seconds each, given its longest
    /// utterance: `batch_size` of them, or with duration batching `batch_duration` seconds in
    /// all (at most `batch_size` utterances).
    public static func largestBatch(_ data: RunConfig.Data, longest: Double) -> (batch: Int, seconds: Double) {
        if let duration = data.duration {
            let perBatch = min(duration.seconds, Double(duration.maxUtterances ?? Int.max) * longest)
            return (max(1, Int((perBatch / longest).rounded(.up))), min(longest, perBatch))
        }
        return (data.batchSize, longest)
    }

    /// Refuses a run whose estimate exceeds the memory this process may use, naming the
    /// estimate, what is available and the keys that drive it. `weightsHeld`: the model is
    /// built, so its weights are already out of `available`.
    public func check(available: Double, weightsHeld: Bool = false, what: String) throws {
        guard bytes - (weightsHeld ? 4 * (parameters + frozen) : 0) > available else { return }
        let gib = { (b: Double) in String(format: "%.1f GiB", b / Double(1 << 30)) }
        throw NestError("\(what) needs about \(gib(bytes)) of memory: \(gib(16 * parameters)) for the weights, gradients and AdamW moments of "
            + String(format: "%.3g", parameters) + " parameters, \(gib(4 * frozen)) for the quantizer"
            + (batch > 0 ? ", \(gib(activationBytes)) of activations at a batch of \(batch) × \(String(format: "%.1f", seconds)) s" : "")
            + "; this machine has \(gib(available + (weightsHeld ? 4 * (parameters + frozen) : 0))) available "
            + "for it. \(drivers)")
    }

    /// The config keys behind the largest part of the estimate.
    var drivers: String {
        let parts: [(Double, String)] = [
            (16 * parameters, "the model's size comes from model.encoder.d_model, n_layers and ff_expansion_factor, and the decoders' from "
                + "model.num_classes × model.num_books × d_model"),
            (4 * frozen, "the quantizer's size comes from model.num_classes × model.num_books × model.code_dim"),
            (activationBytes, "the activations come from the batch: model.train_ds.batch_size (or batch_duration) and max_duration, "
                + "and from model.encoder.d_model and n_layers"),
        ]
        return "The largest part: " + parts.max { $0.0 < $1.0 }!.1 + "; lower them"
    }

    /// The bytes this process may still allocate: the system's available memory, or the
    /// headroom of its cgroup's limit (a container, a Slurm job) when that is smaller.
    public static func availableHostBytes() -> Double? {
        var available: Double?
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kib = Double(line.split(separator: " ").dropFirst().first ?? "") {
            available = kib * 1024
        }
        if let limit = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8)).flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
           let used = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.current", encoding: .utf8)).flatMap({ Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            available = min(available ?? .infinity, max(limit - used, 0))
        }
        return available
    }
}
