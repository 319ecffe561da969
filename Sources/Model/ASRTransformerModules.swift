import NN
import Tensor

/// NeMo's `ASRTransformerLayer`: self-attention and a position-wise feed-forward, each added to
/// the residual stream through dropout, with the LayerNorms after each add (`post_ln`, the
/// encoder's default) or before each sublayer (pre-LN, no final norm; the XL recipe's choice).
public final class ASRTransformerLayer: Module, EncoderLayer {
    public let normSelfAtt: LayerNorm, selfAttn: MultiHeadSelfAttention
    public let normFeedForward: LayerNorm, feedForward: PositionWiseFeedForward
    let dropout: Dropout
    let postLayerNorm: Bool

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        postLayerNorm = config.postLayerNorm
        normSelfAtt = LayerNorm(config.dModel)
        selfAttn = MultiHeadSelfAttention(config: config, rng: rng, keys: keys)
        normFeedForward = LayerNorm(config.dModel)
        feedForward = PositionWiseFeedForward(config: config, rng: rng, keys: keys)
        dropout = Dropout(config.dropout, keys: keys)
        super.init()
        // Declared in NeMo's attribute order, which is its state-dict order.
        registerChildren()
    }

    /// `validSteps` is unused: without a convolution module nothing reads padded frames.
    public func callAsFunction(_ x: Tensor, positions: Tensor?, attentionMask: AttentionMask, validSteps: Tensor) -> Tensor {
        if postLayerNorm {
            let r = normSelfAtt(x + dropout(selfAttn(x, positions: positions, mask: attentionMask)))
            return normFeedForward(r + dropout(feedForward(r)))
        }
        let r = x + dropout(selfAttn(normSelfAtt(x), positions: positions, mask: attentionMask))
        return r + dropout(feedForward(normFeedForward(r)))
    }
}

/// NeMo's `PositionWiseFF`: `dense_in` (d → d·ff_expansion_factor), the activation (`ffn_act`),
/// `dense_out`, then its own dropout (`layer_dropout`, at the encoder's `dropout`: the layer
/// applies a second one on the residual add).
public final class PositionWiseFeedForward: Module {
    public let denseIn: Linear, denseOut: Linear
    let activation: ActivationFunction
    let layerDropout: Dropout

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        let d = config.dModel, hidden = config.dModel * config.ffExpansionFactor
        denseIn = Linear(inputFeatures: d, outputFeatures: hidden, bias: config.useBias, rng: rng)
        denseOut = Linear(inputFeatures: hidden, outputFeatures: d, bias: config.useBias, rng: rng)
        activation = config.ffnActivation
        layerDropout = Dropout(config.dropout, keys: keys)
        super.init()
        registerChildren()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { layerDropout(denseOut(denseIn(x).activation(activation))) }
}
