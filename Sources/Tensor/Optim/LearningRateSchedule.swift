import Foundation

/// NeMo's learning-rate schedules, as functions of PyTorch's `last_epoch` (the number of
/// scheduler steps taken so far). Optimizer update n (1-based) runs with `lastEpoch = n − 1`.
public enum LearningRateSchedule: Equatable {
    /// `NoamAnnealing`: scale·d^−½·min(s^−½, s·w^−3/2) with s = max(1, lastEpoch); after the
    /// warm-up the rate is floored at `minLR`.
    case noam(scale: Double, dModel: Int, warmupSteps: Int, minLR: Double)
    /// `CosineAnnealing` with linear warm-up: lr·(s+1)/(w+1) while s ≤ w, then a half cosine
    /// from lr to `minLR` over the remaining steps up to `maxSteps`, `minLR` after it.
    case cosine(lr: Double, warmupSteps: Int, maxSteps: Int, minLR: Double)
    case constant(lr: Double)

    public func rate(lastEpoch: Int) -> Double {
        switch self {
        case let .noam(scale, dModel, warmup, minLR):
            let s = Double(max(1, lastEpoch))
            let lr = scale * pow(Double(dModel), -0.5) * min(pow(s, -0.5), s * pow(Double(warmup), -1.5))
            return lastEpoch > warmup ? max(lr, minLR) : lr
        case let .cosine(lr, warmup, maxSteps, minLR):
            if warmup > 0 && lastEpoch <= warmup { return lr * Double(lastEpoch + 1) / Double(warmup + 1) }
            if lastEpoch > maxSteps { return minLR }
            let decaySteps = Double(max(maxSteps - warmup, 1))
            let progress = Double(lastEpoch - warmup) / decaySteps
            return (lr - minLR) * 0.5 * (1 + cos(Double.pi * progress)) + minLR
        case let .constant(lr):
            return lr
        }
    }

    /// The rate for optimizer update number `update` (1-based).
    public func rate(forUpdate update: Int) -> Double { rate(lastEpoch: update - 1) }
}
