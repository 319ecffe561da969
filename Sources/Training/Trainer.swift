import Basics
import Interop
import DataLoading
import Audio
import Config
import Distributed
import Foundation
import Model
import NN
import Tensor

/// The training loop and nothing else: it takes windows of batches from the prefetcher, runs
/// `TrainingStep` on them, and schedules logging, validation and checkpoints (on schedule and on
/// SIGINT/SIGTERM), as Lightning owns NeMo's loop. Resume is exact.
///
/// On several processes every rank runs this loop in lock-step. Rank 0 alone owns the run
/// folder (checkpoints, metrics, the log) and restores, while the others wait without
/// spinning; validation batches are shared out among the ranks and their statistics summed.
/// Every decision that ends or skips a step is taken on values summed over all ranks, so no
/// rank is left waiting in a collective.
public final class Trainer {
    public let config: RunConfig
    public let model: NESTModel
    public let group: ProcessGroup
    let frontEnd: FilterbankFeatures
    let step: TrainingStep
    let folder: RunFolder
    /// Rank 0's hold on the run folder (one writer per folder); nil on the other ranks.
    private let lock: RunLock?
    let log: (String) -> Void
    public private(set) var state = TrainingState()
    /// Whether the last `run` ended on a stop request (of any rank) before max_steps.
    public private(set) var stoppedEarly = false
    var valLosses: [Int: Double] = [:]
    /// Batches in a row with no readable audio.
    private var emptyBatches = 0

    public enum ResumeMode { case auto, fresh, from(String) }

    public init(config: RunConfig, resume: ResumeMode, group: ProcessGroup = .single, log: @escaping (String) -> Void) throws {
        self.config = config
        self.group = group
        self.log = log
        // A model that cannot fit in host memory is refused before it is built; its batches,
        // once the data says how long they get (`run`).
        if let available = Self.availableMemory {
            try MemoryBudget(model: config.model, batch: 0, seconds: 0).check(available: available, what: "the model of \(config.document.file)")
        }
        (model, frontEnd) = ModelFactory.make(config)
        step = TrainingStep(model: model, config: config, group: group)
        var runPath = config.runDirectory
        if case .fresh = resume, group.isLeader, FileManager.default.fileExists(atPath: runPath) {
            // Never delete an old run: a fresh start gets a new folder.
            var n = 1
            while FileManager.default.fileExists(atPath: "\(runPath)-\(n)") { n += 1 }
            runPath = "\(runPath)-\(n)"
        }
        folder = RunFolder(path: runPath)
        guard group.isLeader else {
            // Rank 0 restores or initialises; everyone takes its state.
            lock = nil
            Replicas.broadcast(model: model, optimizer: step.optimizer, state: &state, group: group)
            return
        }
        try folder.create()
        lock = try RunLock(folder: folder.path, log: log)
        for (file, pid) in folder.removeStaleTemporaries() {
            log("removed \(file), a partial file left by process \(pid), which ended while writing it")
        }
        var restored = false
        switch resume {
        case .from(let path): try restore(path); restored = true
        case .auto where config.resumeIfExists: restored = try resumeNewestValid()
        default: break
        }
        // A new run may start from pretrained weights (NeMo's init_from_nemo_model); a resumed
        // one has its own in the checkpoint.
        if !restored {
            for source in config.initFrom {
                let (count, warnings) = try source.apply(to: model)
                for w in warnings { log("warning: \(w)") }
                log("initialised \(count) tensors from \(source.path) (fresh optimizer state; the run starts at step 0)")
            }
        }
        // Rows logged after the restored step (or all of them, when a run died before its
        // first checkpoint) describe work that is being redone.
        try folder.truncateMetrics(after: restored ? state.step : -1)
        if restored, let saved = state.globalBatchSize, saved != globalBatchSize {
            log("warning: the checkpoint was written with a global batch of \(saved) (\(state.worldSize ?? 1) × \(saved / max(state.worldSize ?? 1, 1))), "
                + "this run's is \(globalBatchSize) (\(group.size) × \(config.train.batchSize)): training continues at the same batch index, "
                + "but the batches hold other utterances than an uninterrupted run's")
        }
        Replicas.broadcast(model: model, optimizer: step.optimizer, state: &state, group: group)
    }

