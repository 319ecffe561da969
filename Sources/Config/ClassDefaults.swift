import Basics
import Model

/// NeMo's rule for a key a config leaves out, in one table: Hydra builds the class a section's
/// `_target_` names, and its constructor's default fills every absent argument. `ClassContract`
/// lists each class's arguments with that default (or that it has none), read from the NeMo 3.0.0
/// classes themselves (`../shared/spec/nemo-class-defaults.json`; `ConfigContractTests` holds
/// the table to that file), with the type, the values nest-train builds and where each lands.
/// `ClassDefaults.filling` applies it to every config nest-train reads — YAML files, overrides,
/// `.nemo` and checkpoint configs alike — before any reader looks at a value, so an absent key
/// means the same model in nest-train as in NeMo, and a value nest-train does not build is
/// refused by name instead of being built as something else.
public struct ClassContract: Sendable {
    /// The class's module path as NeMo 3.0.0 defines it.
    public let target: String
    public let keys: [ClassArgument]
    /// Why the contract is not NeMo 3.0.0's own, when it is not (a class from another NeMo).
    public let provenance: String?

    public init(target: String, keys: [ClassArgument], provenance: String? = nil) {
        (self.target, self.keys, self.provenance) = (target, keys, provenance)
    }

    /// The class name alone: `_target_` spellings differ in the module path only.
    public var className: String { String(target.split(separator: ".").last!) }

    public func argument(_ key: String) -> ClassArgument? { keys.first { $0.name == key } }
    public func `default`(_ key: String) -> ClassDefault? { argument(key)?.value }
}

public enum ClassDefaults {
    typealias A = ClassArgument
    static let probability = Accepted.range(0, 1)
    static let dropout = Accepted.range(0, 1, upperOpen: true)
    static let features = Accepted.range(1, 4096)
    static let width = Accepted.range(2, 65_536)
    static let layers = Accepted.range(0, 1024)
    static let heads = Accepted.range(1, 4096)
    static let classes = Accepted.range(2, 1_048_576)
    static let books = Accepted.range(1, 64)
    static let timeSteps = Accepted.range(1, 64)
    static let positions = Accepted.range(1, 1_000_000)
    static let decibels = Accepted.range(-200, 200)
    static let counts = Accepted.range(1, 1000)
    static let onlyFalse = Accepted.oneOf(["false"]), onlyTrue = Accepted.oneOf(["true"]), onlyNull = Accepted.oneOf([])
    static let sameResult = "not needed: nest-train computes the same result without it"

