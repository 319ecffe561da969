import Distributed
import Foundation
import Model
import Tensor

/// What a step measured, as sums over its micro-batches, so that windows (and, later, ranks)
/// combine by adding.
public struct StepMetrics {
    /// Σ (batch loss × its masked tokens): the loss averages over all masked tokens of the step.
    public var lossSum = 0.0
    /// Masked targets whose argmax prediction is right, over all codebooks, and their count.
    public var correct = 0, predictions = 0
    public var maskedTokens = 0
    /// Codes of the first codebook among the masked targets (for codebook usage).
    public var codes = Set<Int>()
    /// Every masked target with its prediction and NLL, for validation's baselines.
    public var targets = TargetStatistics()
    /// "manifest:line" of every utterance in the step.
    public var utterances: [String] = []
    public var audioSeconds = 0.0
    /// Seconds the step waited for data, and spent in forward, backward and the update.
    public var dataWaitSeconds = 0.0, forwardSeconds = 0.0, backwardSeconds = 0.0, updateSeconds = 0.0
    /// Gradient summing across processes: all of it, and the part after backward ended.
    public var communicationSeconds = 0.0, exposedCommunicationSeconds = 0.0
    /// Whether any process asked to stop after this step.
    public var stopRequested = false

    public init() {}

    public var loss: Double { maskedTokens > 0 ? lossSum / Double(maskedTokens) : 0 }
    public var maskedAccuracy: Double { predictions > 0 ? Double(correct) / Double(predictions) : 0 }

    /// Combines two steps' (or windows', or ranks') measurements.
    public static func += (a: inout StepMetrics, b: StepMetrics) {
        a.lossSum += b.lossSum
        a.correct += b.correct
        a.predictions += b.predictions
        a.maskedTokens += b.maskedTokens
        a.codes.formUnion(b.codes)
        a.targets += b.targets
        a.utterances += b.utterances
        a.audioSeconds += b.audioSeconds
        a.dataWaitSeconds += b.dataWaitSeconds
        a.forwardSeconds += b.forwardSeconds
        a.backwardSeconds += b.backwardSeconds
        a.updateSeconds += b.updateSeconds
    }

    /// The metrics of all processes (loss, accuracy, tokens, audio), and whether any asked to
    /// stop: one sum, which every process joins each step. Timings stay this process's own;
    /// codebook usage and target statistics stay local.
    func summed(over group: ProcessGroup, stop: Bool) -> StepMetrics {
        var out = self
        out.stopRequested = stop
        guard group.isDistributed else { return out }
        let s = group.sum([lossSum, Double(correct), Double(predictions), Double(maskedTokens), audioSeconds, stop ? 1 : 0])
        out.lossSum = s[0]
        out.correct = Int(s[1])
        out.predictions = Int(s[2])
        out.maskedTokens = Int(s[3])
        out.audioSeconds = s[4]
        out.stopRequested = s[5] > 0
        return out
    }

    /// Distinct first-codebook targets of the step on all processes, over `classes` (every
    /// process must call it at the same steps).
    func codebookUsage(over group: ProcessGroup, classes: Int) -> Double {
        var seen = [Int64](repeating: 0, count: classes)
        for code in codes where code < classes { seen[code] = 1 }
        return Double(group.max(seen).reduce(0, +)) / Double(max(classes, 1))
    }

    /// Validation's sums over all processes: loss, accuracy, tokens, audio and every target
    /// statistic (per code counts as dense arrays of `classes`).
    func summedForValidation(over group: ProcessGroup, classes: Int) -> StepMetrics {
        guard group.isDistributed else { return self }
        var out = summed(over: group, stop: false)
        out.targets = targets.summed(over: group, classes: classes)
        return out
    }

    /// Adds one micro-batch's forward result (`books` codebooks per masked token).
    ///
    /// Targets, predictions and their log-probabilities are read in one copy from the device;
    /// the loss is their mean NLL, summed here in Double in row order.
    mutating func add(_ result: NESTModel.StepResult, books: Int) {
        let rows = result.maskedTargets.count
        let read = withoutGrad {
            Tensor.concat([result.maskedTargets, result.logProbs.rowArgmax(), result.logProbs.gatheringColumns(result.maskedTargets)], axis: 0).array
        }
        var nllSum = 0.0
        for i in 0..<rows {
            let target = Int(read[i]), best = Int(read[rows + i]), nll = -Double(read[2 * rows + i])
            nllSum += nll
            if best == target { correct += 1 }
            if i % books == 0 { codes.insert(target) }
            targets.add(target: target, prediction: best, nll: nll)
        }
        lossSum += rows > 0 ? nllSum / Double(rows) * Double(result.maskedTokens) : 0
        maskedTokens += result.maskedTokens
        predictions += rows
    }
}
