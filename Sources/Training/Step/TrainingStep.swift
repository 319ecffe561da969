import Config
import DataLoading
import Distributed
import Foundation
import Model
import NN
import Tensor

/// One step of NEST training, written once: the training loop, validation and `bench` all run
/// it, on one process or many. A step is a window of micro-batches (`trainer.accumulate_grad_batches`):
/// forward and backward of each, then one AdamW update, as NeMo's `training_step` plus what
/// Lightning does around it (accumulation, the non-finite check, clipping, the optimizer and
/// scheduler step).
///
/// With several processes (`group`) each holds its rows of every global micro-batch and the
/// step equals one process holding them all: BatchNorm statistics are summed across processes,
/// every process pads to the global length, dropout is keyed by global row, the loss is
/// normalised by the masked tokens of the whole window on all processes (NEST averages over
/// all masked tokens of the batch) and the gradients are summed. Every process joins every
/// collective, whatever its share holds (no rows, no masked tokens), and every decision
/// (skip a non-finite step, stop) is taken on summed values, so all take it alike.
public final class TrainingStep {
    public let model: NESTModel
    public let optimizer: AdamW
    public let group: ProcessGroup
    let schedule: LearningRateSchedule
    let accumulation: Int
    let clipNorm: Double
    private let batchNorms: [BatchNorm1d]
    private let buckets: GradientBuckets?

    public init(model: NESTModel, optimizer: AdamW, schedule: LearningRateSchedule, accumulation: Int, clipNorm: Double,
                group: ProcessGroup = .single) {
        self.model = model
        self.optimizer = optimizer
        self.schedule = schedule
        self.accumulation = accumulation
        self.clipNorm = clipNorm
        self.group = group
        batchNorms = model.modules(of: BatchNorm1d.self)
        buckets = group.isDistributed ? GradientBuckets(parameters: optimizer.parameters.map(\.tensor), group: group) : nil
        if group.isDistributed {
            let sync = BatchNormSync { group.sum($0) }
            for bn in batchNorms { bn.sync = sync }
        }
    }

    public convenience init(model: NESTModel, config: RunConfig, group: ProcessGroup = .single) {
        self.init(model: model,
                  optimizer: AdamW(parameters: model.trainableParameters(),
                                   settings: .init(betas: config.betas, eps: config.eps, weightDecay: config.weightDecay)),
                  schedule: config.schedule, accumulation: config.accumulateGradBatches, clipNorm: config.gradientClipVal, group: group)
    }

    public enum Outcome: Equatable {
        /// The weights moved: update number, learning rate, gradient norm before clipping.
        case updated(update: Int, lr: Double, gradNorm: Double)
        /// A non-finite loss or gradient: no update, gradients dropped, BatchNorm statistics restored.
        case skipped
    }

