import Formats

/// NeMo's rule for a key a config leaves out, in one table: Hydra builds the class a section's
/// `_target_` names, and its constructor's default fills every absent argument. `ClassContract`
/// lists each class's arguments with that default (or that it has none), read from the NeMo 3.0.0
/// classes themselves (`../shared/spec/nemo-class-defaults.json`; `ConfigContractTests` holds
/// the table to that file). `ClassDefaults.filling` applies it to every config nest-train reads
/// — YAML files, overrides, `.nemo` and checkpoint configs alike — before any reader looks at a
/// value, so an absent key means the same model in nest-train as in NeMo.
public enum ClassDefault: Equatable, Sendable {
    /// The default as YAML text.
    case value(String)
    /// The default is None.
    case null
    /// The constructor has no default: a config must give it.
    case required
}

/// One NeMo class's constructor arguments, in order, with their defaults.
public struct ClassContract: Sendable {
    /// The class's module path as NeMo 3.0.0 defines it.
    public let target: String
    public let keys: [(name: String, value: ClassDefault)]
    /// Why the contract is not NeMo 3.0.0's own, when it is not (a class from another NeMo).
    public let provenance: String?

    public init(target: String, keys: [(String, ClassDefault)], provenance: String? = nil) {
        self.target = target
        self.keys = keys.map { (name: $0.0, value: $0.1) }
        self.provenance = provenance
    }

    /// The class name alone: `_target_` spellings differ in the module path only.
    public var className: String { String(target.split(separator: ".").last!) }

    public func `default`(_ key: String) -> ClassDefault? { keys.first { $0.name == key }?.value }
}

