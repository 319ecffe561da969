import Audio
import Foundation
import Model
import NN
import Tensor
import Formats

/// The training loop: AdamW with the configured schedule, gradient accumulation and clipping,
/// validation, metrics, checkpoints on schedule and on SIGINT/SIGTERM, exact resume.
public final class Trainer {
    public let config: RunConfig
    public let model: NESTModel
    let frontEnd: FilterbankFeatures
    let optimizer: AdamW
    let schedule: LearningRateSchedule
    let folder: RunFolder
    let log: (String) -> Void
    public private(set) var state = TrainingState()
    var valLosses: [Int: Double] = [:]

    public enum ResumeMode { case auto, fresh, from(String) }

    public init(config: RunConfig, resume: ResumeMode, log: @escaping (String) -> Void) throws {
        self.config = config
        self.log = log
        (model, frontEnd) = ModelFactory.make(config)
        optimizer = AdamW(parameters: model.trainableParameters(),
                          settings: .init(betas: config.betas, eps: config.eps, weightDecay: config.weightDecay))
        schedule = config.schedule
        var runPath = config.runDirectory
        if case .fresh = resume, FileManager.default.fileExists(atPath: runPath) {
            // Never delete an old run: a fresh start gets a new folder.
            var n = 1
            while FileManager.default.fileExists(atPath: "\(runPath)-\(n)") { n += 1 }
            runPath = "\(runPath)-\(n)"
        }
        folder = RunFolder(path: runPath)
        try folder.create()
        state.dropoutRNG = model.dropoutRNG.stateWords
        var restored = false
        switch resume {
        case .from(let path): try restore(path); restored = true
        case .auto where config.resumeIfExists: restored = try resumeNewestValid()
        default: break
        }
        // Rows logged after the restored step (or all of them, when a run died before its
        // first checkpoint) describe work that is being redone.
        try folder.truncateMetrics(after: restored ? state.step : -1)
    }

    /// The newest checkpoint that loads cleanly; damaged ones are reported and passed over.
    private func resumeNewestValid() throws -> Bool {
        for c in folder.checkpoints() {
            do {
                try restore(c.path)
                return true
            } catch {
                log("warning: skipping damaged checkpoint \(c.path): \(error)")
            }
        }
        return false
    }

    private func restore(_ path: String) throws {
        state = try Checkpoint.read(from: path, model: model, optimizer: optimizer)
        model.dropoutRNG.restore(state: state.dropoutRNG)
        for c in folder.checkpoints() where c.step <= state.step {
            if let v = try? CheckpointFile(c.path).valLoss() { valLosses[c.step] = v }
        }
        log("resumed from \(path) at step \(state.step)")
    }

    public var runFolder: String { folder.path }

