import Basics
import Model
import NN
import Tensor

/// Reads the model sections (`model.encoder`, `masking`, `quantizer`, `decoder`, `loss`) of a
/// NeMo config into `NESTConfig`, checking types and combinations before any work starts.
public enum ModelConfigReader {
    /// NeMo's class for each model section (as in `nest_fast-conformer.yaml`): what nest-train
    /// builds, and what it writes into a `.nemo`.
    public static let sectionClasses: [(section: String, target: String)] = [
        ("preprocessor", "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor"),
        ("spec_augment", "nemo.collections.asr.modules.SpectrogramAugmentation"),
        ("masking", "nemo.collections.asr.modules.RandomBlockMasking"),
        ("quantizer", "nemo.collections.asr.modules.RandomProjectionVectorQuantizer"),
        ("encoder", "nemo.collections.asr.modules.ConformerEncoder"),
        ("decoder", "nemo.collections.asr.modules.MultiSoftmaxDecoder"),
        ("loss", "nemo.collections.asr.losses.MultiMLMLoss"),
    ]

    /// A section outside the class table (`spec_augment`) whose `_target_` names another class
    /// is refused by name, as `ClassDefaults.filling` refuses one in the sections it fills:
    /// building something else would train the wrong model silently. The class name decides
    /// (NeMo accepts module-qualified spellings of the same class).
    static func checkTargets(_ doc: ConfigDocument) throws {
        let filled = Set(ClassDefaults.sections.map(\.path))
        for (section, target) in sectionClasses where !filled.contains("model.\(section)") {
            guard let named = try doc.string("model.\(section)._target_") else { continue }
            if named.split(separator: ".").last.map(String.init) != String(target.split(separator: ".").last!) {
                throw NestError("\(doc.file): model.\(section)._target_: \(named) is not supported (nest-train builds \(target))")
            }
        }
    }

    public static func read(_ doc: ConfigDocument) throws -> NESTConfig {
        // Absent keys take their class's default before anything is read (as in NeMo).
        try read(filled: try ClassDefaults.filling(doc))
    }

    /// `read` of a document `ClassDefaults.filling` has filled (RunConfig fills it once for
    /// every reader).
    static func read(filled doc: ConfigDocument) throws -> NESTConfig {
        try checkTargets(doc)
        var c = NESTConfig()
        try readEncoder(filled: doc, into: &c.encoder)

        let m = "model.masking"
        c.masking.featIn = try doc.filledInt("\(m).feat_in")
        c.masking.blockSize = try doc.filledInt("\(m).block_size")
        c.masking.maskProb = try doc.filledDouble("\(m).mask_prob")
        c.masking.allowOverlap = try doc.filledBool("\(m).allow_overlap")
        c.masking.maxMaskRatio = try doc.filledDouble("\(m).max_mask_ratio")
        c.masking.maskValue = try doc.double("\(m).mask_value").map { Float($0) }

        let q = "model.quantizer"
        c.quantizer.featIn = try doc.filledInt("\(q).feat_in")
        c.quantizer.codeDim = try doc.filledInt("\(q).code_dim")
        c.quantizer.numClasses = try doc.filledInt("\(q).num_classes")
        c.quantizer.numBooks = try doc.filledInt("\(q).num_books")
        c.quantizer.combineTimeSteps = try doc.filledInt("\(q).combine_time_steps")
        c.quantizer.cosineDistance = try doc.filledString("\(q).dist_fn") == "cosine"

        let d = "model.decoder"
        c.decoder.featIn = try doc.filledInt("\(d).feat_in")
        c.decoder.numClasses = try doc.filledInt("\(d).num_classes")
        c.decoder.numDecoders = try doc.filledInt("\(d).num_decoders")
        c.decoder.useBias = try doc.filledBool("\(d).use_bias")

        let l = "model.loss"
        c.loss.combineTimeSteps = try doc.filledInt("\(l).combine_time_steps")
        c.loss.maskThreshold = Float(try doc.filledDouble("\(l).mask_threshold"))

        let position = try doc.string("model.mask_position") ?? NESTConfig.MaskPosition.preConv.rawValue
        guard let maskPosition = NESTConfig.MaskPosition(rawValue: position) else {
            throw NestError("\(doc.file): model.mask_position: '\(position)' is not supported (supported: pre_conv, post_conv)")
        }
        if maskPosition == .postConv {
            c.maskPosition = .postConv
            // NeMo's model constructor rewrites these for post_conv, whatever the config says.
            c.quantizer.featIn = c.encoder.dModel
            c.masking.featIn = c.encoder.dModel
            c.masking.blockSize /= c.encoder.subsamplingFactor
            c.loss.combineTimeSteps = 1
            if c.quantizer.combineTimeSteps != 1 {
                throw NestError("\(doc.file): \(q).combine_time_steps (\(c.quantizer.combineTimeSteps)) must be 1 with model.mask_position: post_conv: "
                    + "NeMo sets the loss's to 1 but not the quantizer's, which then stacks encoder frames (and fails unless T′ is a multiple of it)")
            }
        }
        try validate(c, file: doc.file)
        return c
    }