public enum ClassDefaults {
    /// The NeMo 3.0.0 classes of a NEST model (as nemo-class-defaults.json lists them).
    public static let nemo: [ClassContract] = [
        ClassContract(target: "nemo.collections.asr.modules.conformer_encoder.ConformerEncoder", keys: [
            ("feat_in", .required), ("n_layers", .required), ("d_model", .required), ("feat_out", .value("-1")),
            ("causal_downsampling", .value("false")), ("subsampling", .value("striding")), ("subsampling_factor", .value("4")),
            ("subsampling_conv_chunking_factor", .value("1")), ("subsampling_conv_channels", .value("-1")), ("reduction", .null),
            ("reduction_position", .null), ("reduction_factor", .value("1")), ("ff_expansion_factor", .value("4")),
            ("self_attention_model", .value("rel_pos")), ("n_heads", .value("4")), ("att_context_size", .null), ("att_context_probs", .null),
            ("att_chunk_context_size", .null), ("att_context_style", .value("regular")), ("xscaling", .value("true")),
            ("untie_biases", .value("true")), ("pos_emb_max_len", .value("5000")), ("conv_kernel_size", .value("31")),
            ("conv_norm_type", .value("batch_norm")), ("conv_context_size", .null), ("conv_context_style", .value("regular")),
            ("use_bias", .value("true")), ("dropout", .value("0.1")), ("dropout_pre_encoder", .value("0.1")), ("dropout_emb", .value("0.1")),
            ("dropout_att", .value("0.0")), ("stochastic_depth_drop_prob", .value("0.0")), ("stochastic_depth_mode", .value("linear")),
            ("stochastic_depth_start_layer", .value("1")), ("global_tokens", .value("0")), ("global_tokens_spacing", .value("1")),
            ("global_attn_separate", .value("false")), ("use_pytorch_sdpa", .value("false")), ("use_pytorch_sdpa_backends", .null),
            ("sync_max_audio_length", .value("true"))
        ]),
        ClassContract(target: "nemo.collections.asr.modules.transformer_encoder.TransformerEncoder", keys: [
            ("feat_in", .value("128")), ("d_model", .value("512")), ("n_heads", .value("8")), ("n_layers", .value("17")), ("feat_out", .value("-1")),
            ("subsampling", .value("feature_stacking")), ("subsampling_factor", .value("4")), ("drop_rate", .value("0.1")),
            ("dropout_pre_encoder", .null), ("dropout_emb", .value("0.0")), ("qkv_bias", .value("false")), ("qk_norm", .value("false")),
            ("ff_expansion", .value("4.0")), ("pre_block_norm", .value("true")), ("self_attention_model", .value("rel_pos")),
            ("pos_emb_max_len", .value("5000")), ("xscaling", .value("false")), ("attn_mode", .value("full")),
            ("sync_max_audio_length", .value("true"))
        ]),
        ClassContract(target: "nemo.collections.asr.modules.audio_preprocessing.AudioToMelSpectrogramPreprocessor", keys: [
            ("sample_rate", .value("16000")), ("window_size", .value("0.02")), ("window_stride", .value("0.01")), ("n_window_size", .null),
            ("n_window_stride", .null), ("window", .value("hann")), ("normalize", .value("per_feature")), ("n_fft", .null),
            ("preemph", .value("0.97")), ("features", .value("64")), ("lowfreq", .value("0")), ("highfreq", .null), ("log", .value("true")),
            ("log_zero_guard_type", .value("add")), ("log_zero_guard_value", .value("5.960464477539063e-08")), ("dither", .value("1e-05")),
            ("pad_to", .value("16")), ("frame_splicing", .value("1")), ("exact_pad", .value("false")), ("pad_value", .value("0")),
            ("mag_power", .value("2.0")), ("rng", .null), ("nb_augmentation_prob", .value("0.0")), ("nb_max_freq", .value("4000")),
            ("mel_norm", .value("slaney")), ("use_torchaudio", .value("false")), ("stft_exact_pad", .value("false")), ("stft_conv", .value("false"))
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.quantizers.RandomProjectionVectorQuantizer", keys: [
            ("feat_in", .required), ("code_dim", .required), ("num_classes", .required), ("num_books", .required), ("dist_fn", .value("cosine")),
            ("time_ahead", .value("false")), ("freeze", .value("true")), ("squeeze_single", .value("false")), ("combine_time_steps", .value("1"))
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.multi_softmax_decoder.MultiSoftmaxDecoder", keys: [
            ("feat_in", .required), ("num_classes", .required), ("num_decoders", .value("1")), ("init_mode", .value("xavier_uniform")),
            ("use_bias", .value("false")), ("squeeze_single", .value("false"))
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.masking.RandomBlockMasking", keys: [
            ("feat_in", .required), ("mask_prob", .value("0.5")), ("block_size", .value("48")), ("mask_value", .null), ("freeze", .value("true")),
            ("allow_overlap", .value("false")), ("max_mask_ratio", .value("0.8"))
        ]),
        ClassContract(target: "nemo.collections.asr.modules.ssl_modules.augmentation.MultiSpeakerNoiseAugmentation", keys: [
            ("prob", .value("0.0")), ("noise_ratio", .value("0.0")), ("min_r_speech", .value("-5.0")), ("max_r_speech", .value("5.0")),
            ("min_r_noise", .value("-5.0")), ("max_r_noise", .value("20.0")), ("min_mix_rate", .value("0.0")), ("max_mix_rate", .value("1.0")),
            ("min_num_segments", .value("1")), ("max_num_segments", .value("5")), ("min_num_speakers", .value("1")),
            ("max_num_speakers", .value("4"))
        ]),
        ClassContract(target: "nemo.collections.asr.losses.ssl_losses.mlm.MultiMLMLoss", keys: [
            ("combine_time_steps", .value("1")), ("mask_threshold", .value("0.8")), ("num_decoders", .value("1")),
            ("squeeze_single", .value("false"))
        ]),
    ]

    /// NVIDIA-NeMo/Speech main's `ASRTransformerEncoder` (the Transformer NEST recipes' class; in
    /// no NeMo release): ConformerEncoder's arguments without the convolution module's, plus
    /// `post_ln` and `ffn_act`.
    public static let asrTransformerEncoder: ClassContract = {
        let conformer = nemo.first { $0.className == "ConformerEncoder" }!
        let convolutionModule: Set<String> = ["conv_kernel_size", "conv_norm_type", "conv_context_size", "conv_context_style"]
        return ClassContract(target: "nemo.collections.asr.modules.asr_transformer_encoder.ASRTransformerEncoder",
                             keys: conformer.keys.filter { !convolutionModule.contains($0.name) }.map { ($0.name, $0.value) }
                                 + [("post_ln", .value("true")), ("ffn_act", .value("relu"))],
                             provenance: "NVIDIA-NeMo/Speech main, not in NeMo 3.0.0: ConformerEncoder's arguments without the convolution module's")
    }()