    /// Trains until `trainer.max_steps` or a stop request; returns the path of the last checkpoint.
    @discardableResult
    public func run(stopRequested: @escaping () -> Bool = { false }) throws -> String? {
        let loader = try BatchLoader(settings: config.train, frontEnd: frontEnd, masking: model.maskProcessor,
                                     sampleRate: config.sampleRate, seed: config.seed, training: true)
        for w in loader.manifest.warnings { log("warning: \(w)") }
        log("train: \(loader.manifest.entries.count) utterances (\(String(format: "%.1f", loader.manifest.totalDuration / 60)) min), "
            + "\(loader.manifest.droppedTooShort + loader.manifest.droppedTooLong) dropped by duration, \(loader.batchesPerEpoch) batches per epoch")
        let validation = try config.validation.map {
            try BatchLoader(settings: $0, frontEnd: frontEnd, masking: model.maskProcessor, sampleRate: config.sampleRate, seed: config.seed, training: false)
        }
        let valInterval = config.valCheckEpochFraction.map { max(1, Int(Double(loader.batchesPerEpoch) * $0)) } ?? config.valCheckInterval
        let checkpointInterval = config.everyNTrainSteps > 0 ? config.everyNTrainSteps : valInterval
        let prefetcher = BatchPrefetcher(loader: loader, start: state.position)
        defer { prefetcher.stop() }
        let metrics = try MetricsWriter(path: folder.metricsPath)
        let progress = ProgressLine(total: config.maxSteps)
        var lastCheckpoint: String? = folder.checkpoints().first?.path
        var emptyBatches = 0
        // The starting point of a new run, so that the curve has its origin. Validation draws
        // from its own generators, so this does not change the training run.
        if let validation, state.step == 0 {
            let (valLoss, valAccuracy) = try validate(validation)
            try metrics.append(["step": 0, "val_loss": valLoss, "val_masked_acc": valAccuracy])
            log(String(format: "step 0: val_loss %.4f, val_masked_acc %.4f", valLoss, valAccuracy))
        }
        model.train()
        while state.step < config.maxSteps && !stopRequested() {
            let started = Date()
            var lossSum = 0.0, accuracySum = 0.0, tokens = 0, codes = Set<Int>(), utterances: [String] = [], seconds = 0.0
            var dataWait = 0.0
            let snapshot = BufferSnapshot(model)
            for _ in 0..<config.accumulateGradBatches {
                let waitStart = Date()
                let batch = try prefetcher.next()
                dataWait += Date().timeIntervalSince(waitStart)
                state.position = loader.next(after: batch.position)
                reportSkipped(batch)
                if batch.isEmpty {
                    emptyBatches += 1
                    if emptyBatches >= 20 { throw NestError("20 batches in a row had no readable audio; stopping (see the skipped files above)") }
                    continue
                }
                emptyBatches = 0
                let result = model.maskedTokenLoss(clean: batch.clean, noisy: batch.noisy, noisyLengths: batch.lengths, frameMask: batch.frameMask)
                let scaled = config.accumulateGradBatches == 1 ? result.loss : result.loss * (1 / Float(config.accumulateGradBatches))
                if result.maskedTokens > 0 { scaled.backward() }
                lossSum += Double(result.loss.scalar) * Double(result.maskedTokens)
                accuracySum += result.maskedAccuracy * Double(result.maskedTokens)
                tokens += result.maskedTokens
                for (i, m) in result.tokenMask.enumerated() where m { codes.insert(result.targets[i * config.model.quantizer.numBooks]) }
                utterances += batch.utterances
                seconds += batch.audioSeconds
            }
            // Nothing readable in this window: not a step (no update, no decay, no count).
            if utterances.isEmpty { continue }
            let parameters = optimizer.parameters.map(\.tensor)
            let loss = tokens > 0 ? lossSum / Double(tokens) : 0
            // One pass over the gradients: the norm is non-finite when any element is.
            let gradNorm = Gradients.globalNorm(parameters)
            guard loss.isFinite, gradNorm.isFinite else {
                Gradients.zero(parameters)
                snapshot.restore()
                state.skippedSteps += 1
                state.consecutiveBadSteps += 1
                log("non-finite loss or gradient at step \(state.step + 1), step skipped; utterances: \(utterances.joined(separator: ", "))")
                if state.consecutiveBadSteps >= config.maxConsecutiveBadSteps {
                    throw NestError("\(state.consecutiveBadSteps) non-finite steps in a row; stopping. The last good checkpoint is intact: \(lastCheckpoint ?? "none")")
                }
                continue
            }
            state.consecutiveBadSteps = 0
            if config.gradientClipVal > 0 { Gradients.clip(parameters, maxNorm: config.gradientClipVal, norm: gradNorm) }
            let lr = schedule.rate(forUpdate: state.step + 1)
            optimizer.update(lr: lr)
            Gradients.zero(parameters)
            BufferPool.shared.endStep()
            state.step += 1
            state.audioSeconds += seconds
            state.dropoutRNG = model.dropoutRNG.stateWords
            let stepSeconds = Date().timeIntervalSince(started)
            let classes = Double(config.model.quantizer.numClasses)
            if state.step % config.logEveryNSteps == 0 || state.step == config.maxSteps {
                try metrics.append([
                    "step": state.step, "loss": loss, "masked_acc": tokens > 0 ? accuracySum / Double(tokens) : 0, "lr": lr,
                    "grad_norm": gradNorm, "masked_tokens": tokens, "audio_seconds": state.audioSeconds,
                    "step_seconds": stepSeconds, "data_wait_seconds": dataWait, "codebook_usage": Double(codes.count) / classes,
                ])
            }
            progress.update(step: state.step, loss: loss, accuracy: tokens > 0 ? accuracySum / Double(tokens) : 0, lr: lr,
                            audioPerSecond: seconds / max(stepSeconds, 1e-9), log: log)
            var validated = false
            if let validation, state.step % valInterval == 0 || state.step == config.maxSteps {
                let (valLoss, valAccuracy) = try validate(validation)
                state.valLoss = valLoss
                valLosses[state.step] = valLoss
                validated = true
                try metrics.append(["step": state.step, "val_loss": valLoss, "val_masked_acc": valAccuracy])
                log(String(format: "step %d: val_loss %.4f, val_masked_acc %.4f", state.step, valLoss, valAccuracy))
            }
            if state.step % checkpointInterval == 0 || state.step == config.maxSteps || stopRequested() {
                if !validated { state.valLoss = nil }
                lastCheckpoint = try saveCheckpoint() ?? lastCheckpoint
            }
        }
        if stopRequested(), lastCheckpoint.map({ !$0.hasSuffix(String(format: "step-%08d.h5", state.step)) }) ?? true {
            lastCheckpoint = try saveCheckpoint() ?? lastCheckpoint
        }
        progress.finish(log: log)
        log(String(format: "done: %d steps, %.1f min of audio seen, %d steps skipped; run folder %@", state.step, state.audioSeconds / 60, state.skippedSteps, folder.path))
        return lastCheckpoint
    }