    /// `model.encoder` alone, for a config that holds an encoder and nothing else to build (the
    /// encoder variants' parity fixtures); its absent keys take the class defaults as in `read`.
    public static func readEncoder(_ doc: ConfigDocument) throws -> EncoderConfig {
        var encoder = NESTConfig().encoder
        try readEncoder(filled: try ClassDefaults.filling(doc, only: ["model.encoder"]), into: &encoder)
        return encoder
    }

    static func readEncoder(filled doc: ConfigDocument, into encoder: inout EncoderConfig) throws {
        let e = "model.encoder"
        switch try architecture(doc) {
        case .transformer: try readTransformer(doc, e, into: &encoder)
        case .conformer: try readConformer(doc, e, into: &encoder)
        case .asrTransformer: try readASRTransformer(doc, e, into: &encoder)
        }
    }

    /// The encoder class `model.encoder._target_` names (by its last component, as NeMo accepts
    /// module-qualified spellings); ConformerEncoder when the key is absent.
    public static func architecture(_ doc: ConfigDocument) throws -> EncoderConfig.Architecture {
        guard let target = try doc.string("model.encoder._target_"), let name = target.split(separator: ".").last else { return .conformer }
        return EncoderConfig.Architecture(rawValue: String(name)) ?? .conformer
    }

    /// `ASRTransformerEncoder` (NeMo's main branch; the Transformer NEST recipes' class): the
    /// Conformer encoder's keys without the convolution module's, which its constructor does not
    /// take, plus `post_ln` (default true) and `ffn_act` (default relu).
    static func readASRTransformer(_ doc: ConfigDocument, _ e: String, into encoder: inout EncoderConfig) throws {
        try readConformer(doc, e, into: &encoder)
        encoder.architecture = .asrTransformer
        encoder.postLayerNorm = try doc.filledBool("\(e).post_ln")
        let activations: [String: ActivationFunction] = ["relu": .relu, "gelu": .gelu, "silu": .silu]
        let act = try doc.filledString("\(e).ffn_act")
        guard let f = activations[act] else {
            throw NestError("\(doc.file): \(e).ffn_act: '\(act)' is not built by nest-train (supported: gelu, relu, silu)")
        }
        encoder.ffnActivation = f
    }