    public static var all: [ClassContract] { nemo + [asrTransformerEncoder] }

    /// The config sections NeMo builds from a class, and the class a section without `_target_`
    /// gets (the one NEST's recipes name).
    public static let sections: [(path: String, defaultClass: String)] = [
        ("model.preprocessor", "AudioToMelSpectrogramPreprocessor"),
        ("model.masking", "RandomBlockMasking"),
        ("model.quantizer", "RandomProjectionVectorQuantizer"),
        ("model.encoder", "ConformerEncoder"),
        ("model.decoder", "MultiSoftmaxDecoder"),
        ("model.loss", "MultiMLMLoss"),
        ("model.train_ds.batch_augmentor", "MultiSpeakerNoiseAugmentation"),
        ("model.validation_ds.batch_augmentor", "MultiSpeakerNoiseAugmentation"),
    ]

    /// The contract of the class `name` (by class name).
    public static func contract(named name: String) -> ClassContract? { all.first { $0.className == name } }

    /// The class a section is built from: its `_target_`'s, else the section's default class.
    public static func contract(for section: String, in doc: ConfigDocument) throws -> ClassContract? {
        guard let fallback = sections.first(where: { $0.path == section })?.defaultClass else { return nil }
        let name = try doc.string("\(section)._target_").map { String($0.split(separator: ".").last ?? "") } ?? fallback
        return contract(named: name)
    }

    /// `doc` with every argument a present section leaves out set to its class's default; a
    /// required argument left out is an error naming the key and the class, a key the class does
    /// not take a warning. Sections that are
    /// absent (or null, as a `.nemo` file's data sections) are left as they are.
    public static func filling(_ doc: ConfigDocument) throws -> ConfigDocument {
        var out = doc
        for (section, _) in sections {
            guard case .map? = doc.node(section), let contract = try contract(for: section, in: doc) else { continue }
            // NeMo's constructor refuses an argument it does not have; nest-train warns, naming it.
            if case .map(let entries)? = doc.node(section) {
                for (key, _) in entries where key != "_target_" && contract.default(key) == nil {
                    out.warn("\(section).\(key) is not an argument of NeMo's \(contract.className); nest-train ignores it")
                }
            }
            for (key, value) in contract.keys where doc.node("\(section).\(key)") == nil || (value == .required && !doc.has("\(section).\(key)")) {
                switch value {
                case .required:
                    throw NestError("\(doc.file): \(section).\(key) is required: NeMo's \(contract.className) has no default for it")
                case .null: out.setAbsent("\(section).\(key)", .null)
                case .value(let text): out.setAbsent("\(section).\(key)", try ConfigNode.parse(text, file: "the \(contract.className) default"))
                }
            }
        }
        return out
    }

    /// The table as `docs/configuration.md` shows it (`nest-train info --class-defaults` prints
    /// it; a test keeps the page equal to it).
    public static var reference: String {
        var out = """
        # What a key a config leaves out means

        Generated by `nest-train info --class-defaults` from the table in
        `Sources/Config/ClassDefaults.swift`; a test fails when this page and the table differ.

        As in NeMo, a section builds the class its `_target_` names (or the one in the list below
        when it names none), and every argument the section leaves out takes that class's
        constructor default: from a YAML file, from overrides, and from a `.nemo` file's
        `model_config.yaml` alike. An argument without a default (**required**) must be given; its
        absence is an error naming the key and the class. A key the class does not take (which
        NeMo's constructor would refuse) is named in a warning. The defaults are NeMo 3.0.0's, read from
        the classes themselves. Sections a config leaves out entirely keep nest-train's recipe
        values (those of `nest_fast-conformer.yaml`).

        | section | class without `_target_` |
        |---|---|

        """
        for (path, name) in sections { out += "| `\(path)` | \(name) |\n" }
        for contract in all {
            out += "\n## \(contract.className)\n\n`\(contract.target)`"
            out += contract.provenance.map { " (\($0))" } ?? ""
            out += "\n\n| key | default |\n|---|---|\n"
            for (name, value) in contract.keys {
                let shown: String
                switch value {
                case .required: shown = "**required**"
                case .null: shown = "null"
                case .value(let text): shown = "`\(text)`"
                }
                out += "| `\(name)` | \(shown) |\n"
            }
        }
        return out
    }
}
