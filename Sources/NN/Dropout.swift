import Tensor

/// `nn.Dropout(p)` on batch-first input: active only in training; its masks come from the
/// model's `DropoutKeys`, given at construction.
public final class Dropout: Module {
    public let p: Float
    /// Shared by all dropouts of a model, so that the masks of a step are fixed by the step.
    public let keys: DropoutKeys

    public init(_ p: Float, keys: DropoutKeys) {
        self.p = p
        self.keys = keys
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining && p > 0 else { return x }
        return x.dropout(p, seed: keys.nextSite(), rows: keys.rows)
    }

    /// Dropout on a tensor every utterance shares (a position table): one mask per forward, the
    /// same on every process, as one process holding the whole batch draws it.
    public func sharedByTheBatch(_ x: Tensor) -> Tensor {
        guard isTraining && p > 0 else { return x }
        return x.dropout(p, seed: keys.nextSite(), rows: nil)
    }
}

/// NeMo's stochastic depth around one encoder layer: in training, with probability p the layer
/// is skipped (its output becomes x·0 + input, so its parameters get zero gradients, as in NeMo),
/// otherwise its residual is scaled by 1/(1 − p). One draw per (step, micro-batch, layer) from
/// the model's `DropoutKeys`, shared by every process of a data-parallel job (NeMo's ranks each
/// draw their own; here N ranks train as one process with their global batch).
public final class StochasticDepth: Module {
    public let p: Float
    public let keys: DropoutKeys

    public init(_ p: Float, keys: DropoutKeys) {
        self.p = p
        self.keys = keys
        super.init()
    }

    /// `output` of the layer whose input was `input`.
    public func callAsFunction(_ output: Tensor, input: Tensor) -> Tensor {
        guard isTraining && p > 0 else { return output }
        let u = Double(keys.nextSite() >> 11) / 9_007_199_254_740_992   // [0, 1)
        if u < Double(p) { return output * 0 + input }
        return (output - input) * (1 / (1 - p)) + input
    }

    /// NeMo's per-layer probabilities: layers before `startLayer` (1-based) never drop; from it
    /// on, `linear` grows l/L·p for l = 1…L (L = layers − startLayer), `uniform` is p throughout.
    public static func probabilities(layers: Int, p: Double, linear: Bool, startLayer: Int) -> [Float] {
        let l = layers - startLayer
        let rising = l > 0 ? (1...l).map { Float(linear ? Double($0) / Double(l) * p : p) } : []
        return Array(([Float](repeating: 0, count: startLayer) + rising).prefix(layers))
    }
}

/// One of several options per forward in training, drawn with `probabilities` from the
/// model's keys (so resume and N ranks draw what one process draws); option 0 in evaluation.
/// NeMo's multi-lookahead training picks its attention context this way (with Python's
/// `random.choices`).
public final class KeyedChoice: Module {
    public let probabilities: [Double]
    public let keys: DropoutKeys

    public init(probabilities: [Double], keys: DropoutKeys) {
        self.probabilities = probabilities
        self.keys = keys
        super.init()
    }

    public func pick() -> Int {
        guard isTraining && probabilities.count > 1 else { return 0 }
        return RandomGenerator.option(Double(keys.nextSite() >> 11) / 9_007_199_254_740_992, probabilities: probabilities)
    }
}

/// Dropout masks as a pure function of (seed, update, micro-batch, site, element of the global
/// batch), so that they do not depend on which process holds a row, and a checkpoint needs no
/// generator state: a resumed run draws what the uninterrupted one drew.
///
/// Sites are numbered in call order within a forward, which every process runs alike.
public final class DropoutKeys {
    private let seed: UInt64
    private var key: UInt64
    private var site: UInt64 = 0
    /// The row of the global batch that each row of the input stands for (nil: the same row).
    public private(set) var rows: [Int]?

    public init(seed: UInt64) {
        self.seed = seed
        key = RandomGenerator.splitMix64(seed)
    }

    /// Keys the masks of one micro-batch's forward.
    public func begin(update: Int, microBatch: Int, rows: [Int]?) {
        key = RandomGenerator.splitMix64(seed ^ RandomGenerator.splitMix64(UInt64(update) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(microBatch)))
        site = 0
        self.rows = rows
    }

    func nextSite() -> UInt64 {
        site += 1
        return RandomGenerator.splitMix64(key ^ (site &* 0xD1B5_4A32_D192_ED03))
    }
}
