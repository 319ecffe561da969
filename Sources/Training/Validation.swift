import Basics
import Config
import DataLoading
import Audio
import Distributed
import Foundation
import Model

/// Masked-token loss and accuracy over a validation set in evaluation mode, over all its masked
/// tokens (`mask_draws` fixed masks per utterance), with the baselines a model that ignores its
/// input would reach and standard errors. Augmentation and masks come from fixed per-batch
/// generators (draw d uses epoch d), so two validations of the same weights agree: the trainer
/// validates this way, and `nest-train validate` scores any weights (NeMo's included) the same.
public enum Validation {
    /// The metrics summed over every draw and batch and over the ranks of `group` (rank r
    /// evaluates batches r, r + N, …: whole batches, so each is what one process makes).
    static func evaluate(_ loader: BatchLoader, step: TrainingStep, group: ProcessGroup, classes: Int,
                         reportSkipped: (Batch) -> Void) throws -> StepMetrics {
        var local = StepMetrics()
        for draw in 0..<loader.settings.maskDraws {
            for index in stride(from: group.rank, to: loader.batchesPerEpoch, by: group.size) {
                // Errors propagate as in training (skip_bad_audio: false makes a bad file fatal).
                let batch = try loader.batch(at: DataPosition(epoch: draw, index: index))
                if draw == 0 { reportSkipped(batch) }
                local += step.evaluate(batch)
            }
        }
        return local.summedForValidation(over: group, classes: classes)
    }

    /// The validation row of metrics.jsonl (and TensorBoard) for `total` at `step`.
    static func row(step: Int, _ total: StepMetrics, settings: RunConfig.Data, classes: Int) -> MetricsRow {
        let t = total.targets
        var row = MetricsRow(step: step)
        for (key, value) in [("val_loss", loss(total)), ("val_loss_se", t.lossError), ("val_masked_acc", total.maskedAccuracy), ("val_masked_acc_se", t.accuracyError),
                             ("val_prior_acc", t.priorAccuracy), ("val_prior_acc_se", t.priorAccuracyError), ("val_target_entropy", t.entropy),
                             ("val_target_entropy_se", t.entropyError), ("val_info_gain", t.informationGain), ("val_info_gain_se", t.informationGainError),
                             ("val_nonsilent_acc", t.nonMajorityAccuracy), ("val_majority_share", t.majorityShare),
                             ("val_codebook_usage", t.codebookUsage(classes: classes))] {
            row.add(key, value)
        }
        row.add("val_masked_tokens", total.maskedTokens)
        row.add("val_mask_draws", settings.maskDraws)
        row.add("val_augmented", settings.augmentation != nil)
        return row
    }

    /// NaN without a masked token (nothing to score).
    static func loss(_ total: StepMetrics) -> Double { total.maskedTokens > 0 ? total.loss : .nan }

    /// The log line of one validation.
    static func summary(step: Int, _ total: StepMetrics, settings: RunConfig.Data) -> String {
        let t = total.targets
        return String(format: "step %d: val_loss %.4f ± %.4f vs target entropy %.4f ± %.4f (information gain %.4f ± %.4f); "
                      + "val_masked_acc %.4f ± %.4f vs prior %.4f ± %.4f; %d masked tokens%@",
                      step, loss(total), t.lossError, t.entropy, t.entropyError, t.informationGain, t.informationGainError,
                      total.maskedAccuracy, t.accuracyError, t.priorAccuracy, t.priorAccuracyError, total.maskedTokens,
                      settings.augmentation == nil ? ", clean" : ", augmented")
    }

    /// Scores `model` on `config`'s validation set on one process: the JSON row, and the log line.
    public static func score(_ model: NESTModel, config: RunConfig, log: @escaping (String) -> Void) throws -> (json: String, summary: String) {
        guard let settings = config.validation else { throw NestError("the config has no model.validation_ds to validate on") }
        let frontEnd = FilterbankFeatures(settings: config.frontEnd)
        let loader = try BatchLoader(settings: settings, frontEnd: frontEnd, masks: BlockMaskSampler(model: config.model),
                                     sampleRate: config.sampleRate, seed: config.seed, training: false, report: log)
        let step = TrainingStep(model: model, config: config)
        let classes = config.model.quantizer.numClasses
        let total = try evaluate(loader, step: step, group: .single, classes: classes) { batch in
            for s in batch.skipped { log("skipped: \(s)") }
        }
        return (row(step: 0, total, settings: settings, classes: classes).json, summary(step: 0, total, settings: settings))
    }
}
