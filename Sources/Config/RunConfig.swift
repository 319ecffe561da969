import Basics
import DataLoading
import Audio
import Foundation
import Tensor
import Model

/// Everything a run needs besides the model: data, front end, optimizer, trainer and
/// experiment-manager settings, read from NeMo's keys.
public struct RunConfig {
    /// A dataset section's settings (`train_ds`, `validation_ds`).
    public typealias Data = DataSettings

    public var name = "NEST"
    public var seed: UInt64 = 1234
    public var model = NESTConfig()
    public var sampleRate = 16000
    public var frontEnd = FilterbankFeatures.Settings()
    public var train = Data()
    public var validation: Data? = nil
    public var learningRate = 5.0
    public var betas = (0.9, 0.98)
    public var eps = 1e-8
    public var weightDecay = 1e-3
    /// Resolved against the optimizer's lr, the model width and max_steps.
    public var schedule = LearningRateSchedule.noam(scale: 5, dModel: 512, warmupSteps: 25_000, minLR: 1e-6)
    public var maxSteps = 500_000
    public var valCheckInterval = 2500
    /// Lightning's float form of `val_check_interval`: validate every this fraction of an
    /// epoch (resolved to steps once the manifest is read).
    public var valCheckEpochFraction: Double? = nil
    public var accumulateGradBatches = 1
    public var gradientClipVal = 0.0
    public var logEveryNSteps = 10
    public var expDir = "Checkpoints"
    public var resumeIfExists = true
    public var saveTopK = 1
    public var everyNTrainSteps = 2500
    /// Consecutive skipped (non-finite) steps after which the run stops.
    public var maxConsecutiveBadSteps = 10
    /// Keep training when a checkpoint cannot be written (disk full); the default stops.
    public var continueOnCheckpointError = false
    /// TensorBoard event files in the run folder (NeMo's `exp_manager.create_tensorboard_logger`).
    public var tensorBoard = true
    /// NeMo's `init_from_nemo_model`: weights a new run starts from (applied in order).
    public var initFrom: [PretrainedInit] = []
    /// The resolved config document, stored in checkpoints and `.nemo` archives.
    public var document: ConfigDocument
    public var warnings: [String] = []
    /// `trainer.accelerator` (Lightning's, `auto` when absent).
    public var accelerator: Accelerator = .auto
    /// `trainer.devices`.
    public var devices: Devices = .auto

    /// Where a run computes, as Lightning's `accelerator` names it.
    public enum Accelerator: String, Sendable {
        /// The GPU when one and the CUDA libraries are found, else the CPU.
        case auto
        case gpu
        case cpu
    }

    /// Lightning's `devices`: `auto` (or -1, or absent): every GPU of the node, one process
    /// each; a count; or a list of GPU ordinals.
    public enum Devices: Equatable, Sendable {
        case auto
        case count(Int)
        case list([Int])
    }

