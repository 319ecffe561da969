import Foundation
import NN
import Tensor

/// NeMo's positional encodings, one for each `self_attention_model`; none has parameters. Each
/// scales the input by √d when `xscaling` is on, then:
/// - `rel_pos` (`RelPositionalEncoding`): dropout (`dropout_pre_encoder`), and hands the
///   attention a table of relative positions T−1 … −(T−1);
/// - `abs_pos` (`PositionalEncoding`): adds the sinusoid of each frame's index, dropout
///   (`dropout_pre_encoder`); the attention gets no table;
/// - `rel_pos_local_attn` (`LocalAttRelPositionalEncoding`): dropout at `dropout` (NeMo passes
///   that rate here, not `dropout_pre_encoder`), and a relative table holding, for each offset
///   of the window, the position NeMo's Longformer attention pairs with it (`localPosition`).
/// The sinusoids (the added ones, or the relative table) take dropout at `dropout_emb`, one mask
/// per forward. Sinusoids are computed in Float32 as torch computes its table.
public final class PositionalEncoding: Module {
    let dModel: Int
    let xscale: Float?
    let scheme: EncoderConfig.SelfAttentionModel
    let context: (left: Int, right: Int)
    let dropout: Dropout
    let dropoutEmb: Dropout
    /// Angular frequencies ω_k = exp(−2k·ln(10000)/d), rounded to Float32 like torch's table.
    let frequencies: [Float]

    public init(config: EncoderConfig, rng: RandomGenerator, keys: DropoutKeys) {
        dModel = config.dModel
        xscale = config.xscaling ? Float(config.dModel).squareRoot() : nil
        scheme = config.selfAttentionModel
        context = config.attentionContext ?? (0, 0)
        dropout = Dropout(scheme == .relPosLocalAttn ? config.dropout : config.dropoutPreEncoder, keys: keys)
        dropoutEmb = Dropout(config.dropoutEmb, keys: keys)
        let factor = Float(-(log(10000.0) / Double(config.dModel)))
        frequencies = (0..<(config.dModel / 2)).map { k in Float(exp(Double(Float(2 * k) * factor))) }
        super.init()
        registerChildren()
    }

    /// The relative table [2T−1, D] the attention reads: row m belongs to key offset
    /// j − i = m − (T−1), and holds relative position T−1−m (`rel_pos`) or NeMo's local pairing.
    public func positionTable(length t: Int) -> Tensor {
        let offsets = (0..<(2 * t - 1)).map { $0 - (t - 1) }
        switch scheme {
        case .relPosLocalAttn:
            return Tensor.sinusoids(positions: offsets.map { Self.localPosition(offset: $0, context: context) }, frequencies: frequencies)
        case .relPos, .absPos:
            return Tensor.sinusoids(positions: offsets.map { -$0 }, frequencies: frequencies)
        }
    }

    /// The position NeMo's `RelPositionMultiHeadAttentionLongformer` adds to the score of key
    /// offset o = j − i in a [left, right] window, nil for none. It computes scores in band
    /// columns c = o + w (w = max(left, right)) and adds the terms of its left + right + 1
    /// positions left … −right in two slices: column c < left takes position left − c, column
    /// c ≥ 2w − right takes 2w − right − c. With left = right that is the true relative
    /// position −o; otherwise some offsets get a shifted position or none, as in NeMo.
    static func localPosition(offset o: Int, context: (left: Int, right: Int)) -> Int? {
        let (l, r) = context, w = max(l, r), c = o + w
        guard o >= -l && o <= r else { return nil }
        if c < l { return l - c }
        if c >= 2 * w - r { return 2 * w - r - c }
        return nil
    }

    /// The scaled, encoded and dropped-out input, and the attention's position table (nil for
    /// absolute positions).
    public func callAsFunction(_ x: Tensor) -> (Tensor, Tensor?) {
        let t = x.shape[1]
        var y = xscale.map { x * $0 } ?? x
        guard scheme != .absPos else {
            y = y + dropoutEmb.sharedByTheBatch(Tensor.sinusoids(positions: Array(0..<t), frequencies: frequencies))
            return (dropout(y), nil)
        }
        return (dropout(y), dropoutEmb.sharedByTheBatch(positionTable(length: t)))
    }
}
