import NN
import Tensor

/// NeMo 3.0's `TransformerEncoder` as NEST's Transformer recipes use it: feature stacking (8
/// frames concatenated and projected), relative positions (the Conformer's table and xscale),
/// a LayerNorm before the first block (`pre_block_norm`), pre-norm blocks
/// x + attn(norm1(x)), + ffn(norm2(·)), and one `final_norm`. Channels-last like the Conformer.
///
/// Attention masks only keys past an utterance's length (FlexAttention's `kv_idx < length`):
/// padded query rows attend to the valid keys like any other row.
public final class TransformerEncoder: Module, SpeechEncoder {
    public let config: EncoderConfig
    public let preEncode: FeatureStacking
    public let posEnc: PositionalEncoding
    public let embedNorm: LayerNorm?
    public let layers: [TransformerBlock]
    public let finalNorm: LayerNorm
    /// Parameterless, so outside the state dict; children so that train() and eval() reach them.
    let stochasticDepth: [StochasticDepth]

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        self.config = config
        preEncode = FeatureStacking(factor: config.subsamplingFactor, featIn: config.featIn, dModel: config.dModel, rng: rng)
        posEnc = PositionalEncoding(config: config, rng: rng, keys: keys)
        embedNorm = config.preBlockNorm ? LayerNorm(config.dModel) : nil
        layers = (0..<config.nLayers).map { _ in TransformerBlock(config: config, rng: rng, keys: keys) }
        finalNorm = LayerNorm(config.dModel)
        stochasticDepth = (0..<config.nLayers).map { StochasticDepth(config.layerDropProbabilities.isEmpty ? 0 : config.layerDropProbabilities[$0], keys: keys) }
        super.init()
        // Declared in NeMo's attribute order, which is its state-dict order.
        registerChildren()
    }

    public func subsample(_ features: Tensor, lengths: [Int]) -> (Tensor, [Int]) { preEncode(features, lengths: lengths) }

    public func encode(subsampled: Tensor, lengths encodedLengths: [Int], captureLayers: Set<Int>) -> EncoderOutput {
        var (x, table) = posEnc(subsampled)
        // NeMo 3.0's Transformer has relative positions only (the reader refuses the others).
        let positions = table!
        var captured: [Int: Tensor] = [:]
        if captureLayers.contains(-1) { captured[-1] = x }
        if let embedNorm { x = embedNorm(x) }
        let keyMask = Tensor.keyMask(lengths: encodedLengths, length: x.shape[1])
        for (i, layer) in layers.enumerated() {
            x = stochasticDepth[i](layer(x, positions: positions, mask: keyMask), input: x)
            if captureLayers.contains(i) { captured[i] = x }
        }
        return EncoderOutput(encoded: finalNorm(x), lengths: encodedLengths, layerOutputs: captured)
    }
}

/// NeMo's `FeatureStacking`: features [B, F, T] zero-padded to a multiple of `factor` frames,
/// each `factor` consecutive frames concatenated time-major and projected to D (no bias).
/// Lengths become ⌈L / factor⌉; nothing past a length is zeroed.
public final class FeatureStacking: Module {
    public let factor: Int
    public let proj: Linear

    public init(factor: Int, featIn: Int, dModel: Int, rng: RandomGenerator) {
        self.factor = factor
        proj = Linear(inputFeatures: factor * featIn, outputFeatures: dModel, bias: false, rng: rng)
        super.init()
        registerChildren()
    }

    public func callAsFunction(_ features: Tensor, lengths: [Int]) -> (Tensor, [Int]) {
        let (b, f, t) = (features.shape[0], features.shape[1], features.shape[2])
        let padded = (t + factor - 1) / factor * factor
        let frames = features.transposed(1, 2).padded(axis: 1, before: 0, after: padded - t)
        return (proj(frames.reshaped([b, padded / factor, factor * f])), lengths.map { ($0 + factor - 1) / factor })
    }
}

