import Foundation
import NN
import Tensor

/// NeMo's `RelPositionalEncoding`: optional x·√d, dropout, and the sinusoid table for relative
/// positions r = T−1 … −(T−1) (rows in that order), computed in Float32 as torch does.
public final class RelPositionalEncoding: Module {
    let dModel: Int
    let xscale: Float?
    let dropout: Dropout
    /// Angular frequencies ω_k = exp(−2k·ln(10000)/d), rounded to Float32 like torch's table.
    let frequencies: [Float]

    public init(config: EncoderConfig, rng: RandomGenerator) {
        dModel = config.dModel
        xscale = config.xscaling ? Float(config.dModel).squareRoot() : nil
        dropout = Dropout(config.dropoutPreEncoder, keys: DropoutKeys(seed: 0))
        let factor = Float(-(log(10000.0) / Double(config.dModel)))
        frequencies = (0..<(config.dModel / 2)).map { k in Float(exp(Double(Float(2 * k) * factor))) }
        super.init()
        child("dropout", dropout)
    }

    /// [2T−1, D] table: row m is relative position T−1−m.
    public func positionTable(length t: Int) -> Tensor {
        Tensor.relativePositions(length: t, frequencies: frequencies)
    }

    /// Returns the scaled (and dropped-out) input and the position table.
    public func callAsFunction(_ x: Tensor) -> (Tensor, Tensor) {
        let scaled = xscale.map { x * $0 } ?? x
        return (dropout(scaled), positionTable(length: x.shape[1]))
    }
}
