import Basics
import Formats
import Config
import Foundation
import Model

/// A NeMo `.nemo` model (NVIDIA's released NEST models, or one nest-train exported), read
/// without Python: the tar (or gzip tar, NeMo < 1.7, or an extracted folder) holds
/// `model_config.yaml` and `model_weights.ckpt` (a torch archive read by `TorchArchiveReader`).
/// Nothing in it is executed; `_target_` names are compared, never resolved.
public struct NemoFile {
    public let path: String
    public let configYAML: String
    public let weights: TorchArchiveReader

    public init(_ path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw NestError(file: path, "no such file") }
        let config: Bytes, checkpoint: Bytes
        if isDirectory.boolValue {
            config = try Bytes.mapping(path + "/model_config.yaml")
            checkpoint = try Bytes.mapping(path + "/model_weights.ckpt")
        } else {
            let tar = try TarReader(try Bytes.mapping(path))
            guard let c = tar.member("model_config.yaml") else { throw NestError(file: path, "no model_config.yaml (not a .nemo file?)") }
            guard let w = tar.member("model_weights.ckpt") else {
                throw NestError(file: path, "no model_weights.ckpt (Megatron-style sharded checkpoints are not supported)")
            }
            config = c
            checkpoint = w
        }
        configYAML = config.string
        weights = try TorchArchiveReader(checkpoint)
    }

    /// Keys that define the architecture: a `--config` given beside the file must agree with it
    /// on every one (both with absent keys at their class defaults). `ASRTransformerEncoder` has
    /// no convolution module, and a `TransformerEncoder` only the shared keys.
    public static func architectureKeys(_ architecture: EncoderConfig.Architecture) -> [String] {
        switch architecture {
        case .conformer: sharedKeys + convSubsamplingKeys + convModuleKeys
        case .asrTransformer: sharedKeys + convSubsamplingKeys
        case .transformer: sharedKeys
        }
    }

    static let convSubsamplingKeys = ["encoder.ff_expansion_factor", "encoder.use_bias", "encoder.subsampling", "encoder.subsampling_conv_channels"]
    static let convModuleKeys = ["encoder.conv_kernel_size", "encoder.conv_norm_type"]

    static let sharedKeys = [
        "encoder.feat_in", "encoder.n_layers", "encoder.d_model", "encoder.n_heads", "encoder.xscaling", "encoder.subsampling_factor",
        "encoder.self_attention_model", "encoder.pos_emb_max_len",
        "preprocessor.features", "preprocessor.window_size", "preprocessor.window_stride", "preprocessor.n_fft",
        "preprocessor.normalize", "preprocessor.sample_rate",
        "quantizer.num_classes", "quantizer.code_dim", "quantizer.num_books", "quantizer.combine_time_steps",
        "decoder.num_classes", "decoder.feat_in",
    ]

    /// The run config of the model in the file: its `model_config.yaml` (a bare model config),
    /// where an absent key takes its class's default, as NeMo restores it (`ClassDefaults`).
    public func runConfig(overrides: [String] = []) throws -> RunConfig {
        let file = "\(path):model_config.yaml"
        let doc = try ConfigDocument(text: configYAML, file: file, overrides: overrides)
        if let target = try doc.string("model.target"), !target.hasSuffix("EncDecDenoiseMaskedTokenPredModel") {
            throw NestError("\(file): target \(target) is not NeMo's NEST model (EncDecDenoiseMaskedTokenPredModel)")
        }
        return try RunConfig(doc, requireData: false)
    }

    /// The first architecture key on which `config` and this file differ, as an error.
    public func checkAgreement(with config: RunConfig, configFile: String) throws {
        let mine = try runConfig().document
        for key in Self.architectureKeys(.conformer) {
            let a = try mine.string("model.\(key)"), b = try config.document.string("model.\(key)")
            if let a, let b, a.lowercased() != b.lowercased(), Double(a).map({ $0 != Double(b) }) ?? true {
                throw NestError("\(configFile): model.\(key) is \(b), but \(path) has \(a)")
            }
        }
    }
}