    /// The NeMo 3.0.0 classes of a NEST model (as nemo-class-defaults.json lists them).
    public static let nemo: [ClassContract] = [
        ClassContract(target: "nemo.collections.asr.modules.conformer_encoder.ConformerEncoder", keys: [
            A("feat_in", .required, .int, features, lands: "EncoderConfig.featIn"),
            A("n_layers", .required, .int, layers, lands: "EncoderConfig.nLayers"),
            A("d_model", .required, .int, width, lands: "EncoderConfig.dModel"),
            A("feat_out", "-1", .int, .oneOf(["-1"]), lands: "— (no output projection is built)"),
            A("causal_downsampling", "false", .bool, lands: "EncoderConfig.causalDownsampling"),
            A("subsampling", "striding", .string, .oneOf(EncoderConfig.Subsampling.allCases.map(\.rawValue)), lands: "EncoderConfig.subsampling"),
            A("subsampling_factor", "4", .int, .range(2, 1024), lands: "EncoderConfig.subsamplingFactor (a power of two)"),
            A("subsampling_conv_chunking_factor", "1", .int, lands: "— (NeMo's memory chunking; \(sameResult))"),
            A("subsampling_conv_channels", "-1", .int, .range(-1, 65_536), lands: "EncoderConfig.subsamplingConvChannels (-1: d_model)"),
            A("reduction", .null, .string, onlyNull, lands: "— (reduction inside the encoder is not built)"),
            A("reduction_position", .null, .any, lands: "— (unused without reduction)"),
            A("reduction_factor", "1", .int, lands: "— (unused without reduction)"),
            A("ff_expansion_factor", "4", .int, .range(1, 64), lands: "EncoderConfig.ffExpansionFactor"),
            A("self_attention_model", "rel_pos", .string, .oneOf(EncoderConfig.SelfAttentionModel.allCases.map(\.rawValue)),
              lands: "EncoderConfig.selfAttentionModel"),
            A("n_heads", "4", .int, heads, lands: "EncoderConfig.nHeads"),
            A("att_context_size", .null, .list, lands: "EncoderConfig.attentionContext, attentionContextChoices"),
            A("att_context_probs", .null, .list, lands: "EncoderConfig.attentionContextChoices"),
            A("att_chunk_context_size", .null, .any, onlyNull, lands: "— (chunk contexts are not built)"),
            A("att_context_style", "regular", .string, .oneOf(["regular", "chunked_limited"]), lands: "EncoderConfig.attentionChunked"),
            A("xscaling", "true", .bool, lands: "EncoderConfig.xscaling"),
            A("untie_biases", "true", .bool, onlyTrue, lands: "— (per-layer position biases, NEST's; shared ones are not built)"),
            A("pos_emb_max_len", "5000", .int, positions, lands: "EncoderConfig.posEmbMaxLen"),
            A("conv_kernel_size", "31", .int, .range(1, 1023), lands: "EncoderConfig.convKernelSize (odd)"),
            A("conv_norm_type", "batch_norm", .string, lands: "EncoderConfig.convNormType (batch_norm, layer_norm, instance_norm, group_normN)"),
            A("conv_context_size", .null, .any, lands: "EncoderConfig.convContextSize ([left, right] or causal)"),
            A("conv_context_style", "regular", .string, .oneOf(["regular"]), lands: "— (only regular convolution contexts are built)"),
            A("use_bias", "true", .bool, lands: "EncoderConfig.useBias"),
            A("dropout", "0.1", .number, dropout, lands: "EncoderConfig.dropout"),
            A("dropout_pre_encoder", "0.1", .number, dropout, lands: "EncoderConfig.dropoutPreEncoder"),
            A("dropout_emb", "0.1", .number, dropout, lands: "EncoderConfig.dropoutEmb"),
            A("dropout_att", "0.0", .number, dropout, lands: "EncoderConfig.dropoutAtt"),
            A("stochastic_depth_drop_prob", "0.0", .number, dropout, lands: "EncoderConfig.layerDropProbabilities"),
            A("stochastic_depth_mode", "linear", .string, .oneOf(["linear", "uniform"]), lands: "EncoderConfig.layerDropProbabilities"),
            A("stochastic_depth_start_layer", "1", .int, .range(1, 1024), lands: "EncoderConfig.layerDropProbabilities (1…n_layers)"),
            A("global_tokens", "0", .int, .oneOf(["0"]), lands: "— (global tokens of local attention are not built)"),
            A("global_tokens_spacing", "1", .int, lands: "— (unused without global tokens)"),
            A("global_attn_separate", "false", .bool, onlyFalse, lands: "— (separate global-token projections are not built)"),
            A("use_pytorch_sdpa", "false", .bool, lands: "— (PyTorch's attention kernel choice; \(sameResult))"),
            A("use_pytorch_sdpa_backends", .null, .any, lands: "— (PyTorch's attention kernel choice; \(sameResult))"),
            A("sync_max_audio_length", "true", .bool, lands: "— (the position table's length across GPUs; \(sameResult))"),
        ]),
        ClassContract(target: "nemo.collections.asr.modules.transformer_encoder.TransformerEncoder", keys: [
            A("feat_in", "128", .int, features, lands: "EncoderConfig.featIn"),
            A("d_model", "512", .int, width, lands: "EncoderConfig.dModel"),
            A("n_heads", "8", .int, heads, lands: "EncoderConfig.nHeads"),
            A("n_layers", "17", .int, layers, lands: "EncoderConfig.nLayers"),
            A("feat_out", "-1", .int, .oneOf(["-1"]), lands: "— (no output projection is built)"),
            A("subsampling", "feature_stacking", .string, .oneOf(["feature_stacking", "feature-stacking"]), lands: "— (feature stacking, the one built)"),
            A("subsampling_factor", "4", .int, .range(2, 1024), lands: "EncoderConfig.subsamplingFactor (a power of two)"),
            A("drop_rate", "0.1", .number, dropout, lands: "EncoderConfig.dropRate, dropout"),
            A("dropout_pre_encoder", .null, .number, dropout, lands: "EncoderConfig.dropoutPreEncoder (null: drop_rate)"),
            A("dropout_emb", "0.0", .number, dropout, lands: "EncoderConfig.dropoutEmb"),
            A("qkv_bias", "false", .bool, lands: "EncoderConfig.qkvBias"),
            A("qk_norm", "false", .bool, lands: "EncoderConfig.qkNorm"),
            A("ff_expansion", "4.0", .number, .range(0, 64, lowerOpen: true), lands: "EncoderConfig.ffExpansion"),
            A("pre_block_norm", "true", .bool, lands: "EncoderConfig.preBlockNorm"),
            A("self_attention_model", "rel_pos", .string, .oneOf(["rel_pos"]), lands: "— (relative positions, the one built)"),
            A("pos_emb_max_len", "5000", .int, positions, lands: "EncoderConfig.posEmbMaxLen"),
            A("xscaling", "false", .bool, lands: "EncoderConfig.xscaling"),
            A("attn_mode", "full", .string, .oneOf(["full"]), lands: "— (full attention, the one built)"),
            A("sync_max_audio_length", "true", .bool, lands: "— (the position table's length across GPUs; \(sameResult))"),
        ]),
        ClassContract(target: "nemo.collections.asr.modules.audio_preprocessing.AudioToMelSpectrogramPreprocessor", keys: [
            A("sample_rate", "16000", .int, .range(1000, 384_000), lands: "FilterbankFeatures.Settings.sampleRate"),
            A("window_size", "0.02", .number, .range(0, 10), nullable: true, lands: "FilterbankFeatures.Settings.windowSize (× sample_rate)"),
            A("window_stride", "0.01", .number, .range(0, 10), nullable: true, lands: "FilterbankFeatures.Settings.hop (× sample_rate)"),
            A("n_window_size", .null, .int, .range(1, 1_048_576), lands: "FilterbankFeatures.Settings.windowSize"),
            A("n_window_stride", .null, .int, .range(1, 1_048_576), lands: "FilterbankFeatures.Settings.hop"),
            A("window", "hann", .string, .oneOf(["hann"]), lands: "FilterbankFeatures.window"),
            A("normalize", "per_feature", .string, .oneOf(["per_feature", "NA"]), lands: "FilterbankFeatures.Settings.normalize"),
            A("n_fft", .null, .int, .range(2, 65_536), lands: "FilterbankFeatures.Settings.nFFT (null: the power of two holding the window)"),
            A("preemph", "0.97", .number, .range(0, 1), nullable: true, lands: "FilterbankFeatures.Settings.preemphasis"),
            A("features", "64", .int, features, lands: "FilterbankFeatures.Settings.features"),
            A("lowfreq", "0", .number, .oneOf(["0"]), lands: "— (the mel bands start at 0 Hz)"),
            A("highfreq", .null, .number, onlyNull, lands: "— (the mel bands end at sample_rate / 2)"),
            A("log", "true", .bool, onlyTrue, lands: "— (log-mel, the one built)"),
            A("log_zero_guard_type", "add", .string, .oneOf(["add"]), lands: "— (the guard is added, as in NEST)"),
            A("log_zero_guard_value", "5.960464477539063e-08", .number, .range(0, 1, lowerOpen: true), lands: "FilterbankFeatures.Settings.logGuard"),
            A("dither", "1e-05", .number, .range(0, 1), lands: "FilterbankFeatures.Settings.dither"),
            A("pad_to", "16", .int, .range(1, 4096), lands: "FilterbankFeatures.Settings.padTo"),
            A("frame_splicing", "1", .int, .oneOf(["1"]), lands: "— (frame splicing is not built)"),
            A("exact_pad", "false", .bool, onlyFalse, lands: "— (centred frames, NeMo's default)"),
            A("pad_value", "0", .number, .oneOf(["0"]), lands: "— (padding frames are zero)"),
            A("mag_power", "2.0", .number, .oneOf(["2"]), lands: "— (the power spectrum)"),
            A("rng", .null, .any, lands: "— (dither draws from the run's seeded generator)"),
            A("nb_augmentation_prob", "0.0", .number, .oneOf(["0"]), lands: "— (narrow-band augmentation is not built)"),
            A("nb_max_freq", "4000", .number, lands: "— (unused without narrow-band augmentation)"),
            A("mel_norm", "slaney", .string, .oneOf(["slaney"]), lands: "FilterbankFeatures.filterbank (Slaney-normalised)"),
            A("use_torchaudio", "false", .bool, onlyFalse, lands: "— (torchaudio's featurizer is not built)"),
            A("stft_exact_pad", "false", .bool, onlyFalse, lands: "— (deprecated in NeMo; not built)"),
            A("stft_conv", "false", .bool, onlyFalse, lands: "— (deprecated in NeMo; not built)"),
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.quantizers.RandomProjectionVectorQuantizer", keys: [
            A("feat_in", .required, .int, features, lands: "QuantizerConfig.featIn"),
            A("code_dim", .required, .int, .range(1, 65_536), lands: "QuantizerConfig.codeDim"),
            A("num_classes", .required, .int, classes, why: "one class makes the objective trivial: loss 0, accuracy 1",
              lands: "QuantizerConfig.numClasses"),
            A("num_books", .required, .int, books, lands: "QuantizerConfig.numBooks"),
            A("dist_fn", "cosine", .string, .oneOf(["l2", "cosine"]), lands: "QuantizerConfig.cosineDistance"),
            A("time_ahead", "false", .bool, onlyFalse, lands: "— (targets of the same frames, NEST's)"),
            A("freeze", "true", .bool, onlyTrue, lands: "— (a frozen projection and codebook, NEST's)"),
            A("squeeze_single", "false", .bool, lands: "— (a tensor shape of NeMo's; \(sameResult))"),
            A("combine_time_steps", "1", .int, timeSteps, lands: "QuantizerConfig.combineTimeSteps"),
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.multi_softmax_decoder.MultiSoftmaxDecoder", keys: [
            A("feat_in", .required, .int, width, lands: "DecoderConfig.featIn (= d_model)"),
            A("num_classes", .required, .int, classes, lands: "DecoderConfig.numClasses (= the quantizer's)"),
            A("num_decoders", "1", .int, books, lands: "DecoderConfig.numDecoders (= num_books)"),
            A("init_mode", "xavier_uniform", .string, .oneOf(["xavier_uniform"]), lands: "— (xavier-uniform weights, NeMo's default)"),
            A("use_bias", "false", .bool, lands: "DecoderConfig.useBias"),
            A("squeeze_single", "false", .bool, lands: "— (a tensor shape of NeMo's; \(sameResult))"),
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.masking.RandomBlockMasking", keys: [
            A("feat_in", .required, .int, features, lands: "MaskingConfig.featIn"),
            A("mask_prob", "0.5", .number, probability, lands: "MaskingConfig.maskProb"),
            A("block_size", "48", .int, .range(1, 1_048_576), lands: "MaskingConfig.blockSize"),
            A("mask_value", .null, .number, lands: "MaskingConfig.maskValue (null: a random frozen embedding)"),
            A("freeze", "true", .bool, onlyTrue, lands: "— (a frozen mask embedding; a learnable one is not built)"),
            A("allow_overlap", "false", .bool, lands: "MaskingConfig.allowOverlap"),
            A("max_mask_ratio", "0.8", .number, probability, lands: "MaskingConfig.maxMaskRatio"),
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.augmentation.MultiSpeakerNoiseAugmentation", keys: [
            A("prob", "0.0", .number, probability, lands: "MultiSpeakerNoiseAugmentation.Settings.prob"),
            A("noise_ratio", "0.0", .number, probability, lands: "MultiSpeakerNoiseAugmentation.Settings.noiseRatio"),
            A("min_r_speech", "-5.0", .number, decibels, lands: "MultiSpeakerNoiseAugmentation.Settings.speechSNR"),
            A("max_r_speech", "5.0", .number, decibels, lands: "MultiSpeakerNoiseAugmentation.Settings.speechSNR"),
            A("min_r_noise", "-5.0", .number, decibels, lands: "MultiSpeakerNoiseAugmentation.Settings.noiseSNR"),
            A("max_r_noise", "20.0", .number, decibels, lands: "MultiSpeakerNoiseAugmentation.Settings.noiseSNR"),
            A("min_mix_rate", "0.0", .number, probability, lands: "MultiSpeakerNoiseAugmentation.Settings.mixRate"),
            A("max_mix_rate", "1.0", .number, probability, lands: "MultiSpeakerNoiseAugmentation.Settings.mixRate"),
            A("min_num_segments", "1", .int, counts, lands: "MultiSpeakerNoiseAugmentation.Settings.segments"),
            A("max_num_segments", "5", .int, counts, lands: "MultiSpeakerNoiseAugmentation.Settings.segments"),
            A("min_num_speakers", "1", .int, counts, lands: "MultiSpeakerNoiseAugmentation.Settings.speakers"),
            A("max_num_speakers", "4", .int, counts, lands: "MultiSpeakerNoiseAugmentation.Settings.speakers"),
        ]),
        ClassContract(target: "nemo.collections.asr.losses.ssl_losses.mlm.MultiMLMLoss", keys: [
            A("combine_time_steps", "1", .int, timeSteps, lands: "LossConfig.combineTimeSteps"),
            A("mask_threshold", "0.8", .number, probability, lands: "LossConfig.maskThreshold"),
            A("num_decoders", "1", .int, books, lands: "— (the decoder's num_decoders decides)"),
            A("squeeze_single", "false", .bool, lands: "— (a tensor shape of NeMo's; \(sameResult))"),
        ]),
    ]