    /// `ConformerEncoder`'s keys (FastConformer).
    static func readConformer(_ doc: ConfigDocument, _ e: String, into encoder: inout EncoderConfig) throws {
        encoder.featIn = try doc.filledInt("\(e).feat_in")
        encoder.nLayers = try doc.filledInt("\(e).n_layers")
        encoder.dModel = try doc.filledInt("\(e).d_model")
        encoder.useBias = try doc.filledBool("\(e).use_bias")
        encoder.subsamplingFactor = try doc.filledInt("\(e).subsampling_factor")
        // -1: as many channels as d_model (NeMo's constructor rule).
        let channels = try doc.filledInt("\(e).subsampling_conv_channels")
        encoder.subsamplingConvChannels = channels == -1 ? encoder.dModel : channels
        encoder.ffExpansionFactor = try doc.filledInt("\(e).ff_expansion_factor")
        encoder.nHeads = try doc.filledInt("\(e).n_heads")
        encoder.xscaling = try doc.filledBool("\(e).xscaling")
        encoder.posEmbMaxLen = try doc.filledInt("\(e).pos_emb_max_len")
        // The convolution module's keys: ASRTransformerEncoder has none (its layers never read them).
        encoder.convKernelSize = try doc.int("\(e).conv_kernel_size") ?? encoder.convKernelSize
        // `causal`: all context on the left (NeMo's [k − 1, 0]).
        encoder.convContextSize = try doc.string("\(e).conv_context_size") == "causal"
            ? [encoder.convKernelSize - 1, 0] : try doc.intList("\(e).conv_context_size")
        encoder.dropout = Float(try doc.filledDouble("\(e).dropout"))
        encoder.dropoutPreEncoder = Float(try doc.filledDouble("\(e).dropout_pre_encoder"))
        encoder.dropoutEmb = Float(try doc.filledDouble("\(e).dropout_emb"))
        encoder.dropoutAtt = Float(try doc.filledDouble("\(e).dropout_att"))
        encoder.subsampling = try doc.filled("\(e).subsampling", as: EncoderConfig.Subsampling.self)
        encoder.selfAttentionModel = try doc.filled("\(e).self_attention_model", as: EncoderConfig.SelfAttentionModel.self)
        let convNorm = try doc.string("\(e).conv_norm_type") ?? "batch_norm"   // none in ASRTransformerEncoder
        guard let convNormType = EncoderConfig.ConvNormType(name: convNorm) else {
            throw NestError("\(doc.file): \(e).conv_norm_type: '\(convNorm)' is not built by nest-train (batch_norm, layer_norm, instance_norm or group_normN)")
        }
        if case .groupNorm(let groups) = convNormType, encoder.dModel % groups != 0 {
            throw NestError("\(doc.file): \(e).conv_norm_type: \(convNorm) needs d_model (\(encoder.dModel)) divisible by \(groups) groups")
        }
        encoder.convNormType = convNormType
        encoder.causalDownsampling = try doc.filledBool("\(e).causal_downsampling")
        try readAttentionContexts(doc, e, into: &encoder)
        if encoder.selfAttentionModel == .relPosLocalAttn { try checkLocalAttention(doc, e, encoder) }
        encoder.layerDropProbabilities = try stochasticDepth(doc, e, layers: encoder.nLayers)
    }

    /// `rel_pos_local_attn` needs a finite window on both sides (NeMo slices its positions by
    /// them) and computes that window whatever `att_context_style` says, so only `regular` is
    /// accepted.
    static func checkLocalAttention(_ doc: ConfigDocument, _ e: String, _ encoder: EncoderConfig) throws {
        guard let ctx = encoder.attentionContext, ctx.left < Int.max / 4, ctx.right < Int.max / 4, max(ctx.left, ctx.right) > 0 else {
            throw NestError("\(doc.file): \(e).att_context_size: rel_pos_local_attn needs a window [left, right] with both ≥ 0 and one > 0")
        }
        if !encoder.attentionContextChoices.isEmpty {
            throw NestError("\(doc.file): \(e).att_context_size: rel_pos_local_attn takes one window, not several context sizes")
        }
        if try encoder.attentionChunked || doc.filledString("\(e).att_context_style") != "regular" {
            throw NestError("\(doc.file): \(e).att_context_style: rel_pos_local_attn computes a sliding window; only 'regular' is supported")
        }
    }