    /// What this process may still allocate where the run's tensors live: host memory on the
    /// CPU (and the checking device); nil on a GPU, whose allocator reports its own memory.
    static var availableMemory: Double? {
        Device.default === Device.cpu || Device.default === Device.checking ? MemoryBudget.availableHostBytes() : nil
    }

    /// Utterances per micro-batch over all ranks.
    var globalBatchSize: Int { config.train.batchSize * group.size }

    /// The newest checkpoint that loads cleanly; damaged ones (a broken seal, unreadable) are
    /// reported and passed over. One that reads correctly but holds another model stops the
    /// start: it is the run folder of another config, not a damaged one.
    private func resumeNewestValid() throws -> Bool {
        for c in folder.checkpoints() {
            do {
                try restore(c.path)
                return true
            } catch let mismatch as AnotherModelsRun {
                throw mismatch
            } catch {
                log("warning: skipping damaged checkpoint \(c.path): \(error)")
            }
        }
        return false
    }

    private func restore(_ path: String) throws {
        let checkpoint = try CheckpointFile(path)
        do {
            state = try Checkpoint.read(checkpoint, model: model, optimizer: step.optimizer)
        } catch let mismatch as StateDictMismatch {
            throw anotherModel(checkpoint, mismatch)
        }
        reportConfigChanges(since: try checkpoint.configYAML(), checkpoint: path)
        // Older checkpoints' validation losses rank them for keeping; each is verified before it
        // is read (the one just restored was, and its state holds its loss).
        if let v = state.valLoss { valLosses[state.step] = v }
        for c in folder.checkpoints() where c.step < state.step {
            if let v = try? CheckpointFile(c.path).valLoss() { valLosses[c.step] = v }
        }
        log("resumed from \(path) at step \(state.step)")
    }

    /// A run resumed under a changed config continues with the current one; the keys that
    /// changed are named, so that a new recipe silently continuing an old run is seen.
    private func reportConfigChanges(since yaml: String, checkpoint: String) {
        let changed = configChanges(since: yaml, checkpoint: checkpoint) { !$0.hasPrefix("exp_manager.") && $0 != "trainer.max_steps" }
        guard !changed.isEmpty else { return }
        log("warning: resuming \(checkpoint), whose config differs in \(changed); training continues with the current config (--fresh starts a new run)")
    }

    /// The leaves of the config stored in a checkpoint that differ from this run's (among the
    /// keys `relevant` keeps), as "key (old → new)", the first six and a count of the rest.
    private func configChanges(since yaml: String, checkpoint: String, relevant: (String) -> Bool) -> String {
        guard let document = try? ConfigDocument(text: yaml, file: checkpoint) else { return "" }
        // Both sides with absent keys at their class defaults: a checkpoint written before the
        // defaults were filled in differs only in what its config left out.
        let stored = ((try? ClassDefaults.filling(document)) ?? document).root.leaves
        let current = config.document.root.leaves
        let changed = Set(stored.keys).union(current.keys).sorted().filter { stored[$0] != current[$0] && relevant($0) }
        let shown = changed.prefix(6).map { "\($0) (\(stored[$0] ?? "absent") → \(current[$0] ?? "absent"))" }
        return shown.joined(separator: ", ") + (changed.count > 6 ? " and \(changed.count - 6) more" : "")
    }

    /// The error for a checkpoint that reads correctly but was written by another model: what
    /// differs (the tensor, the config keys) and how to go on. Nothing in the folder has changed.
    private func anotherModel(_ checkpoint: CheckpointFile, _ mismatch: StateDictMismatch) -> AnotherModelsRun {
        let shapes = switch (mismatch.found, mismatch.expected) {
        case let (found?, expected?): "\(mismatch.key) is \(found) there and \(expected) in this config's model"
        case let (found?, nil): "it has \(mismatch.key) \(found), which this config's model does not have"
        case let (nil, expected): "it lacks \(mismatch.key)\(expected.map { " \($0)" } ?? ""), which this config's model has"
        }
        let modelSections = ["model.train_ds.", "model.validation_ds.", "model.optim."]
        let keys = configChanges(since: (try? checkpoint.configYAML()) ?? "", checkpoint: checkpoint.path) { key in
            key.hasPrefix("model.") && !modelSections.contains { key.hasPrefix($0) }
        }
        return AnotherModelsRun(description: "\(folder.path) holds a run of another model: \(checkpoint.path) reads correctly, but \(shapes)"
            + (keys.isEmpty ? "" : " (the model config differs in \(keys))")
            + ". Nothing in the run folder was changed. To train this config, start a new run: set exp_manager.exp_dir "
            + "or exp_manager.name to another folder, or pass --fresh; to continue the old run, use its config (stored in the checkpoint under /config/yaml)")
    }

