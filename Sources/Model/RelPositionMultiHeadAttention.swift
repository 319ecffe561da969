import NN
import Tensor

/// NeMo's `RelPositionMultiHeadAttention` (Transformer-XL relative attention, untied biases).
///
/// s[n,i,j] = ((Q_i + u)·K_j + (Q_i + v)·P_{i−j}) / √d_k; masked scores −10000, masked
/// probabilities 0; dropout on the probabilities; heads concatenated and projected.
public final class RelPositionMultiHeadAttention: Module {
    public let posBiasU: Tensor, posBiasV: Tensor
    public let linearQ: Linear, linearK: Linear, linearV: Linear, linearOut: Linear, linearPos: Linear
    let dropout: Dropout
    let heads: Int, headDim: Int

    public init(config: EncoderConfig, rng: RandomGenerator) {
        let d = config.dModel
        heads = config.nHeads
        headDim = config.headDim
        posBiasU = Tensor(zeros: [heads, headDim])
        posBiasV = Tensor(zeros: [heads, headDim])
        linearQ = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        linearK = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        linearV = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        linearOut = Linear(inputFeatures: d, outputFeatures: d, bias: config.useBias, rng: rng)
        linearPos = Linear(inputFeatures: d, outputFeatures: d, bias: false, rng: rng)
        dropout = Dropout(config.dropoutAtt, rng: rng)
        super.init()
        parameter("pos_bias_u", posBiasU)
        parameter("pos_bias_v", posBiasV)
        child("linear_q", linearQ)
        child("linear_k", linearK)
        child("linear_v", linearV)
        child("linear_out", linearOut)
        child("linear_pos", linearPos)
        child("dropout", dropout)
    }

    /// [B, T, D] → [B, H, T, d_k]
    private func splitHeads(_ x: Tensor) -> Tensor {
        x.reshaped([x.shape[0], x.shape[1], heads, headDim]).permuted([0, 2, 1, 3])
    }

    /// x [B, T, D], positions [2T−1, D], mask [B, 1, T, T] (1 = masked) → [B, T, D].
    public func callAsFunction(_ x: Tensor, positions: Tensor, mask: Tensor) -> Tensor {
        let (b, t, d) = (x.shape[0], x.shape[1], x.shape[2])
        let q = linearQ(x)
        let k = splitHeads(linearK(x)), v = splitHeads(linearV(x))
        let qu = splitHeads(q + posBiasU.reshaped([d]))
        let qv = splitHeads(q + posBiasV.reshaped([d]))
        // P: [2T−1, D] → [H, 2T−1, d_k], shared by the batch.
        let p = linearPos(positions).reshaped([2 * t - 1, heads, headDim]).permuted([1, 0, 2])
            .reshaped([1, heads, 2 * t - 1, headDim]).expanded(to: [b, heads, 2 * t - 1, headDim])
        let ac = Tensor.matmul(qu, k, transposeB: true)
        let bd = Tensor.matmul(qv, p, transposeB: true).relativeShift()
        let scores = (ac + bd) * (1 / Float(headDim).squareRoot())
        let attention = dropout(scores.softmax(mask: mask))
        let context = Tensor.matmul(attention, v).permuted([0, 2, 1, 3]).reshaped([b, t, d])
        return linearOut(context)
    }
}