    /// Trains on `window` (this process's share of each micro-batch) as update number `update`
    /// (1-based). `stopRequested` is asked once backward is done, whether this process wants to
    /// stop after the step; the metrics say whether any process wanted it.
    public func train(_ window: [Batch], update: Int, stopRequested: () -> Bool = { false }) -> (StepMetrics, Outcome) {
        var metrics = StepMetrics()
        let snapshot = BufferSnapshot(model)
        model.train()
        // Masks are known before the forward: the window's masked tokens over all processes
        // normalise the loss, and each micro-batch is padded to its longest share.
        let tokens = window.map { $0.isEmpty ? 0 : model.loss.tokenMask(frameMask: $0.frameMask).reduce(0) { $1 ? $0 + 1 : $0 } }
        let totalTokens = Int(group.sum([Int64(tokens.reduce(0, +))])[0])
        let frames = group.max(window.map { Int64($0.isEmpty ? 0 : $0.clean.shape[2]) }).map { Int($0) }
        buckets?.begin()
        for (k, share) in window.enumerated() {
            let t0 = MonotonicClock.seconds
            model.dropoutKeys.begin(update: update, microBatch: k, rows: share.slots)
            let last = k == window.count - 1
            if share.isEmpty {
                // No rows here: join the BatchNorm sums the others make.
                for bn in batchNorms { bn.joinWithoutRows() }
            } else {
                let batch = share.padded(toFrames: frames[k], maskFrames: model.config.maskFrames(frames[k]))
                let result = forward(batch, into: &metrics)
                let t1 = MonotonicClock.seconds
                metrics.forwardSeconds += t1 - t0
                let observer = last ? buckets : nil
                if tokens[k] > 0 {
                    // Σ NLL / (all masked tokens × books): this share's mean, weighted by its tokens.
                    let loss = tokens[k] == totalTokens ? result.loss : result.loss * (Float(tokens[k]) / Float(totalTokens))
                    loss.backward(seed: Tensor(repeating: 1, shape: loss.shape), observer: observer)
                } else if totalTokens > 0, group.isDistributed {
                    // No masked token here, but BatchNorm ties these rows to the others' loss:
                    // its gradient reaches them through the summed statistics.
                    result.encoded.backward(seed: Tensor(zeros: result.encoded.shape), observer: observer)
                }
                metrics.backwardSeconds += MonotonicClock.seconds - t1
            }
            // Backward sums this process still owes (its backward did not reach them), or, when
            // no process has a masked token, none at all.
            for bn in batchNorms.reversed() { totalTokens > 0 ? bn.joinOwedBackwards() : bn.sync?.forgiveOwedBackwards() }
        }
        let t2 = MonotonicClock.seconds
        // Without a masked token anywhere no process has a gradient: nothing to sum.
        if let buckets, totalTokens > 0 {
            buckets.finish()
            metrics.communicationSeconds = buckets.communicationSeconds
            metrics.exposedCommunicationSeconds = buckets.exposedSeconds
        }
        metrics = metrics.summed(over: group, stop: stopRequested())
        // The gradient norm is non-finite when any element is. The sums are identical on every
        // process, so are the norm and the decisions below.
        let lr = schedule.rate(forUpdate: update)
        guard metrics.loss.isFinite, let gradNorm = optimizer.step(lr: lr, clipNorm: clipNorm) else {
            Gradients.zero(optimizer.parameters.map(\.tensor))
            snapshot.restore()
            return (metrics, .skipped)
        }
        Device.default.backend.endStep()
        metrics.updateSeconds = MonotonicClock.seconds - t2
        return (metrics, .updated(update: update, lr: lr, gradNorm: gradNorm))
    }

    /// The loss and metrics of `batch` in evaluation mode, without recording gradients (one
    /// process; evaluation needs no other).
    public func evaluate(_ batch: Batch) -> StepMetrics {
        var metrics = StepMetrics()
        guard !batch.isEmpty else { return metrics }
        model.eval()
        defer { model.train() }
        let t0 = MonotonicClock.seconds
        withoutGrad { _ = forward(batch, into: &metrics) }
        metrics.forwardSeconds = MonotonicClock.seconds - t0
        Device.default.backend.endStep()
        return metrics
    }

    private func forward(_ batch: Batch, into metrics: inout StepMetrics) -> NESTModel.StepResult {
        let result = model.maskedTokenLoss(clean: batch.clean, noisy: batch.noisy, noisyLengths: batch.lengths, frameMask: batch.frameMask)
        if result.maskedTokens > 0 { metrics.add(result, books: model.config.quantizer.numBooks) }
        metrics.utterances += batch.utterances
        metrics.audioSeconds += batch.audioSeconds
        return result
    }
}

/// Copies of the model's buffers (BatchNorm statistics) to undo a step that went non-finite,
/// kept where the buffers live: on a GPU, copies on the device, so a step reads nothing back
/// for them.
struct BufferSnapshot {
    private var saved: [(StateValue, Tensor?, [Int64])] = []
    init(_ model: Module) {
        for e in model.stateDict() where !e.isParameter {
            switch e.value {
            case .float32(let t): saved.append((e.value, t.copy(), []))
            case .int64(let t): saved.append((e.value, nil, t.values))
            case .float64: break
            }
        }
    }
    func restore() {
        for (value, copy, ints) in saved {
            switch value {
            case .float32(let t): if let copy { t.assign(copy) }
            case .int64(let t): t.values = ints
            case .float64: break
            }
        }
    }
}