    public var runFolder: String { folder.path }

    /// Trains until `trainer.max_steps` or a stop request; returns the path of the last checkpoint.
    @discardableResult
    public func run(stopRequested: @escaping () -> Bool = { false }) throws -> String? {
        let loader = try trainingLoader()
        let validation = try config.validation.map {
            try BatchLoader(settings: $0, frontEnd: frontEnd, masks: BlockMaskSampler(model: config.model),
                            sampleRate: config.sampleRate, seed: config.seed, training: false, report: log)
        }
        let valInterval = config.valCheckEpochFraction.map { max(1, Int(Double(loader.batchesPerEpoch) * $0)) } ?? config.valCheckInterval
        let checkpointInterval = config.everyNTrainSteps > 0 ? config.everyNTrainSteps : valInterval
        let prefetcher = BatchPrefetcher(loader: loader, start: state.position)
        defer { prefetcher.stop() }
        let metricsFile = group.isLeader ? try MetricsWriter(path: folder.metricsPath, tensorBoardFolder: config.tensorBoard ? folder.path : nil) : nil
        let progress = ProgressLine(total: config.maxSteps, live: group.isLeader)
        var lastCheckpoint: String? = group.isLeader ? folder.checkpoints().first?.path : nil
        // The starting point of a new run, so that the curve has its origin. Validation draws
        // from its own generators, so this does not change the training run.
        if let validation, state.step == 0 { try validate(validation, into: metricsFile) }
        var stopping = false, savedStep = state.step > 0 ? state.step : -1
        while state.step < config.maxSteps && !stopping {
            let started = Date()
            // One process may stop while it waits for data; ranks stop together after a step
            // (a rank leaving alone would leave the others waiting in a collective).
            guard let (window, dataWait) = try nextWindow(prefetcher, loader, stopRequested: group.isDistributed ? { false } : stopRequested)
            else { stopping = true; break }
            // Nothing readable in this window on any rank: not a step (no update, no decay, no count).
            let readable = group.max([window.contains(where: { !$0.isEmpty }) ? 1 : 0])[0] > 0
            guard readable else { stopping = group.max([stopRequested() ? 1 : 0])[0] > 0; continue }
            var (metrics, outcome) = step.train(window, update: state.step + 1, stopRequested: stopRequested)
            metrics.dataWaitSeconds = dataWait
            stopping = metrics.stopRequested
            guard case let .updated(_, lr, gradNorm) = outcome else {
                try recordSkippedStep(metrics, lastCheckpoint: lastCheckpoint)
                continue
            }
            state.countStep(finite: true, maskedTokens: metrics.maskedTokens)
            state.step += 1
            Failpoint.hit("rank-\(group.rank)-after-step-\(state.step)")
            state.audioSeconds += metrics.audioSeconds
            let stepSeconds = Date().timeIntervalSince(started)
            if state.step % config.logEveryNSteps == 0 || state.step == config.maxSteps {
                var row = trainingRow(metrics, lr: lr, gradNorm: gradNorm, stepSeconds: stepSeconds)
                if group.isDistributed {
                    row.add("comm_seconds", metrics.communicationSeconds)
                    row.add("exposed_comm_seconds", metrics.exposedCommunicationSeconds)
                    row.add("world_size", group.size)
                    row.add("replicas_agree", try checkReplicas())
                }
                try metricsFile?.append(row)
            }
            progress.update(step: state.step, loss: metrics.loss, accuracy: metrics.maskedAccuracy, lr: lr,
                            audioPerSecond: metrics.audioSeconds / max(stepSeconds, 1e-9), log: log)
            var validated = false
            if let validation, state.step % valInterval == 0 || state.step == config.maxSteps {
                try validate(validation, into: metricsFile)
                validated = true
            }
            if state.step % checkpointInterval == 0 || state.step == config.maxSteps || stopping {
                if !validated { state.valLoss = nil }
                lastCheckpoint = try saveCheckpoint(lastGood: lastCheckpoint) ?? lastCheckpoint
                savedStep = state.step
            }
        }
        stoppedEarly = stopping
        // Stopped on a step that was skipped or had no audio: the state still moved on.
        if stopping, savedStep != state.step { lastCheckpoint = try saveCheckpoint(lastGood: lastCheckpoint) ?? lastCheckpoint }
        progress.finish(log: log)
        log(String(format: "done: %d steps, %.1f min of audio seen, %d steps skipped; run folder %@", state.step, state.audioSeconds / 60, state.skippedSteps, folder.path))
        return lastCheckpoint
    }