    /// NVIDIA-NeMo/Speech main's `ASRTransformerEncoder` (the Transformer NEST recipes' class; in
    /// no NeMo release): ConformerEncoder's arguments without the convolution module's, plus
    /// `post_ln` and `ffn_act`.
    public static let asrTransformerEncoder: ClassContract = {
        let conformer = nemo.first { $0.className == "ConformerEncoder" }!
        let convolutionModule: Set<String> = ["conv_kernel_size", "conv_norm_type", "conv_context_size", "conv_context_style"]
        return ClassContract(target: "nemo.collections.asr.modules.asr_transformer_encoder.ASRTransformerEncoder",
                             keys: conformer.keys.filter { !convolutionModule.contains($0.name) } + [
                                 A("post_ln", "true", .bool, lands: "EncoderConfig.postLayerNorm"),
                                 A("ffn_act", "relu", .string, .oneOf(["relu", "gelu", "silu"]), lands: "EncoderConfig.ffnActivation"),
                             ],
                             provenance: "NVIDIA-NeMo/Speech main, not in NeMo 3.0.0: ConformerEncoder's arguments without the convolution module's")
    }()

    public static var all: [ClassContract] { nemo + [asrTransformerEncoder] }

    /// The config sections NeMo builds from a class; the classes nest-train builds there, the
    /// first being the one a section without `_target_` gets (the one NEST's recipes name); and
    /// whether NeMo's NEST model needs the section (it builds each of those from its config and
    /// fails without it).
    public static let sections: [(path: String, classes: [String], needed: Bool)] = [
        ("model.preprocessor", ["AudioToMelSpectrogramPreprocessor"], true),
        ("model.masking", ["RandomBlockMasking"], true),
        ("model.quantizer", ["RandomProjectionVectorQuantizer"], true),
        ("model.encoder", ["ConformerEncoder", "TransformerEncoder", "ASRTransformerEncoder"], true),
        ("model.decoder", ["MultiSoftmaxDecoder"], true),
        ("model.loss", ["MultiMLMLoss"], true),
        ("model.train_ds.batch_augmentor", ["MultiSpeakerNoiseAugmentation"], false),
        ("model.validation_ds.batch_augmentor", ["MultiSpeakerNoiseAugmentation"], false),
    ]

