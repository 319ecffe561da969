import Tensor

/// `nn.Dropout(p)` on batch-first input: active only in training; its masks come from the
/// model's `DropoutKeys`.
public final class Dropout: Module {
    public let p: Float
    /// Shared by all dropouts of a model, so that the masks of a step are fixed by the step.
    public var keys: DropoutKeys

    public init(_ p: Float, keys: DropoutKeys) {
        self.p = p
        self.keys = keys
        super.init()
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isTraining && p > 0 else { return x }
        return x.dropout(p, seed: keys.nextSite(), rows: keys.rows)
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