/// NeMo's `TransformerBlock`: x + drop(attn(norm1(x))), then + drop(ffn(norm2(·))).
public final class TransformerBlock: Module {
    public let norm1: LayerNorm, attn: TransformerAttention
    let drop: Dropout
    public let norm2: LayerNorm, ffn: TransformerFeedForward

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        norm1 = LayerNorm(config.dModel)
        attn = TransformerAttention(config: config, rng: rng)
        drop = Dropout(config.dropRate, keys: keys)
        norm2 = LayerNorm(config.dModel)
        ffn = TransformerFeedForward(config: config, rng: rng, keys: keys)
        super.init()
        registerChildren()
    }

    public func callAsFunction(_ x: Tensor, positions: Tensor, mask: Tensor) -> Tensor {
        let r = x + drop(attn(norm1(x), positions: positions, mask: mask))
        return r + drop(ffn(norm2(r)))
    }
}

/// NeMo's Transformer `MultiHeadAttention` with relative positions: one fused `w_qkv`
/// projection (q, then k, then v, head-major), an optional LayerNorm over each head's
/// channels on q and k (`q_norm`, `k_norm`, shared by the heads, before the position biases),
/// then the Transformer-XL scores of `MultiHeadSelfAttention`, softmax, `out_proj`.
public final class TransformerAttention: Module {
    public let posBiasU: Tensor, posBiasV: Tensor
    public let wQKV: Linear, outProj: Linear
    public let qNorm: LayerNorm?, kNorm: LayerNorm?
    public let linearPos: Linear
    let heads: Int, headDim: Int

    public init(config: EncoderConfig, rng: RandomGenerator) {
        let d = config.dModel
        heads = config.nHeads
        headDim = config.headDim
        posBiasU = Tensor(zeros: [heads, headDim])
        posBiasV = Tensor(zeros: [heads, headDim])
        wQKV = Linear(inputFeatures: d, outputFeatures: 3 * d, bias: config.qkvBias, rng: rng)
        outProj = Linear(inputFeatures: d, outputFeatures: d, rng: rng)
        qNorm = config.qkNorm ? LayerNorm(headDim) : nil
        kNorm = config.qkNorm ? LayerNorm(headDim) : nil
        linearPos = Linear(inputFeatures: d, outputFeatures: d, bias: false, rng: rng)
        super.init()
        // Own parameters first, then the children: PyTorch's state-dict order.
        parameter("pos_bias_u", posBiasU)
        parameter("pos_bias_v", posBiasV)
        registerChildren()
    }

    /// x [B, T, D], positions [2T−1, D], mask [B, 1, T, T] (1 = masked key) → [B, T, D].
    public func callAsFunction(_ x: Tensor, positions: Tensor, mask: Tensor) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let qkv = wQKV(x).reshaped([b, t, 3, heads, headDim])
        func part(_ i: Int) -> Tensor { qkv.slice(axis: 2, i..<(i + 1)).reshaped([b, t, heads, headDim]) }
        var q = part(0), k = part(1)
        let v = part(2)
        if let qNorm, let kNorm { (q, k) = (qNorm(q), kNorm(k)) }
        let p = linearPos(positions).reshaped([2 * t - 1, heads, headDim])
        let scores = Tensor.relPositionScores(q: q, k: k, p: p, biasU: posBiasU, biasV: posBiasV, scale: 1 / Float(headDim).squareRoot())
        return outProj(Tensor.attentionContext(scores.softmax(mask: mask), v).reshaped([b, t, d]))
    }
}

/// NeMo's Transformer `FeedForward`: `net` = Linear → GELU (exact) → Dropout → Linear → Dropout.
public final class TransformerFeedForward: Module {
    public let linear1: Linear, linear2: Linear
    let dropout1: Dropout, dropout2: Dropout

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        let hidden = Int(config.ffExpansion * Double(config.dModel))
        linear1 = Linear(inputFeatures: config.dModel, outputFeatures: hidden, rng: rng)
        dropout1 = Dropout(config.dropRate, keys: keys)
        linear2 = Linear(inputFeatures: hidden, outputFeatures: config.dModel, rng: rng)
        dropout2 = Dropout(config.dropRate, keys: keys)
        super.init()
        // Indices count GELU and the dropouts as PyTorch's Sequential does: 0, (1), (2), 3, (4).
        let net = child("net", Module())
        net.child("0", linear1)
        net.child("2", dropout1)
        net.child("3", linear2)
        net.child("4", dropout2)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { dropout2(linear2(dropout1(linear1(x).gelu()))) }
}
