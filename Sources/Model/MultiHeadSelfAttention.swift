import NN
import Tensor

/// NeMo's `RelPositionMultiHeadAttention` (Transformer-XL relative attention, untied biases;
/// also its Longformer subclass for `rel_pos_local_attn`, whose weights and window scores are
/// the same), and, built without positions, its base `MultiHeadAttention` (`abs_pos`).
///
/// s[n,i,j] = ((Q_i + u)·K_j + (Q_i + v)·P_{i−j}) / √d_k; masked scores −10000, masked
/// probabilities 0; dropout on the probabilities; heads concatenated and projected. Without
/// positions u, v and P are zero constants, so s = Q_i·K_j / √d_k through the same score
/// kernels (no NEST recipe uses `abs_pos`; one path for every scheme outweighs the idle terms).
public final class MultiHeadSelfAttention: Module {
    public let posBiasU: Tensor, posBiasV: Tensor
    public let linearQ: Linear, linearK: Linear, linearV: Linear, linearOut: Linear
    public let linearPos: Linear?
    let dropout: Dropout
    let heads: Int, headDim: Int

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        let d = config.dModel
        heads = config.nHeads
        headDim = config.headDim
        posBiasU = Tensor(zeros: [heads, headDim])
        posBiasV = Tensor(zeros: [heads, headDim])
        linearQ = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        linearK = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        linearV = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        linearOut = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        let relative = config.selfAttentionModel != .absPos
        linearPos = relative ? Linear(inputFeatures: d, outputFeatures: d, bias: false, rng: rng) : nil
        dropout = Dropout(config.dropoutAtt, keys: keys)
        super.init()
        if relative {
            parameter("pos_bias_u", posBiasU)
            parameter("pos_bias_v", posBiasV)
        }
        registerChildren()
    }

    /// x [B, T, D], positions [2T−1, D] (nil for `abs_pos`), mask (1 = masked) → [B, T, D].
    public func callAsFunction(_ x: Tensor, positions: Tensor?, mask: AttentionMask) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        // Heads stay in the projections' [B, T, H, d_k] layout (see `Tensor.relPositionScores`).
        let splitHeads = { (y: Tensor) in y.reshaped([b, t, self.heads, self.headDim]) }
        let q = splitHeads(linearQ(x)), k = splitHeads(linearK(x)), v = splitHeads(linearV(x))
        let p = linearPos.flatMap { linear in positions.map { linear($0) } }?.reshaped([2 * t - 1, heads, headDim])
            ?? Tensor(zeros: [2 * t - 1, heads, headDim])
        let scale = 1 / Float(headDim).squareRoot()
        switch mask {
        case .dense(let m):
            let scores = Tensor.relPositionScores(q: q, k: k, p: p, biasU: posBiasU, biasV: posBiasV, scale: scale)
            return linearOut(Tensor.attentionContext(dropout(scores.softmax(mask: m)), v).reshaped([b, t, d]))
        case .band(let m, let left, let right):
            let scores = Tensor.bandedRelPositionScores(q: q, k: k, p: p, biasU: posBiasU, biasV: posBiasV, scale: scale, left: left, right: right)
            return linearOut(Tensor.bandedAttentionContext(dropout(scores.softmax(mask: m)), v, left: left).reshaped([b, t, d]))
        }
    }
}

/// Which keys each query may attend to: a dense [B, 1, T, T] mask, or, for a limited context
/// narrower than the sequence, a [B, 1, T, W] band (`Tensor.bandMask`) computed banded.
public enum AttentionMask {
    case dense(Tensor)
    case band(Tensor, left: Int, right: Int)

    /// NeMo's mask for valid `lengths` of T frames and an optional limited context (a sliding
    /// window, or NeMo's chunks when `chunked`).
    public static func make(lengths: [Int], length t: Int, context: (left: Int, right: Int)?, chunked: Bool = false) -> AttentionMask {
        if let context {
            let band = Tensor.contextBand(context, chunked: chunked)
            if band.left + band.right + 1 < t {
                return .band(Tensor.bandMask(lengths: lengths, length: t, left: band.left, right: band.right, context: context, chunked: chunked),
                             left: band.left, right: band.right)
            }
        }
        return .dense(Tensor.attentionMask(lengths: lengths, length: t, context: context, chunked: chunked))
    }
}