    /// The training data of this rank, its epochs ended together with the other ranks' (tarred
    /// shards), checked against the memory its longest batch needs, and reported.
    private func trainingLoader() throws -> BatchLoader {
        let loader = try BatchLoader(settings: config.train, frontEnd: frontEnd, masks: BlockMaskSampler(model: config.model),
                                     sampleRate: config.sampleRate, seed: config.seed, training: true,
                                     share: DataShare(ranks: group.size, rank: group.rank), report: log)
        if loader.tarred != nil && group.isDistributed {
            // Each rank batches its own shards; all must end their epochs together.
            let fewest = Int(group.min([Int64(loader.batchesPerEpoch)])[0])
            guard fewest > 0 else { throw NestError("a rank has no complete batch in its shards; use more shards per rank or shard_strategy: replicate") }
            loader.epochLimit = fewest
        }
        for w in loader.manifest.warnings { log("warning: \(w)") }
        if let available = Self.availableMemory, let longest = loader.manifest.entries.map(\.duration).max() {
            let largest = MemoryBudget.largestBatch(config.train, longest: longest)
            try MemoryBudget(model: config.model, batch: largest.batch, seconds: largest.seconds)
                .check(available: available, weightsHeld: true, what: "training \(config.document.file) on its longest utterances (\(String(format: "%.1f", longest)) s)")
        }
        log("train: \(loader.manifest.entries.count) utterances (\(String(format: "%.1f", loader.manifest.totalDuration / 60)) min), "
            + "\(loader.manifest.droppedTooShort + loader.manifest.droppedTooLong) dropped by duration, \(loader.batchesPerEpoch) batches per epoch")
        return loader
    }

    /// Whether every rank holds the same weights (a checksum compared by MIN and MAX); a
    /// replica that drifted is an error, not a warning: its run is no longer one model.
    private func checkReplicas() throws -> Bool {
        let c = Int64(bitPattern: Replicas.checksum(model))
        let lowest = group.min([c])[0], highest = group.max([c])[0]
        guard lowest == highest else { throw NestError("the ranks' weights differ after step \(state.step) (checksums \(lowest) … \(highest)); stopping") }
        return true
    }

    /// The next `accumulate_grad_batches` batches in order, and the seconds spent waiting for
    /// them; unreadable audio is reported, and too long a run of empty batches stops training.
    /// nil when a stop is requested while waiting (the position is then the first batch not
    /// taken, so a resume reads it again).
    private func nextWindow(_ prefetcher: BatchPrefetcher, _ loader: BatchLoader, stopRequested: () -> Bool) throws -> ([Batch], Double)? {
        var window: [Batch] = [], wait = 0.0
        let start = state.position
        for _ in 0..<config.accumulateGradBatches {
            let waitStart = Date()
            guard let batch = try prefetcher.next(stopRequested: stopRequested) else { state.position = start; return nil }
            wait += Date().timeIntervalSince(waitStart)
            state.position = loader.next(after: batch.position)
            reportSkipped(batch)
            // A rank's share can be empty by layout (the short last batch); only shares whose
            // files were all unreadable count.
            if batch.isEmpty && !batch.skipped.isEmpty {
                emptyBatches += 1
                if emptyBatches >= 20 { throw NestError("20 batches in a row had no readable audio; stopping (see the skipped files above)") }
            } else if !batch.isEmpty {
                emptyBatches = 0
            }
            window.append(batch)
        }
        return (window, wait)
    }