    static func readDevices(_ doc: ConfigDocument) throws -> Devices {
        switch doc.node("trainer.devices") {
        case nil, .null?: return .auto
        case .list?:
            guard let items = try doc.doubleList("trainer.devices"), !items.isEmpty,
                  items.allSatisfy({ $0 >= 0 && $0 == $0.rounded() }) else {
                throw NestError("\(doc.file): trainer.devices must be auto, -1, a count or a list of GPU ordinals")
            }
            return .list(items.map { Int($0) })
        case .scalar(let text, _)?:
            if text == "auto" || text == "-1" { return .auto }
            // Lightning's "0,1" string form is a list of ordinals.
            if text.contains(",") {
                let ordinals = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !ordinals.isEmpty, ordinals.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                    throw NestError("\(doc.file): trainer.devices '\(text)' is not a list of GPU ordinals")
                }
                return .list(ordinals.map { $0! })
            }
            guard let n = Int(text), n >= 1 else {
                throw NestError("\(doc.file): trainer.devices must be auto, -1, a count ≥ 1 or a list of GPU ordinals, got \(text)")
            }
            return .count(n)
        default: throw NestError("\(doc.file): trainer.devices must be auto, -1, a count or a list of GPU ordinals")
        }
    }

    public var runDirectory: String { URL(fileURLWithPath: expDir).appendingPathComponent(name).path }

    /// Reads a NeMo-structured config; unsupported settings are warnings, wrong types and
    /// impossible combinations errors naming the key path and file.
    public init(_ doc: ConfigDocument, requireData: Bool = true) throws {
        // Absent keys take their class's default before anything is read (as in NeMo); the
        // document kept is the filled one, so an export writes the values the model was built with.
        let doc = try ClassDefaults.filling(doc)
        document = doc
        model = try ModelConfigReader.read(filled: doc)
        name = try doc.string("name") ?? name
        // Lightning's seed_everything takes 0…2³²−1 (numpy's range) and replaces any other seed
        // with a random one, which no resume could repeat: nest-train refuses it instead.
        seed = UInt64(try doc.int("seed", default: Int(seed), in: 0...Int(UInt32.max)))
        sampleRate = try doc.int("model.sample_rate", default: 16000, in: 1000...384_000)
        try readFrontEnd(doc)
        train = try Self.readData(doc, "model.train_ds", require: requireData)
        if doc.has("model.validation_ds"), (try? doc.string("model.validation_ds.manifest_filepath")) != "???" || requireData {
            validation = try Self.readData(doc, "model.validation_ds", require: requireData)
        }

        try readOptimizer(doc, requireData: requireData)
        try readTrainer(doc)
        try readExperimentManager(doc)
        warnings += doc.warnings
        if requireData, let v = validation, v.manifests.isEmpty { validation = nil }
        warnings += Self.unusedKeys(doc)
        initFrom = try Self.readInit(doc)
        if requireData, train.maxDuration.map({ $0 * 100 < Double(model.masking.blockSize) }) ?? false {
            throw NestError("\(doc.file): model.masking.block_size (\(model.masking.blockSize) frames) exceeds model.train_ds.max_duration")
        }
    }

    /// `model.preprocessor` into the front-end settings, checked against the encoder it feeds.
    mutating func readFrontEnd(_ doc: ConfigDocument) throws {
        let p = "model.preprocessor"
        frontEnd.sampleRate = try doc.filledInt("\(p).sample_rate")
        // Seconds, or samples (`n_window_size`, `n_window_stride`: NeMo takes one of each pair);
        // the sizes in samples are checked against n_fft below, whose default is the power of
        // two that holds the window (NeMo's rule).
        frontEnd.windowSize = try Self.samples(doc, seconds: "window_size", samples: "n_window_size", rate: frontEnd.sampleRate)
        frontEnd.hop = try Self.samples(doc, seconds: "window_stride", samples: "n_window_stride", rate: frontEnd.sampleRate)
        frontEnd.nFFT = try doc.int("\(p).n_fft") ?? (1 << Int(log2(Double(max(frontEnd.windowSize, 1))).rounded(.up)))
        frontEnd.features = try doc.filledInt("\(p).features")
        frontEnd.dither = Float(try doc.filledDouble("\(p).dither"))
        frontEnd.preemphasis = try doc.double("\(p).preemph").map(Float.init)
        frontEnd.logGuard = Float(try doc.filledDouble("\(p).log_zero_guard_value"))
        frontEnd.padTo = try doc.filledInt("\(p).pad_to")
        // per_feature, or NA (NeMo's normalize_batch passes through a type it does not know,
        // as the streaming and v2 recipes use it); the table refuses all_features, not built.
        frontEnd.normalize = try doc.string("\(p).normalize") != "NA"
        try Self.check(frontEnd: frontEnd, doc)
        if frontEnd.features != model.encoder.featIn {
            throw NestError("\(doc.file): \(p).features (\(frontEnd.features)) must equal model.encoder.feat_in (\(model.encoder.featIn))")
        }
        if frontEnd.padTo % model.encoder.subsamplingFactor != 0 {
            throw NestError("\(doc.file): \(p).pad_to (\(frontEnd.padTo)) must be a multiple of model.encoder.subsampling_factor")
        }
    }

    /// `model.optim` (AdamW and its schedule) and `trainer.max_steps`, which the schedule runs to.
    mutating func readOptimizer(_ doc: ConfigDocument, requireData: Bool) throws {
        let o = "model.optim"
        if let optimizer = try doc.string("\(o).name"), optimizer.lowercased() != "adamw" {
            throw NestError("\(doc.file): \(o).name: only adamw is supported, got \(optimizer)")
        }
        learningRate = try doc.double("\(o).lr", default: learningRate)
        if let b = try doc.doubleList("\(o).betas") {
            guard b.count == 2 else { throw NestError("\(doc.file): \(o).betas must have two values") }
            betas = (b[0], b[1])
        }
        eps = try doc.double("\(o).eps", default: eps)
        weightDecay = try doc.double("\(o).weight_decay", default: weightDecay)
        maxSteps = try doc.int("trainer.max_steps", default: maxSteps)
        if maxSteps <= 0 && !requireData {
            maxSteps = 500_000   // inspecting or exporting: NeMo's scheduler default
        } else if maxSteps <= 0 {
            throw NestError("\(doc.file): trainer.max_steps must be set to a positive number of steps (epoch-based runs are not supported)")
        }
        let warmupSteps = try doc.int("\(o).sched.warmup_steps")
        let warmupRatio = try doc.double("\(o).sched.warmup_ratio")
        let warmup = warmupSteps ?? warmupRatio.map { Int($0 * Double(maxSteps)) } ?? 0
        let minLR = try doc.double("\(o).sched.min_lr", default: 0)
        switch try doc.string("\(o).sched.name") {
        case "NoamAnnealing":
            let d = try doc.int("\(o).sched.d_model") ?? model.encoder.dModel
            if d != model.encoder.dModel {
                warnings.append("\(o).sched.d_model (\(d)) differs from model.encoder.d_model (\(model.encoder.dModel)); using the former as NeMo does")
            }
            schedule = .noam(scale: learningRate, dModel: d, warmupSteps: max(warmup, 1), minLR: minLR)
        case "CosineAnnealing": schedule = .cosine(lr: learningRate, warmupSteps: warmup, maxSteps: maxSteps, minLR: minLR)
        case nil: schedule = .constant(lr: learningRate)
        case let other?: throw NestError("\(doc.file): \(o).sched.name: \(other) is not supported (NoamAnnealing, CosineAnnealing)")
        }
    }

    /// The Lightning trainer's keys nest-train honours (validation interval, accumulation,
    /// clipping, logging, precision, accelerator and devices) and the ones it names as ignored.
    mutating func readTrainer(_ doc: ConfigDocument) throws {
        if let v = try doc.double("trainer.val_check_interval", in: 0...1e15) {
            // As Lightning: an int counts steps, a float in (0, 1] is a fraction of an epoch.
            if doc.tag("trainer.val_check_interval") == "float" {
                guard v > 0 && v <= 1 else {
                    throw NestError("\(doc.file): trainer.val_check_interval: a float must be in (0, 1] (a fraction of an epoch), got \(v); use an integer for a number of steps")
                }
                valCheckEpochFraction = v
            } else {
                guard v >= 1 else { throw NestError("\(doc.file): trainer.val_check_interval must be ≥ 1 step") }
                valCheckInterval = Int(v)
            }
        }
        accumulateGradBatches = try doc.int("trainer.accumulate_grad_batches", default: 1)
        gradientClipVal = try doc.double("trainer.gradient_clip_val", default: 0)
        logEveryNSteps = max(1, try doc.int("trainer.log_every_n_steps", default: 10))
        if accumulateGradBatches < 1 { throw NestError("\(doc.file): trainer.accumulate_grad_batches must be ≥ 1") }
        // trainer.precision 32 / 32-true is what nest-train does, so it is honoured, not ignored.
        if let prec = try doc.string("trainer.precision"), prec != "32", prec != "32-true" {
            throw NestError("\(doc.file): trainer.precision: only 32-bit training is supported (32 or 32-true), got \(prec)")
        }
        // Lightning's accelerator and devices; the executable picks the device from them.
        let acceleratorText = try doc.string("trainer.accelerator")?.lowercased() ?? "auto"
        guard let parsed = Accelerator(rawValue: acceleratorText == "cuda" ? "gpu" : acceleratorText) else {
            throw NestError("\(doc.file): trainer.accelerator: \(acceleratorText) is not one nest-train has; use auto, gpu (cuda) or cpu")
        }
        accelerator = parsed
        devices = try Self.readDevices(doc)
        for key in ["num_nodes", "strategy", "sync_batchnorm"] where doc.has("trainer.\(key)") {
            warnings.append("trainer.\(key) is ignored: the launcher (mpirun, srun) sets the processes, one per GPU or CPU set, with "
                            + "synchronised BatchNorm (see README, Training on many machines)")
        }
        for key in ["benchmark", "enable_progress_bar", "num_sanity_val_steps", "check_val_every_n_epoch", "max_epochs", "logger", "enable_checkpointing"]
        where doc.has("trainer.\(key)") {
            warnings.append("trainer.\(key) is ignored by nest-train")
        }
        maxConsecutiveBadSteps = try doc.int("trainer.max_consecutive_bad_steps", default: maxConsecutiveBadSteps)
    }

    /// `exp_manager`: the run folder, resuming, checkpoint keeping and TensorBoard.
    mutating func readExperimentManager(_ doc: ConfigDocument) throws {
        expDir = try doc.string("exp_manager.exp_dir") ?? expDir
        resumeIfExists = try doc.bool("exp_manager.resume_if_exists", default: true)
        saveTopK = try doc.int("exp_manager.checkpoint_callback_params.save_top_k", default: 1)
        everyNTrainSteps = try doc.int("exp_manager.checkpoint_callback_params.every_n_train_steps") ?? 0   // 0: with validation
        if let monitor = try doc.string("exp_manager.checkpoint_callback_params.monitor"), monitor != "val_loss" {
            warnings.append("exp_manager.checkpoint_callback_params.monitor: only val_loss is tracked; \(monitor) is ignored")
        }
        continueOnCheckpointError = try doc.bool("exp_manager.continue_on_checkpoint_error", default: false)
        tensorBoard = try doc.bool("exp_manager.create_tensorboard_logger", default: true)
        if let name = try doc.string("exp_manager.name") { self.name = name }
    }

    /// A front-end size in samples: `samples` when set (then `seconds` must be null, as NeMo's
    /// preprocessor requires), else `seconds` × the sample rate.
    static func samples(_ doc: ConfigDocument, seconds: String, samples: String, rate: Int) throws -> Int {
        let p = "model.preprocessor"
        if let n = try doc.int("\(p).\(samples)") {
            if doc.has("\(p).\(seconds)") { throw NestError("\(doc.file): \(p).\(seconds) and \(p).\(samples) are both set; NeMo takes one of them") }
            return n
        }
        return Int(try doc.double("\(p).\(seconds)", default: 0) * Double(rate))
    }

    /// The front end's sizes as torch.stft and NeMo's FilterbankFeatures require them, each
    /// error naming its key: the window fits in the FFT, the hop is at least one sample, every
    /// mel band has FFT bins to draw from.
    static func check(frontEnd f: FilterbankFeatures.Settings, _ doc: ConfigDocument) throws {
        let p = "model.preprocessor"
        func fail(_ s: String) throws -> Never { throw NestError("\(doc.file): \(p).\(s)") }
        if !(2...65_536).contains(f.nFFT) { try fail("n_fft (\(f.nFFT)) must be in 2…65536 (the power of two holding the window)") }
        if f.windowSize < 1 { try fail("window_size gives \(f.windowSize) samples at \(f.sampleRate) Hz; it must be at least one sample") }
        if f.windowSize > f.nFFT {
            try fail("n_fft (\(f.nFFT)) must be at least the window (window_size × sample_rate = \(f.windowSize) samples), as torch.stft requires")
        }
        if f.hop < 1 { try fail("window_stride gives \(f.hop) samples at \(f.sampleRate) Hz; it must be at least one sample") }
        if f.features < 1 || f.features > f.nFFT / 2 + 1 {
            try fail("features (\(f.features)) must be in 1…n_fft/2+1 (\(f.nFFT / 2 + 1)): more mel bands than FFT bins leaves bands empty")
        }
    }

    /// Keys of NeMo's data and experiment sections that nest-train reads; the others get one
    /// warning each instead of being ignored silently.
    static let usedKeys: [String: Set<String>] = [
        "model.train_ds": ["manifest_filepath", "noise_manifest", "sample_rate", "batch_size", "shuffle", "drop_last", "min_duration",
                           "max_duration", "skip_bad_audio", "batch_augmentor", "is_tarred", "tarred_audio_filepaths", "shuffle_n",
                           "shard_strategy", "tarred_shard_strategy", "batch_duration", "quadratic_duration", "num_buckets", "bucket_duration_bins", "bucket_buffer_size", "shuffle_buffer_size", "use_lhotse", "use_bucketing"],
        "model.validation_ds": ["manifest_filepath", "noise_manifest", "sample_rate", "batch_size", "shuffle", "drop_last", "min_duration",
                                "max_duration", "skip_bad_audio", "batch_augmentor", "is_tarred", "tarred_audio_filepaths", "shuffle_n",
                                "shard_strategy", "tarred_shard_strategy", "mask_draws", "batch_duration", "quadratic_duration", "num_buckets", "bucket_duration_bins", "bucket_buffer_size", "shuffle_buffer_size", "use_lhotse", "use_bucketing"],
        "exp_manager": ["exp_dir", "name", "resume_if_exists", "resume_ignore_no_checkpoint", "checkpoint_callback_params",
                        "continue_on_checkpoint_error", "create_tensorboard_logger"],
        "exp_manager.checkpoint_callback_params": ["monitor", "mode", "save_top_k", "every_n_train_steps"],
    ]

    static func unusedKeys(_ doc: ConfigDocument) -> [String] {
        usedKeys.sorted { $0.key < $1.key }.flatMap { section, used in
            (doc.node(section)?.keys ?? []).filter { !used.contains($0) }.map { "\(section).\($0) is not used by nest-train" }
        }
    }

    /// `init_from_nemo_model: PATH`, or NeMo's dict form `{model0: {path, include, exclude}, ...}`.
    /// `init_from_pretrained_model` names a model on NVIDIA's hubs, which nest-train cannot
    /// reach: the error says how to pass the downloaded file instead.
    static func readInit(_ doc: ConfigDocument) throws -> [PretrainedInit] {
        if let name = doc.node("init_from_pretrained_model"), name != .null {
            throw NestError("\(doc.file): init_from_pretrained_model downloads from NVIDIA's model hubs, which nest-train does not do; "
                            + "download the .nemo yourself (e.g. ssl_en_nest_large_v1.0) and set init_from_nemo_model: /path/to/model.nemo")
        }
        if let ckpt = doc.node("init_from_ptl_ckpt"), ckpt != .null {
            throw NestError("\(doc.file): init_from_ptl_ckpt is not supported; pass the checkpoint as init_from_nemo_model (torch archives are read too)")
        }
        switch doc.node("init_from_nemo_model") {
        case nil, .null?: return []
        case .scalar(let path, _)?: return [PretrainedInit(path: path)]
        case .map(let models)?:
            return try models.map { name, node in
                let key = "init_from_nemo_model.\(name)"
                guard let path = try doc.string("\(key).path") else { throw NestError("\(doc.file): \(key).path must be set") }
                func list(_ k: String) throws -> [String]? {
                    switch doc.node("\(key).\(k)") {
                    case nil, .null?: return nil
                    case .scalar(let s, _)?: return [s]
                    case .list(let items)?: return try items.map { guard case .scalar(let s, _) = $0 else { throw NestError("\(doc.file): \(key).\(k) must list strings") }; return s }
                    default: throw NestError("\(doc.file): \(key).\(k) must be a string or a list of strings")
                    }
                }
                return PretrainedInit(path: path, include: try list("include") ?? [""], exclude: try list("exclude") ?? [])
            }
        default: throw NestError("\(doc.file): init_from_nemo_model must be a path or NeMo's {model0: {path: ...}} form")
        }
    }

    /// NeMo's Lhotse batching keys: `batch_duration` (seconds per batch) with `batch_size` as
    /// an utterance cap, `quadratic_duration`, and bucketing (`use_bucketing`, `num_buckets`,
    /// `bucket_duration_bins`). Lhotse's streaming buffers (`bucket_buffer_size`,
    /// `shuffle_buffer_size`) are checked and need nothing more: the whole manifest is one
    /// buffer.
    static func readDurationBatching(_ doc: ConfigDocument, _ key: String) throws -> DurationBatching? {
        func fail(_ s: String) throws -> Never { throw NestError("\(doc.file): \(key).\(s)") }
        for k in ["bucket_buffer_size", "shuffle_buffer_size"] where try doc.int("\(key).\(k)").map({ $0 < 1 }) ?? false { try fail("\(k) must be ≥ 1") }
        _ = try doc.bool("\(key).use_lhotse", default: false)
        guard let seconds = try doc.double("\(key).batch_duration") else {
            for k in ["quadratic_duration", "num_buckets", "bucket_duration_bins"] where doc.has("\(key).\(k)") { try fail("\(k) needs batch_duration") }
            return nil
        }
        guard seconds > 0, seconds.isFinite else { try fail("batch_duration (\(seconds)) must be a positive number of seconds") }
        var batching = DurationBatching(seconds: seconds)
        batching.quadraticDuration = try doc.double("\(key).quadratic_duration")
        if let q = batching.quadraticDuration, !(q > 0 && q.isFinite) { try fail("quadratic_duration (\(q)) must be a positive number of seconds") }
        batching.maxUtterances = try doc.int("\(key).batch_size")
        if let cap = batching.maxUtterances, cap < 1 { try fail("batch_size (\(cap)) must be ≥ 1 (or null: no cap beside batch_duration)") }
        batching.buckets = try doc.bool("\(key).use_bucketing", default: true) ? try doc.int("\(key).num_buckets", default: 30) : 1
        if batching.buckets < 1 { try fail("num_buckets (\(batching.buckets)) must be ≥ 1") }
        if case .list(let items)? = doc.node("\(key).bucket_duration_bins"), items.contains(where: { if case .list = $0 { true } else { false } }) {
            try fail("bucket_duration_bins: 2-D bins (duration and tokens) are not supported; give durations in seconds")
        }
        if let edges = try doc.doubleList("\(key).bucket_duration_bins") {
            guard !edges.isEmpty, zip(edges, edges.dropFirst()).allSatisfy({ $0 < $1 }), edges[0] > 0 else {
                try fail("bucket_duration_bins must be increasing positive durations in seconds (2-D bins of duration and tokens are not supported)")
            }
            batching.bucketEdges = edges
        }
        return batching
    }

    /// NeMo's `input_cfg`: a list of inputs, each `type: nemo` (a manifest) or `nemo_tarred`
    /// (a manifest and `tarred_audio_filepaths`) with an optional `weight` (all or none).
    /// Several inputs are mixed (`InputMixture`), all plain or all tarred (each tarred input's
    /// `shard_id`s index its own shards); one input of either type is that dataset. Plain and
    /// tarred inputs together, other types and nested groups are refused by name.
    static func readInputs(_ doc: ConfigDocument, _ key: String, into d: inout Data, paths: (String) throws -> [String]) throws {
        let k = "\(key).input_cfg"
        func fail(_ s: String) throws -> Never { throw NestError("\(doc.file): \(s)") }
        guard case .list(let items)? = doc.node(k), !items.isEmpty else { try fail("\(k) must be a non-empty list of inputs") }
        if let m = doc.node("\(key).manifest_filepath"), m != .null, m != .scalar("???", tag: "str") {
            try fail("\(key).manifest_filepath and \(k) are both set; NeMo reads input_cfg, so leave manifest_filepath null")
        }
        var inputs: [[String]] = [], weights: [Double] = [], types: [String] = []
        for i in items.indices {
            let item = "\(k).\(i)"
            let type = try doc.string("\(item).type") ?? "nemo"
            guard ["nemo", "nemo_tarred"].contains(type) else {
                try fail("\(item).type: '\(type)' is not supported (supported: nemo, nemo_tarred)")
            }
            let manifests = try paths("\(item).manifest_filepath")
            if manifests.isEmpty { try fail("\(item).manifest_filepath must name the input's manifest") }
            inputs.append(manifests)
            types.append(type)
            if let w = try doc.double("\(item).weight") {
                guard w > 0, w.isFinite else { try fail("\(item).weight (\(w)) must be a positive number") }
                weights.append(w)
            }
        }
        if !weights.isEmpty && weights.count != inputs.count {
            try fail("\(k): every input needs a weight when one has one (NeMo's rule); \(weights.count) of \(inputs.count) have one")
        }
        d.manifests = inputs.flatMap { $0 }
        if types.contains("nemo_tarred") {
            guard !types.contains("nemo") else {
                try fail("\(k): mixing nemo_tarred inputs with plain (nemo) inputs is not supported; make every input tarred (nest-train tar) or every input plain")
            }
            var shards: [String] = [], patterns: [Int] = []
            for i in items.indices {
                let own = try paths("\(k).\(i).tarred_audio_filepaths")
                if own.isEmpty { try fail("\(k).\(i).tarred_audio_filepaths must name the shards of a nemo_tarred input") }
                shards += own
                patterns.append(own.count)
            }
            var t = TarredShards.Settings(filepaths: shards, inputPatterns: inputs.count > 1 ? patterns : [])
            t.strategy = try readShardStrategy(doc, key)
            t.shuffleN = try doc.int("\(key).shuffle_n", default: 0)
            guard t.shuffleN >= 0 else { try fail("\(key).shuffle_n must be ≥ 0") }
            d.tarred = t
        }
        guard inputs.count > 1 else { return }
        var mixture = Data.Mixture(inputs: inputs, weights: weights.isEmpty ? nil : weights)
        switch doc.node("\(key).reweight_temperature") {
        case nil, .null?: break
        case .list(let levels)? where levels.count == 1:
            mixture.temperature = try doc.double("\(key).reweight_temperature.0") ?? 1
        case .scalar?: mixture.temperature = try doc.double("\(key).reweight_temperature") ?? 1
        default: try fail("\(key).reweight_temperature must be a number (one level of inputs)")
        }
        guard mixture.temperature >= 0, mixture.temperature.isFinite else { try fail("\(key).reweight_temperature must be ≥ 0") }
        d.mixture = mixture
    }

    /// `shard_strategy` (or NeMo's older `tarred_shard_strategy`): scatter by default.
    static func readShardStrategy(_ doc: ConfigDocument, _ key: String) throws -> TarredShards.Strategy {
        let strategy = try doc.string("\(key).shard_strategy") ?? doc.string("\(key).tarred_shard_strategy") ?? "scatter"
        guard let parsed = TarredShards.Strategy(rawValue: strategy) else {
            throw NestError("\(doc.file): \(key).shard_strategy must be scatter or replicate, got \(strategy)")
        }
        return parsed
    }

    static func readData(_ doc: ConfigDocument, _ key: String, require: Bool) throws -> Data {
        var d = Data()
        func paths(_ k: String) throws -> [String] {
            switch doc.node(k) {
            case nil, .null?: return []
            case .scalar(let s, _)?:
                if s == "???" {
                    if require { throw NestError("\(doc.file): \(k) must be set (it is ??? in the config; pass \(k)=PATH)") }
                    return []
                }
                return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            case .list(let items)?:
                return try items.map {
                    guard case .scalar(let s, _) = $0 else { throw NestError("\(doc.file): \(k) must list paths") }
                    return s
                }
            default: throw NestError("\(doc.file): \(k) must be a path or a list of paths")
            }
        }
        if doc.has("\(key).input_cfg") {
            try readInputs(doc, key, into: &d, paths: paths)
        } else {
            d.manifests = try paths("\(key).manifest_filepath")
        }
        if require && key.hasSuffix("train_ds") && d.manifests.isEmpty {
            throw NestError("\(doc.file): \(key).manifest_filepath is empty or missing; pass \(key).manifest_filepath=PATH")
        }
        d.noiseManifests = try paths("\(key).noise_manifest")
        d.duration = try readDurationBatching(doc, key)
        if require, d.duration == nil, doc.node("\(key).batch_size") == .null {
            throw NestError("\(doc.file): \(key).batch_size is null and \(key).batch_duration is not set: give one of them")
        }
        d.batchSize = try doc.int("\(key).batch_size") ?? (d.duration == nil ? 8 : 0)
        d.shuffle = try doc.bool("\(key).shuffle", default: key.hasSuffix("train_ds"))
        d.dropLast = try doc.bool("\(key).drop_last", default: false)
        d.minDuration = try doc.double("\(key).min_duration")
        d.maxDuration = try doc.double("\(key).max_duration")
        d.skipBadAudio = try doc.bool("\(key).skip_bad_audio", default: true)
        // With input_cfg, each input says whether it is tarred (NeMo's Lhotse reader ignores is_tarred).
        if !doc.has("\(key).input_cfg"), try doc.bool("\(key).is_tarred", default: false) {
            let shards = try paths("\(key).tarred_audio_filepaths")
            if require && shards.isEmpty { throw NestError("\(doc.file): \(key).tarred_audio_filepaths must name the shards when is_tarred is true") }
            var t = TarredShards.Settings(filepaths: shards)
            t.strategy = try readShardStrategy(doc, key)
            t.shuffleN = try doc.int("\(key).shuffle_n", default: 0)
            guard t.shuffleN >= 0 else { throw NestError("\(doc.file): \(key).shuffle_n must be ≥ 0") }
            d.tarred = t
        }
        if d.duration == nil && d.batchSize < 1 {
            throw NestError("\(doc.file): \(key).batch_size must be ≥ 1 (or set \(key).batch_duration to batch by seconds of audio)")
        }
        if let lo = d.minDuration, let hi = d.maxDuration, lo > hi {
            throw NestError("\(doc.file): \(key).min_duration (\(lo)) is larger than max_duration (\(hi))")
        }
        d.maskDraws = try doc.int("\(key).mask_draws", default: 1)
        guard d.maskDraws >= 1 else { throw NestError("\(doc.file): \(key).mask_draws must be ≥ 1") }
        d.augmentation = try readAugmentation(doc, "\(key).batch_augmentor")
        return d
    }

    /// NeMo's `MultiSpeakerNoiseAugmentation` section (`batch_augmentor`), nil when absent.
    static func readAugmentation(_ doc: ConfigDocument, _ a: String) throws -> MultiSpeakerNoiseAugmentation.Settings? {
        guard doc.has(a), doc.node(a) != .null else { return nil }
        var s = MultiSpeakerNoiseAugmentation.Settings()
        // Each value is in the class table's range (ClassDefaults); each pair is ordered.
        s.prob = try doc.filledDouble("\(a).prob")
        s.noiseRatio = try doc.filledDouble("\(a).noise_ratio")
        func range(_ lo: String, _ hi: String) throws -> ClosedRange<Double> {
            let l = try doc.filledDouble("\(a).\(lo)"), h = try doc.filledDouble("\(a).\(hi)")
            guard l <= h else { throw NestError("\(doc.file): \(a).\(lo) (\(l)) exceeds \(a).\(hi) (\(h))") }
            return l...h
        }
        // Counts of segments and speakers within one utterance.
        func intRange(_ lo: String, _ hi: String) throws -> ClosedRange<Int> {
            let l = try doc.filledInt("\(a).\(lo)"), h = try doc.filledInt("\(a).\(hi)")
            guard l <= h else { throw NestError("\(doc.file): \(a).\(lo)/\(hi) must satisfy 1 ≤ min ≤ max") }
            return l...h
        }
        // Signal-to-noise ratios in dB; mix rates are fractions of the utterance.
        s.speechSNR = try range("min_r_speech", "max_r_speech")
        s.noiseSNR = try range("min_r_noise", "max_r_noise")
        s.mixRate = try range("min_mix_rate", "max_mix_rate")
        s.segments = try intRange("min_num_segments", "max_num_segments")
        s.speakers = try intRange("min_num_speakers", "max_num_speakers")
        return s
    }
}
