import Tensor

/// NeMo's `MultiMLMLoss`: NLL of the target tokens at masked token positions, averaged over all
/// masked tokens of the batch and over books. A token is masked when the mean of its
/// `combine` frame-mask values exceeds `threshold` (7 of 8 frames for 0.8).
public struct MultiMLMLoss {
    public let config: LossConfig

    public init(config: LossConfig) { self.config = config }

    /// Token mask [B·T′] (flat) from the frame mask [B, T].
    public func tokenMask(frameMask: Tensor) -> [Bool] {
        let (b, t) = (frameMask.shape[0], frameMask.shape[1])
        let k = config.combineTimeSteps
        let tokens = t / k
        var mask = [Bool](repeating: false, count: b * tokens)
        for bi in 0..<b {
            for j in 0..<tokens {
                var s: Float = 0
                for i in 0..<k { s += frameMask.data[bi * t + j * k + i] }
                mask[bi * tokens + j] = s / Float(k) > config.maskThreshold
            }
        }
        return mask
    }

    /// Loss from log-probabilities of the selected tokens: `logProbs` is [R·N, V] for R masked
    /// tokens, `targets` the [R·N] token ids in the same order. Zero with no masked token.
    public func callAsFunction(logProbs: Tensor, targets: [Int]) -> Tensor {
        logProbs.nllLoss(rows: Array(0..<targets.count), targets: targets)
    }
}
