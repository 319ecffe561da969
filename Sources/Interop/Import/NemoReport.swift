import Foundation
import Model
import Formats

/// `nest-train info --nemo`: what a `.nemo` file holds, read from its config and the torch
/// archive's tensor headers (no weight values are read).
public struct NemoReport {
    public let fields: [String: Any]

    public init(path: String) throws {
        let nemo = try NemoFile(path)
        let config = try nemo.runConfig()
        let doc = config.document
        let weights = nemo.weights
        var total = 0, encoder = 0, dtypes: [String: Int] = [:]
        for name in try weights.names() {
            let count = try weights.shape(name).reduce(1, *)
            dtypes[try weights.dtype(name).rawValue, default: 0] += count
            // NeMo's parameter count excludes buffers (BatchNorm statistics, the preprocessor's).
            if name.hasSuffix("running_mean") || name.hasSuffix("running_var") || name.hasSuffix("num_batches_tracked") || name.hasPrefix("preprocessor.") { continue }
            total += count
            if name.hasPrefix("encoder.") { encoder += count }
        }
        let e = config.model.encoder
        fields = [
            "file": path, "tensors": try weights.names().count, "parameters": total, "encoder_parameters": encoder,
            "weight_dtypes": dtypes,
            "nemo_version": (try doc.string("model.nemo_version")) ?? "unknown",
            "torch_archive": ["record_prefix": weights.prefix, "serialization_version": weights.serializationVersion ?? "absent",
                              "format_version": weights.formatVersion ?? "absent"],
            "target": (try doc.string("model.target")) ?? "unknown",
            "encoder": ["class": e.architecture.rawValue, "n_layers": e.nLayers, "d_model": e.dModel, "n_heads": e.nHeads,
                        "subsampling_factor": e.subsamplingFactor, "xscaling": e.xscaling]
                .merging(Self.encoderFields(e)) { a, _ in a },
            "quantizer": ["num_classes": config.model.quantizer.numClasses, "num_books": config.model.quantizer.numBooks,
                          "code_dim": config.model.quantizer.codeDim],
            "sample_rate": config.sampleRate,
        ]
    }

    /// The keys of the encoder's own class.
    static func encoderFields(_ e: EncoderConfig) -> [String: Any] {
        switch e.architecture {
        case .transformer: ["ff_expansion": e.ffExpansion, "qkv_bias": e.qkvBias, "qk_norm": e.qkNorm, "pre_block_norm": e.preBlockNorm]
        case .conformer: ["ff_expansion_factor": e.ffExpansionFactor, "conv_kernel_size": e.convKernelSize, "use_bias": e.useBias,
                          "conv_norm_type": e.convNormType.name, "self_attention_model": e.selfAttentionModel.rawValue]
        case .asrTransformer: ["ff_expansion_factor": e.ffExpansionFactor, "use_bias": e.useBias, "post_ln": e.postLayerNorm,
                               "self_attention_model": e.selfAttentionModel.rawValue]
        }
    }

    public var json: String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    public var text: String {
        fields.keys.sorted().map { "\($0): \(fields[$0]!)" }.joined(separator: "\n")
    }
}