    /// NeMo 3.0's `TransformerEncoder`: absent keys take its class defaults (which differ from
    /// the Conformer's: xscaling off, feature stacking, `dropout_pre_encoder` = `drop_rate`); a
    /// Conformer-only key is refused (`ClassDefaults.filling`), as the class's constructor refuses it.
    static func readTransformer(_ doc: ConfigDocument, _ e: String, into encoder: inout EncoderConfig) throws {
        encoder.architecture = .transformer
        encoder.featIn = try doc.filledInt("\(e).feat_in")
        encoder.nLayers = try doc.filledInt("\(e).n_layers")
        encoder.dModel = try doc.filledInt("\(e).d_model")
        encoder.nHeads = try doc.filledInt("\(e).n_heads")
        encoder.subsamplingFactor = try doc.filledInt("\(e).subsampling_factor")
        encoder.xscaling = try doc.filledBool("\(e).xscaling")
        encoder.posEmbMaxLen = try doc.filledInt("\(e).pos_emb_max_len")
        encoder.qkvBias = try doc.filledBool("\(e).qkv_bias")
        encoder.qkNorm = try doc.filledBool("\(e).qk_norm")
        encoder.ffExpansion = try doc.filledDouble("\(e).ff_expansion")
        encoder.preBlockNorm = try doc.filledBool("\(e).pre_block_norm")
        encoder.dropRate = Float(try doc.filledDouble("\(e).drop_rate"))
        encoder.dropoutPreEncoder = Float(try doc.double("\(e).dropout_pre_encoder") ?? Double(encoder.dropRate))
        encoder.dropoutEmb = Float(try doc.filledDouble("\(e).dropout_emb"))
        encoder.dropout = encoder.dropRate
        encoder.dropoutAtt = 0
    }

    /// NeMo's `stochastic_depth_drop_prob`, `stochastic_depth_mode` and
    /// `stochastic_depth_start_layer` (at most n_layers) as per-layer probabilities.
    static func stochasticDepth(_ doc: ConfigDocument, _ e: String, layers: Int) throws -> [Float] {
        let p = try doc.filledDouble("\(e).stochastic_depth_drop_prob")
        guard p != 0 else { return [] }
        let start = try doc.filledInt("\(e).stochastic_depth_start_layer")
        guard (1...max(layers, 1)).contains(start) else {
            throw NestError("\(doc.file): \(e).stochastic_depth_start_layer (\(start)) must be in 1…n_layers (\(layers))")
        }
        return StochasticDepth.probabilities(layers: layers, p: p, linear: try doc.string("\(e).stochastic_depth_mode") != "uniform", startLayer: start)
    }

    /// `att_context_size`: one [left, right] (−1: unlimited on that side), or several for
    /// multi-lookahead training with `att_context_probs` (equal chances when absent), in NeMo's
    /// `regular` or `chunked_limited` style, checked as NeMo's constructor checks them.
    static func readAttentionContexts(_ doc: ConfigDocument, _ e: String, into encoder: inout EncoderConfig) throws {
        let key = "\(e).att_context_size"
        func fail(_ s: String) throws -> Never { throw NestError("\(doc.file): \(s)") }
        let sizes: [[Int]]
        switch doc.node(key) {
        case nil, .null?: return
        case .list(let items)? where items.contains(where: { if case .list = $0 { true } else { false } }):
            sizes = try items.indices.map { try doc.intList("\(key).\($0)") ?? [] }
        default: sizes = [try doc.intList(key) ?? []]
        }
        let chunkedStyle = try doc.string("\(e).att_context_style") == "chunked_limited"
        let probabilities = try doc.doubleList("\(e).att_context_probs") ?? sizes.map { _ in 1 / Double(sizes.count) }
        if probabilities.count != sizes.count { try fail("\(e).att_context_probs must give one probability per context size (\(sizes.count))") }
        if abs(probabilities.reduce(0, +) - 1) > 1e-9 || probabilities.contains(where: { $0 < 0 }) {
            try fail("\(e).att_context_probs must be a distribution (non-negative, summing to 1)")
        }
        let unlimited = Int.max / 4
        let choices = try sizes.enumerated().map { i, ctx -> EncoderConfig.AttentionContextChoice in
            guard ctx.count == 2, ctx.allSatisfy({ $0 >= -1 }) else {
                try fail("\(key) must be [left, right] (or a list of them) with each ≥ 0 or -1 (unlimited), got \(ctx)")
            }
            if chunkedStyle && ctx[1] < 0 && (sizes.count == 1 || ctx[0] > 0) {
                // NeMo's constructor refuses it for one context, and divides by right + 1 = 0 otherwise.
                try fail("\(key) \(ctx): the right context cannot be unlimited with chunked_limited (NeMo's rule)")
            }
            if chunkedStyle && ctx[0] > 0 && ctx[0] % (ctx[1] + 1) != 0 {
                try fail("\(key) \(ctx): with chunked_limited, left must be a multiple of right + 1 (NeMo's rule)")
            }
            // chunked_limited with an unlimited right side is NeMo's plain left window.
            return .init(left: ctx[0] < 0 ? unlimited : ctx[0], right: ctx[1] < 0 ? unlimited : ctx[1],
                         chunked: chunkedStyle && ctx[1] >= 0, probability: probabilities[i])
        }
        encoder.attentionContext = choices[0].context
        encoder.attentionChunked = choices[0].chunked
        encoder.attentionContextChoices = choices.count > 1 ? choices : []
    }

