import NN
import Tensor

/// One layer of the encoder's stack: the residual stream [B, T, D] in and out.
public protocol EncoderLayer: Module {
    /// `positions`: the attention's relative table (nil for `abs_pos`); `validSteps`: [B, T, 1],
    /// 1 for t < length.
    func callAsFunction(_ x: Tensor, positions: Tensor?, attentionMask: AttentionMask, validSteps: Tensor) -> Tensor
}

/// NeMo's `ConformerEncoder` (FastConformer): subsampling, xscale + positional encoding +
/// dropout, Conformer layers; and NeMo's `ASRTransformerEncoder`, which NeMo builds the same
/// way (same subsampling, encodings, masks and stochastic depth) with `ASRTransformerLayer`s.
/// Works channels-last: the output is [B, T′, D] (NeMo returns the transpose [B, D, T′]).
public final class ConformerEncoder: Module, SpeechEncoder {
    public let config: EncoderConfig
    public let preEncode: ConvSubsampling
    public let posEnc: PositionalEncoding
    public let layers: [any EncoderLayer]
    /// Parameterless, so outside the state dict; children so that train() and eval() reach them.
    let stochasticDepth: [StochasticDepth]
    /// Multi-lookahead training's draw of the attention context (nil for one context).
    let contextChoice: KeyedChoice?

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        precondition(config.dModel % config.nHeads == 0, "encoder.d_model \(config.dModel) is not divisible by encoder.n_heads \(config.nHeads)")
        self.config = config
        preEncode = ConvSubsampling(config: config, rng: rng)
        posEnc = PositionalEncoding(config: config, rng: rng, keys: keys)
        layers = (0..<config.nLayers).map { _ -> any EncoderLayer in
            if config.architecture == .asrTransformer { return ASRTransformerLayer(config: config, rng: rng, keys: keys) }
            return ConformerLayer(config: config, rng: rng, keys: keys)
        }
        stochasticDepth = (0..<config.nLayers).map { StochasticDepth(config.layerDropProbabilities.isEmpty ? 0 : config.layerDropProbabilities[$0], keys: keys) }
        contextChoice = config.attentionContextChoices.isEmpty ? nil
            : KeyedChoice(probabilities: config.attentionContextChoices.map(\.probability), keys: keys)
        super.init()
        registerChildren()
    }

    public func subsample(_ features: Tensor, lengths: [Int]) -> (Tensor, [Int]) { preEncode(features, lengths: lengths) }

    public func encode(subsampled: Tensor, lengths encodedLengths: [Int], captureLayers: Set<Int>) -> EncoderOutput {
        var (x, positions) = posEnc(subsampled)
        let (b, t) = (x.shape[0], x.shape[1])
        // One context for the whole forward, as NeMo draws one per call.
        let (context, chunked) = contextChoice.map { c in
            let choice = config.attentionContextChoices[c.pick()]
            return (choice.context, choice.chunked)
        } ?? (config.attentionContext, config.attentionChunked)
        let attentionMask = AttentionMask.make(lengths: encodedLengths, length: t, context: context, chunked: chunked)
        let validSteps = TimeMask.rows(encodedLengths, length: t, shape: [b, t, 1])
        var captured: [Int: Tensor] = [:]
        if captureLayers.contains(-1) { captured[-1] = x }
        for (i, layer) in layers.enumerated() {
            x = stochasticDepth[i](layer(x, positions: positions, attentionMask: attentionMask, validSteps: validSteps), input: x)
            if captureLayers.contains(i) { captured[i] = x }
        }
        return EncoderOutput(encoded: x, lengths: encodedLengths, layerOutputs: captured)
    }
}