    /// The contract of the class `name` (by class name).
    public static func contract(named name: String) -> ClassContract? { all.first { $0.className == name } }

    /// The class a section is built from: its `_target_`'s (NeMo accepts module-qualified
    /// spellings of a class), else the section's default class; nil for a class nest-train
    /// does not build there.
    public static func contract(for section: String, in doc: ConfigDocument) throws -> ClassContract? {
        guard let classes = sections.first(where: { $0.path == section })?.classes else { return nil }
        let name = try doc.string("\(section)._target_").map { String($0.split(separator: ".").last ?? "") } ?? classes[0]
        return classes.contains(name) ? contract(named: name) : nil
    }

    /// `doc` with every argument a present section leaves out set to its class's default, and
    /// every value checked against the table (its type and the values nest-train builds). A
    /// section NeMo's model needs, or a required argument, left out is an error naming the key
    /// and the class; a key the class does not take is a warning. The batch augmentors are
    /// optional, and left out (or null, as in a `.nemo` file's data sections) they stay so.
    ///
    /// `only` restricts it to some sections (an encoder's config read alone).
    public static func filling(_ doc: ConfigDocument, only: Set<String>? = nil) throws -> ConfigDocument {
        var out = doc
        for (section, classes, needed) in sections where only?.contains(section) ?? true {
            let fallback = classes[0]
            guard case .map(let entries)? = doc.node(section) else {
                if needed, let contract = contract(named: fallback) {
                    let required = contract.keys.filter { $0.value == .required }.map(\.name)
                    throw NestError("\(doc.file): \(section) is missing: NeMo's NEST model builds its \(fallback) from it"
                                    + (required.isEmpty ? "" : " (give at least \(required.joined(separator: ", ")))"))
                }
                continue
            }
            guard let contract = try contract(for: section, in: doc) else {
                // A class outside the table would be built as something else: refused by name.
                let named = try doc.string("\(section)._target_") ?? fallback
                throw NestError("\(doc.file): \(section)._target_: \(named) is not supported (nest-train builds \(classes.joined(separator: ", ")))")
            }
            // NeMo's constructor refuses an argument it does not have. One of the section's usual
            // class (a Conformer's under a Transformer) would be a different model, and is refused;
            // any other is named in a warning.
            for (key, _) in entries where key != "_target_" && contract.argument(key) == nil {
                if contract.className != fallback, Self.contract(named: fallback)?.argument(key) != nil {
                    throw NestError("\(doc.file): \(section).\(key) is a \(fallback) argument; \(contract.className) does not take it")
                }
                out.warn("\(section).\(key) is not an argument of NeMo's \(contract.className); nest-train ignores it")
            }
            for argument in contract.keys {
                let path = "\(section).\(argument.name)"
                if doc.node(path) == nil || (argument.value == .required && !doc.has(path)) {
                    switch argument.value {
                    case .required: throw NestError("\(doc.file): \(path) is required: NeMo's \(contract.className) has no default for it")
                    case .null: out.setAbsent(path, .null)
                    case .value(let text): out.setAbsent(path, try ConfigNode.parse(text, file: "the \(contract.className) default"))
                    }
                }
                try argument.check(path, in: out, className: contract.className)
            }
        }
        return out
    }

