import NN
import Tensor

/// NeMo's `MultiSoftmaxDecoder`: one kernel-1 Conv1d d → V·N (weight [V·N, d, 1]) and a
/// log-softmax over the V classes of each of the N books (channel index c·N + h).
public final class MultiSoftmaxDecoder: Module {
    public let config: DecoderConfig
    /// NeMo's `decoder_layers`, a sequence of one kernel-1 convolution.
    let decoderLayers: [PointwiseConv1d]
    public var projection: PointwiseConv1d { decoderLayers[0] }

    public init(config: DecoderConfig, rng: RandomGenerator) {
        self.config = config
        let outputs = config.numClasses * config.numDecoders
        let projection = PointwiseConv1d(inputChannels: config.featIn, outputChannels: outputs, bias: config.useBias, rng: rng)
        // NeMo initialises the weight xavier-uniform (fan_in d, fan_out V·N); the bias keeps
        // PyTorch's default.
        Initialization.xavierUniform(projection.weight, fanIn: config.featIn, fanOut: outputs, rng: rng)
        decoderLayers = [projection]
        super.init()
        registerChildren()
    }

    /// encoded [R, D] (any leading shape) → log-probabilities [R·N, V], row r·N + h for book h.
    public func callAsFunction(_ encoded: Tensor) -> Tensor {
        let rows = encoded.count / encoded.shape[encoded.rank - 1]
        let (v, n) = (config.numClasses, config.numDecoders)
        let logits = projection(encoded).reshaped([rows, v, n])
        let byBook = n == 1 ? logits.reshaped([rows, v]) : logits.permuted([0, 2, 1]).reshaped([rows * n, v])
        return byBook.logSoftmax()
    }
}
