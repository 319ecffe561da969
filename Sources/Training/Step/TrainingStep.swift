import Foundation
import Model
import NN
import Tensor

/// One step of NEST training, written once: the training loop, validation and `bench` all run
/// it. A step is a window of micro-batches (`trainer.accumulate_grad_batches`): forward and
/// backward of each, then one AdamW update, as NeMo's `training_step` plus what Lightning does
/// around it (accumulation, the non-finite check, clipping, the optimizer and scheduler step).
///
/// The seams the distributed work fills are marked: where gradients are complete (bucketed
/// all-reduce), where metrics are reduced (global token counts), where the decision to skip a
/// step is taken (all ranks agree).
public final class TrainingStep {
    public let model: NESTModel
    public let optimizer: AdamW
    let schedule: LearningRateSchedule
    let accumulation: Int
    let clipNorm: Double

    public init(model: NESTModel, optimizer: AdamW, schedule: LearningRateSchedule, accumulation: Int, clipNorm: Double) {
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.accumulation = accumulation
        self.clipNorm = clipNorm
    }

    public convenience init(model: NESTModel, config: RunConfig) {
        self.init(model: model,
                  optimizer: AdamW(parameters: model.trainableParameters(),
                                   settings: .init(betas: config.betas, eps: config.eps, weightDecay: config.weightDecay)),
                  schedule: config.schedule, accumulation: config.accumulateGradBatches, clipNorm: config.gradientClipVal)
    }

    public enum Outcome: Equatable {
        /// The weights moved: update number, learning rate, gradient norm before clipping.
        case updated(update: Int, lr: Double, gradNorm: Double)
        /// A non-finite loss or gradient: no update, gradients dropped, BatchNorm statistics restored.
        case skipped
    }

    /// Trains on `window` (its non-empty batches) as update number `update` (1-based).
    public func train(_ window: [Batch], update: Int) -> (StepMetrics, Outcome) {
        var metrics = StepMetrics()
        let snapshot = BufferSnapshot(model)
        model.train()
        for batch in window where !batch.isEmpty {
            let t0 = now()
            let result = forward(batch, into: &metrics)
            let t1 = now()
            let scaled = accumulation == 1 ? result.loss : result.loss * (1 / Float(accumulation))
            if result.maskedTokens > 0 { scaled.backward() }
            metrics.forwardSeconds += t1 - t0
            metrics.backwardSeconds += now() - t1
        }
        let t2 = now()
        // Seam: gradients are complete here (one rank: nothing to reduce).
        let parameters = optimizer.parameters.map(\.tensor)
        // Seam: metrics are reduced here (one rank: they already are).
        // One pass over the gradients: the norm is non-finite when any element is.
        let gradNorm = Gradients.globalNorm(parameters)
        // Seam: the decision to skip.
        guard metrics.loss.isFinite, gradNorm.isFinite else {
            Gradients.zero(parameters)
            snapshot.restore()
            return (metrics, .skipped)
        }
        if clipNorm > 0 { Gradients.clip(parameters, maxNorm: clipNorm, norm: gradNorm) }
        let lr = schedule.rate(forUpdate: update)
        optimizer.update(lr: lr)
        Gradients.zero(parameters)
        BufferPool.shared.endStep()
        metrics.updateSeconds = now() - t2
        return (metrics, .updated(update: update, lr: lr, gradNorm: gradNorm))
    }

    /// The loss and metrics of `batch` in evaluation mode, without recording gradients.
    public func evaluate(_ batch: Batch) -> StepMetrics {
        var metrics = StepMetrics()
        guard !batch.isEmpty else { return metrics }
        model.eval()
        defer { model.train() }
        let t0 = now()
        withoutGrad { _ = forward(batch, into: &metrics) }
        metrics.forwardSeconds = now() - t0
        BufferPool.shared.endStep()
        return metrics
    }

    private func forward(_ batch: Batch, into metrics: inout StepMetrics) -> NESTModel.StepResult {
        let result = model.maskedTokenLoss(clean: batch.clean, noisy: batch.noisy, noisyLengths: batch.lengths, frameMask: batch.frameMask)
        metrics.add(result, books: model.config.quantizer.numBooks)
        metrics.utterances += batch.utterances
        metrics.audioSeconds += batch.audioSeconds
        return result
    }

    private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}

/// Copies of the model's buffers (BatchNorm statistics) to undo a step that went non-finite.
struct BufferSnapshot {
    private var saved: [(StateValue, [Float], [Int64])] = []
    init(_ model: Module) {
        for e in model.stateDict() where !e.isParameter {
            switch e.value {
            case .float32(let t): saved.append((e.value, t.array, []))
            case .int64(let t): saved.append((e.value, [], t.values))
            case .float64: break
            }
        }
    }
    func restore() {
        for (value, floats, ints) in saved {
            switch value {
            case .float32(let t): floats.withUnsafeBufferPointer { t.assign($0) }
            case .int64(let t): t.values = ints
            case .float64: break
            }
        }
    }
}