    /// The table as `docs/configuration.md` shows it (`nest-train info --class-defaults` prints
    /// it; a test keeps the page equal to it).
    public static var reference: String {
        var out = """
        # What a key a config leaves out means, and what nest-train accepts

        Generated by `nest-train info --class-defaults` from the table in
        `Sources/Config/ClassDefaults.swift`; a test fails when this page and the table differ.

        As in NeMo, a section builds the class its `_target_` names (or the first in the list below
        when it names none; a class not in the list is refused by name), and every argument the
        section leaves out takes that class's constructor default: from a YAML file, from
        overrides, and from a `.nemo` file's `model_config.yaml` alike. The defaults are NeMo
        3.0.0's, read from the classes themselves.

        - An argument without a default (**required**) must be given; its absence is an error
          naming the key and the class. So is a section NeMo's NEST model needs (every one but
          the batch augmentors) left out.
        - Every value is checked against its type and the values nest-train builds (*accepts*)
          before anything is read; a value outside them is an error naming the key, never built
          as something else. null is accepted where the default is null or the type says so.
        - *lands in* names the nest-train setting the value goes to, or, after a dash, why
          nest-train needs none (a value it builds one way only, or a NeMo implementation choice
          with the same result).
        - A key the class does not take (which NeMo's constructor would refuse) is named in a
          warning.
        - Checks that involve several keys (a power-of-two `subsampling_factor`, `n_heads`
          dividing `d_model`, the quantizer's `feat_in` equal to the encoder's…) are made where
          the model is read (`Sources/Config/ModelConfigReader.swift`).

        | section | classes built (the first when `_target_` is absent) | needed |
        |---|---|---|

        """
        for (path, classes, needed) in sections { out += "| `\(path)` | \(classes.joined(separator: ", ")) | \(needed ? "yes" : "no") |\n" }
        for contract in all {
            out += "\n## \(contract.className)\n\n`\(contract.target)`"
            out += contract.provenance.map { " (\($0))" } ?? ""
            out += "\n\n| key | type | default | accepts | lands in |\n|---|---|---|---|---|\n"
            for a in contract.keys {
                let shown = a.value == .required ? "**required**" : "`\(a.defaultText)`"
                let type = a.type.rawValue + (a.nullable && a.type != .any ? " or null" : "")
                out += "| `\(a.name)` | \(type) | \(shown) | \(a.accepts.description)\(a.why.map { " (\($0))" } ?? "") | \(a.lands) |\n"
            }
        }
        return out
    }
}

