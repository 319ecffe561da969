import Tensor

/// NeMo's `MultiMLMLoss`: NLL of the target tokens at masked token positions, averaged over all
/// masked tokens of the batch and over books. A token is masked when the mean of its
/// `combine` frame-mask values exceeds `threshold` (7 of 8 frames for 0.8).
public struct MultiMLMLoss {
    public let config: LossConfig

    public init(config: LossConfig) { self.config = config }

    /// Token mask [B·T′] (flat) from the frame mask [B, T].
    public func tokenMask(frameMask: FrameMask) -> [Bool] {
        frameMask.blockMeans(config.combineTimeSteps).map { $0 > config.maskThreshold }
    }

    /// Loss from log-probabilities of the selected tokens: `logProbs` is [R·N, V] for R masked
    /// tokens, `targets` the [R·N] token ids (as floats, on the same device) in the same order.
    /// Zero with no masked token.
    public func callAsFunction(logProbs: Tensor, targets: Tensor) -> Tensor {
        logProbs.nllLoss(targets: targets)
    }
}
