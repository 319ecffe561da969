import NN

/// Where NeMo's state dict keeps the subsampling of a `mask_position: post_conv` model: NeMo
/// wraps the encoder's `pre_encode` together with the masking module in a
/// `ConvFeatureMaksingWrapper` (NeMo's spelling) and registers that wrapper twice, as
/// `encoder.pre_encode` and as the model's `pre_encoder`. The same weights therefore appear
/// under `encoder.pre_encode.pre_encode.*` and `pre_encoder.pre_encode.*`, and the mask
/// embedding under `mask_processor`, `encoder.pre_encode.masking` and `pre_encoder.masking`.
/// Parameterless itself: it only names; `NESTModel` does the masking.
public final class ConvFeatureMaskingWrapper: Module {
    let preEncode: Module
    let masking: RandomBlockMasking

    public init(preEncode: Module, masking: RandomBlockMasking) {
        (self.preEncode, self.masking) = (preEncode, masking)
        super.init()
        registerChildren()
    }
}
