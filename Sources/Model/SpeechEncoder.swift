import NN
import Tensor

/// What NEST needs of an encoder, whichever NeMo class it is (`ConformerEncoder`,
/// `ASRTransformerEncoder`, `TransformerEncoder`): features [B, F, T] with valid lengths in, [B, T′, D] out.
public protocol SpeechEncoder: Module {
    var config: EncoderConfig { get }
    /// NeMo's `pre_encode`: features [B, F, T] with valid lengths → [B, T′, D] and T′ lengths.
    func subsample(_ features: Tensor, lengths: [Int]) -> (Tensor, [Int])
    /// Everything after `pre_encode`. `captureLayers`: indices of layers whose outputs to keep
    /// (−1: the subsampled input after xscale, the probe's layer 0).
    func encode(subsampled: Tensor, lengths: [Int], captureLayers: Set<Int>) -> EncoderOutput
}

extension SpeechEncoder {
    public func callAsFunction(_ features: Tensor, lengths: [Int], captureLayers: Set<Int> = []) -> EncoderOutput {
        let (subsampled, encodedLengths) = subsample(features, lengths: lengths)
        return encode(subsampled: subsampled, lengths: encodedLengths, captureLayers: captureLayers)
    }
}

public struct EncoderOutput {
    /// [B, T′, D]
    public let encoded: Tensor
    public let lengths: [Int]
    /// Outputs of the requested layers, [B, T′, D] each (key −1: the subsampling output).
    public let layerOutputs: [Int: Tensor]
}

/// The encoder of `config.architecture`, its weights drawn from `rng` and its dropout masks
/// keyed by `dropoutKeys` (a model's, shared with its other modules); an encoder built alone
/// keys its own from `rng`'s state, without drawing from it.
public func makeEncoder(_ config: EncoderConfig, rng: RandomGenerator, dropoutKeys: DropoutKeys? = nil) -> any SpeechEncoder {
    let keys = dropoutKeys ?? DropoutKeys(seed: rng.derived(0x5EED_D809).next())
    switch config.architecture {
    case .conformer, .asrTransformer: return ConformerEncoder(config: config, rng: rng, keys: keys)
    case .transformer: return TransformerEncoder(config: config, rng: rng, keys: keys)
    }
}
