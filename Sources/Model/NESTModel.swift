import NN
import Tensor

/// NeMo's `EncDecDenoiseMaskedTokenPredModel`: the state-dict owner for the whole NEST model
/// (preprocessor buffers, encoder, quantizer, mask embedding, decoder) and its training loss.
public final class NESTModel: Module {
    public let config: NESTConfig
    public let preprocessor: Module
    public let encoder: any SpeechEncoder
    public let quantizer: RandomProjectionVectorQuantizer
    public let maskProcessor: RandomBlockMasking
    public let decoder: MultiSoftmaxDecoder
    public let loss: MultiMLMLoss
    /// Keys every dropout mask (a function of seed, update, micro-batch and global row).
    public let dropoutKeys: DropoutKeys

    /// `window` [400] and `filterbank` [1, F, 257] are the front end's buffers, stored under
    /// `preprocessor.featurizer.*` so the state dict is NeMo's.
    public init(config: NESTConfig, window: Tensor, filterbank: Tensor, seed: UInt64) {
        self.config = config
        let initRNG = RandomGenerator(seed: seed)
        dropoutKeys = DropoutKeys(seed: seed ^ 0x5EED_D809)
        preprocessor = Module()
        let featurizer = preprocessor.child("featurizer", Module())
        featurizer.buffer("window", .float32(window))
        featurizer.buffer("fb", .float32(filterbank))
        encoder = makeEncoder(config.encoder, rng: initRNG, dropoutKeys: dropoutKeys)
        quantizer = RandomProjectionVectorQuantizer(config: config.quantizer, rng: initRNG)
        maskProcessor = RandomBlockMasking(config: config.masking, rng: initRNG)
        decoder = MultiSoftmaxDecoder(config: config.decoder, rng: initRNG)
        loss = MultiMLMLoss(config: config.loss)
        super.init()
        // Declared in NeMo's attribute order, which is its state-dict order.
        registerChildren()
        if config.maskPosition == .postConv, let preEncode = encoder.child(named: "pre_encode") {
            let wrapper = ConvFeatureMaskingWrapper(preEncode: preEncode, masking: maskProcessor)
            encoder.replaceChild("pre_encode", with: wrapper)
            child("pre_encoder", wrapper)
        }
    }

    public struct StepResult {
        public let loss: Tensor
        /// Encoder output [B, T′, D] of the masked noisy features.
        public let encoded: Tensor
        /// Decoder log-probabilities of the masked tokens [M·N, V] (N codebooks per token).
        public let logProbs: Tensor
        /// Targets of the masked tokens, [M·N] in `logProbs`' row order (token ids as floats,
        /// on the device).
        public let maskedTargets: Tensor
        /// Which of the B·(T/k) token positions are masked (k = combine_time_steps).
        public let tokenMask: [Bool]
        public let maskedTokens: Int
    }

    /// The NEST objective for one batch: targets from clean features, the encoder on masked
    /// noisy features, the loss on masked tokens only (the decoder runs on those rows alone).
    /// `frameMask` is on `config.maskFrames` of the features' frames.
    ///
    /// With `mask_position: post_conv` (NeMo's `ConvFeatureMaksingWrapper`) the targets are the
    /// tokens of the subsampled clean features, and the mask replaces frames of the subsampled
    /// noisy ones; NeMo detaches that masked input, so the subsampling gets no gradient from the
    /// loss (its weights stay as they are: AdamW skips a parameter without a gradient).
    public func maskedTokenLoss(clean: Tensor, noisy: Tensor, noisyLengths: [Int], frameMask: FrameMask) -> StepResult {
        let targetsAll: Tensor, encoded: Tensor
        switch config.maskPosition {
        case .preConv:
            targetsAll = quantizer.tokens(clean)
            encoded = encoder(maskProcessor.apply(noisy, frameMask: frameMask), lengths: noisyLengths).encoded
        case .postConv:
            let (cleanFrames, noisyFrames, lengths) = withoutGrad {
                let c = encoder.subsample(clean, lengths: noisyLengths).0.transposed(1, 2)
                let (n, l) = encoder.subsample(noisy, lengths: noisyLengths)
                return (c, maskProcessor.apply(n.transposed(1, 2), frameMask: frameMask).transposed(1, 2), l)
            }
            targetsAll = quantizer.tokens(cleanFrames)
            encoded = encoder.encode(subsampled: noisyFrames, lengths: lengths, captureLayers: []).encoded
        }
        let tokenMask = loss.tokenMask(frameMask: frameMask)
        // Token j of utterance b is encoder frame j. With causal subsampling the encoder gives one
        // frame more than there are tokens (T/8 + 1); like NeMo's current MultiMLMLoss the loss
        // takes the first min(T′, T/8) of each, so that frame never enters it.
        let (b, frames, d) = (encoded.shape[0], encoded.shape[1], encoded.shape[2])
        let tokens = tokenMask.count / max(b, 1), usable = min(frames, tokens)
        let positions = tokenMask.indices.filter { tokenMask[$0] && $0 % tokens < usable }
        let n = config.quantizer.numBooks
        let selected = encoded.reshaped([-1, d]).gatherRows(positions.map { $0 / tokens * frames + $0 % tokens })
        let logProbs = decoder(selected)
        let targets = targetsAll.reshaped([-1, 1]).gatherRows(positions.flatMap { p in (0..<n).map { p * n + $0 } }).reshaped([-1])
        return StepResult(loss: loss(logProbs: logProbs, targets: targets), encoded: encoded, logProbs: logProbs,
                          maskedTargets: targets, tokenMask: tokenMask, maskedTokens: positions.count)
    }
}
