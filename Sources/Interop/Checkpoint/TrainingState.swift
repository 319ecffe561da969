import Basics
import DataLoading

/// Everything besides weights and optimizer moments that a resumed run needs to continue
/// exactly where the interrupted one stood.
public struct TrainingState: Equatable {
    /// Optimizer updates done.
    public var step = 0
    /// The next batch to train on.
    public var position = DataPosition(epoch: 0, index: 0)
    public var audioSeconds = 0.0
    public var skippedSteps = 0
    public var consecutiveBadSteps = 0
    /// Validation loss at this checkpoint (nil when none was run), for keeping the best ones.
    public var valLoss: Double? = nil
    /// Processes, and utterances per micro-batch over all of them, of the run that wrote the
    /// checkpoint (nil in checkpoints older than data-parallel training).
    public var worldSize: Int? = nil
    public var globalBatchSize: Int? = nil
    public init() {}

    /// Counts a step toward `consecutiveBadSteps`: a finite one ends a run of non-finite steps,
    /// a non-finite one extends it, and one without masked tokens (no loss to judge) does neither.
    public mutating func countStep(finite: Bool, maskedTokens: Int) {
        guard maskedTokens > 0 else { return }
        consecutiveBadSteps = finite ? 0 : consecutiveBadSteps + 1
    }

    /// One field, by its name under `/state` in a checkpoint; values travel as Double (exact
    /// for integers below 2⁵³), nil for an optional field that is unset. `valid` is the range a
    /// value read from a file must lie in.
    struct Field {
        let name: String
        /// Stored as Int64 (omitted when nil); otherwise as Double (NaN when nil).
        let integer: Bool
        let valid: ClosedRange<Double>
        let get: (TrainingState) -> Double?
        let set: (inout TrainingState, Double?) -> Void

        /// Counts and positions: integers up to 2⁵³, whose Double is exact.
        static let counts: ClosedRange<Double> = 0...9_007_199_254_740_992

        static func int(_ name: String, _ key: WritableKeyPath<TrainingState, Int>) -> Field {
            Field(name: name, integer: true, valid: counts, get: { Double($0[keyPath: key]) }, set: { $0[keyPath: key] = $1.map { Int($0) } ?? 0 })
        }
        static func int(_ name: String, _ key: WritableKeyPath<TrainingState, Int?>, from lowest: Double = 0) -> Field {
            Field(name: name, integer: true, valid: lowest...counts.upperBound, get: { $0[keyPath: key].map(Double.init) },
                  set: { $0[keyPath: key] = $1.map { Int($0) } })
        }
        static func real(_ name: String, _ key: WritableKeyPath<TrainingState, Double>) -> Field {
            Field(name: name, integer: false, valid: 0...Double.greatestFiniteMagnitude, get: { $0[keyPath: key] }, set: { $0[keyPath: key] = $1 ?? 0 })
        }
        static func real(_ name: String, _ key: WritableKeyPath<TrainingState, Double?>) -> Field {
            Field(name: name, integer: false, valid: -Double.infinity...Double.infinity,
                  get: { $0[keyPath: key] }, set: { $0[keyPath: key] = $1 })
        }
    }

    /// Every field, in one order: the one table the checkpoint writer, its reader and the
    /// replica broadcast go through, so none of them can leave a field out.
    static let fields: [Field] = [
        .int("step", \.step), .int("epoch", \.position.epoch), .int("batch_index", \.position.index),
        .real("audio_seconds", \.audioSeconds), .int("skipped_steps", \.skippedSteps),
        .int("consecutive_bad_steps", \.consecutiveBadSteps), .real("val_loss", \.valLoss),
        .int("world_size", \.worldSize, from: 1), .int("global_batch_size", \.globalBatchSize, from: 1),
    ]

    /// The fields as numbers in `fields` order (NaN for unset ones), and back.
    public var encoded: [Double] { Self.fields.map { $0.get(self) ?? .nan } }

    public init(encoded values: [Double]) {
        precondition(values.count == Self.fields.count, "\(values.count) values for \(Self.fields.count) state fields")
        self.init()
        for (field, value) in zip(Self.fields, values) { field.set(&self, value.isNaN ? nil : value) }
    }

    /// Reads each field through `value` (nil: absent; NaN: unset), refusing a value outside
    /// the field's range (`origin` names where it came from).
    init(origin: String, _ value: (Field) throws -> Double?) throws {
        self.init()
        for field in Self.fields {
            guard let v = try value(field), !v.isNaN else { field.set(&self, nil); continue }
            guard field.valid.contains(v) else {
                throw NestError("\(origin): state/\(field.name) is \(v), outside \(field.valid.lowerBound)…\(field.valid.upperBound); "
                    + "the file was not written by a nest-train run, or was edited")
            }
            field.set(&self, v)
        }
    }
}