/// The value of an argument `ClassDefaults.filling` has filled: every argument of a present
/// section has one, and null is refused where the class needs a value, so the readers restate
/// no default. A missing one is a reader asking for a key its class does not take.
extension ConfigDocument {
    func filledInt(_ path: String) throws -> Int {
        guard let v = try int(path) else { throw unfilled(path) }
        return v
    }

    func filledDouble(_ path: String) throws -> Double {
        guard let v = try double(path) else { throw unfilled(path) }
        return v
    }

    func filledString(_ path: String) throws -> String {
        guard let v = try string(path) else { throw unfilled(path) }
        return v
    }

    /// A word the table accepts as one of `E`'s cases (its accepted values are the cases).
    func filled<E: RawRepresentable>(_ path: String, as _: E.Type) throws -> E where E.RawValue == String {
        let text = try filledString(path)
        guard let value = E(rawValue: text) else { throw NestError("\(file): \(path): '\(text)' is not supported") }
        return value
    }

    func filledBool(_ path: String) throws -> Bool {
        guard has(path) else { throw unfilled(path) }
        return try bool(path, default: false)
    }

    private func unfilled(_ path: String) -> NestError {
        NestError("\(file): \(path) has no value: the class table fills every argument of its class, so the section's class does not take it")
    }
}