    func saveCheckpoint() throws -> String? {
        let path = folder.checkpointPath(step: state.step)
        do {
            try Checkpoint.write(to: path, model: model, optimizer: optimizer, state: state, configYAML: config.document.root.yaml())
        } catch where config.continueOnCheckpointError {
            log("warning: \(error); training continues (exp_manager.continue_on_checkpoint_error)")
            return nil
        }
        folder.prune(valLosses: valLosses, topK: config.saveTopK)
        log("checkpoint: \(path)")
        return path
    }

    /// Masked-token loss and accuracy over the validation set in evaluation mode, weighted by
    /// masked tokens. Augmentation and masks come from fixed per-batch generators, so two
    /// validations of the same weights agree.
    /// Unreadable audio is reported the same way in training and validation.
    func reportSkipped(_ batch: Batch) {
        for s in batch.skipped { log("skipped: \(s)") }
    }

    func validate(_ loader: BatchLoader) throws -> (Double, Double) {
        model.eval()
        defer { model.train() }
        var lossSum = 0.0, accuracySum = 0.0, tokens = 0
        for index in 0..<loader.batchesPerEpoch {
            // Errors propagate as in training (skip_bad_audio: false makes a bad file fatal).
            let batch = try loader.batch(at: DataPosition(epoch: 0, index: index))
            reportSkipped(batch)
            if batch.isEmpty { continue }
            let r = withoutGrad { model.maskedTokenLoss(clean: batch.clean, noisy: batch.noisy, noisyLengths: batch.lengths, frameMask: batch.frameMask) }
            lossSum += Double(r.loss.scalar) * Double(r.maskedTokens)
            accuracySum += r.maskedAccuracy * Double(r.maskedTokens)
            tokens += r.maskedTokens
            BufferPool.shared.endStep()
        }
        return tokens > 0 ? (lossSum / Double(tokens), accuracySum / Double(tokens)) : (.nan, 0)
    }
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