    /// Impossible combinations, named by key path.
    static func validate(_ c: NESTConfig, file: String) throws {
        func fail(_ s: String) throws -> Never { throw NestError("\(file): \(s)") }
        let e = c.encoder
        if e.dModel % e.nHeads != 0 { try fail("model.encoder.n_heads (\(e.nHeads)) must divide model.encoder.d_model (\(e.dModel))") }
        if e.dModel % 2 != 0 { try fail("model.encoder.d_model (\(e.dModel)) must be even for the sinusoidal positions") }
        if e.subsamplingFactor < 2 || e.subsamplingFactor & (e.subsamplingFactor - 1) != 0 {
            try fail("model.encoder.subsampling_factor (\(e.subsamplingFactor)) must be a power of two ≥ 2")
        }
        if e.convKernelSize % 2 == 0 && e.convContextSize == nil { try fail("model.encoder.conv_kernel_size (\(e.convKernelSize)) must be odd") }
        if let ctx = e.convContextSize, ctx.count != 2 || ctx[0] + ctx[1] + 1 != e.convKernelSize {
            try fail("model.encoder.conv_context_size \(ctx) must be [left, right] with left + right + 1 = conv_kernel_size")
        }
        if e.subsamplingConvChannels < 1 { try fail("model.encoder.subsampling_conv_channels (\(e.subsamplingConvChannels)) must be -1 (d_model) or ≥ 1") }
        if c.maskPosition == .preConv {
            if c.quantizer.featIn != e.featIn { try fail("model.quantizer.feat_in (\(c.quantizer.featIn)) must equal model.encoder.feat_in (\(e.featIn)) for pre_conv masking") }
            if c.quantizer.combineTimeSteps != e.subsamplingFactor || c.loss.combineTimeSteps != e.subsamplingFactor {
                try fail("model.quantizer.combine_time_steps and model.loss.combine_time_steps must equal model.encoder.subsampling_factor (\(e.subsamplingFactor))")
            }
        }
        if c.decoder.featIn != e.dModel { try fail("model.decoder.feat_in (\(c.decoder.featIn)) must equal model.encoder.d_model (\(e.dModel))") }
        if c.decoder.numClasses != c.quantizer.numClasses || c.decoder.numDecoders != c.quantizer.numBooks {
            try fail("model.decoder.num_classes/num_decoders must equal model.quantizer.num_classes/num_books")
        }
        if c.maskPosition == .preConv && c.masking.featIn != e.featIn { try fail("model.masking.feat_in (\(c.masking.featIn)) must equal model.encoder.feat_in (\(e.featIn))") }
        if c.masking.blockSize < 1 {
            try fail("model.masking.block_size leaves blocks of \(c.masking.blockSize) encoder frames after subsampling by \(e.subsamplingFactor) (post_conv)")
        }
    }
}