    private func recordSkippedStep(_ metrics: StepMetrics, lastCheckpoint: String?) throws {
        state.skippedSteps += 1
        state.countStep(finite: false, maskedTokens: metrics.maskedTokens)
        log("non-finite loss or gradient at step \(state.step + 1), step skipped; utterances: \(metrics.utterances.joined(separator: ", "))")
        if state.consecutiveBadSteps >= config.maxConsecutiveBadSteps {
            throw NestError("\(state.consecutiveBadSteps) non-finite steps in a row; stopping. The last good checkpoint is intact: \(lastCheckpoint ?? "none")")
        }
    }

    private func trainingRow(_ m: StepMetrics, lr: Double, gradNorm: Double, stepSeconds: Double) -> MetricsRow {
        var row = MetricsRow(step: state.step)
        row.add("loss", m.loss)
        row.add("masked_acc", m.maskedAccuracy)
        row.add("lr", lr)
        row.add("grad_norm", gradNorm)
        row.add("masked_tokens", m.maskedTokens)
        row.add("audio_seconds", state.audioSeconds)
        row.add("step_seconds", stepSeconds)
        row.add("data_wait_seconds", m.dataWaitSeconds)
        row.add("codebook_usage", m.codebookUsage(over: group, classes: config.model.quantizer.numClasses))
        return row
    }

    /// Rank 0 writes the checkpoint (it holds the global state); the others wait for it, so
    /// that no rank runs ahead of a checkpoint that might fail. Weights that went non-finite
    /// (a loss and gradient can stay finite through the update that overflows them) stop the
    /// run on every rank, pointing at `lastGood`, the newest checkpoint written, all of which
    /// were finite.
    func saveCheckpoint(lastGood: String?) throws -> String? {
        let path = folder.checkpointPath(step: state.step)
        state.worldSize = group.size
        state.globalBatchSize = globalBatchSize
        var diverged: NonFiniteTensor?
        defer { group.barrier() }
        if group.isLeader {
            do {
                try Checkpoint.write(to: path, model: model, optimizer: step.optimizer, state: state, configYAML: config.document.root.yaml())
            } catch let error as NonFiniteTensor {
                diverged = error
            } catch where config.continueOnCheckpointError {
                log("warning: \(error); training continues (exp_manager.continue_on_checkpoint_error)")
                return nil
            }
        }
        guard group.isLeader else { return nil }
        if let diverged {
            throw NestError("the weights went non-finite by step \(state.step) (\(diverged)) although the steps' losses and gradients were finite; "
                + "step \(state.step) was not saved and training stops. The last good checkpoint is intact: \(lastGood ?? "none (no checkpoint was written)"). "
                + "Resume from it with a lower model.optim.lr or trainer.gradient_clip_val")
        }
        folder.prune(valLosses: valLosses, topK: config.saveTopK)
        log("checkpoint: \(path)")
        return path
    }

    /// Unreadable audio is reported the same way in training and validation.
    func reportSkipped(_ batch: Batch) {
        for s in batch.skipped { log("skipped: \(s)") }
    }

    /// Validates (see `Validation`), logs the result and keeps the loss for ranking checkpoints.
    func validate(_ loader: BatchLoader, into metricsFile: MetricsWriter?) throws {
        let classes = config.model.quantizer.numClasses
        let total = try Validation.evaluate(loader, step: step, group: group, classes: classes, reportSkipped: reportSkipped)
        if state.step > 0 {
            let valLoss = Validation.loss(total)
            state.valLoss = valLoss
            valLosses[state.step] = valLoss
        }
        guard let metricsFile else { return }
        try metricsFile.append(Validation.row(step: state.step, total, settings: loader.settings, classes: classes))
        log(Validation.summary(step: state.step, total, settings: loader.settings))
        do { try CurvePlot.write(run: folder.path) } catch { log("warning: curves.svg not written: \(error)") }
    }
}

/// The error for a run folder whose checkpoint reads correctly but belongs to another model:
/// auto-resume stops on it instead of passing over it as damaged.
struct AnotherModelsRun: Error, CustomStringConvertible {
    let description: String
}
