/// LayerNorm over the last dimension and BatchNorm over rows, both fused with their affine part.
extension Tensor {
    /// PyTorch's LayerNorm over the last dimension (biased variance, eps inside the sqrt).
    public func layerNorm(weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let d = shape[rank - 1], rows = count / d
        precondition(weight.count == d && bias.count == d, "layerNorm: weight \(weight.shape) for width \(d)")
        let device = Device.common("layerNorm", [self, weight, bias])
        let out = Tensor(uninitializedShape: shape, on: device)
        // Per-row mean and 1/σ, kept for backward.
        let stats = Tensor(uninitializedShape: [rows, 2], on: device)
        device.backend.layerNormForward(self, weight: weight, bias: bias, eps: eps, into: out, stats: stats)
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias.tapeEntry)
        let input = detached(), weightValues = weight.detached()
        return out.recording([self, weight, bias]) { g in
            let gx = ex.map { Tensor(uninitializedShape: $0.shape, on: device) }
            // [dw; db], left on the device.
            let affine = ew != nil || eb != nil ? Tensor(uninitializedShape: [2, d], on: device) : nil
            device.backend.layerNormBackward(input, g, weight: weightValues, stats: stats, dx: gx, affine: affine)
            if let gx { ex?.accumulate(gx, owned: true) }
            if let ew, let affine { ew.accumulate(affine.slice(axis: 0, 0..<1).reshaped(ew.shape), owned: true) }
            if let eb, let affine { eb.accumulate(affine.slice(axis: 0, 1..<2).reshaped(eb.shape), owned: true) }
        }
    }

    /// BatchNorm with channels on the last dimension, statistics over all other positions.
    ///
    /// Training normalises with the batch mean and biased variance and moves the running
    /// statistics by `momentum` (the variance with the unbiased estimate), as PyTorch does;
    /// evaluation normalises with the running statistics. With `sync`, the batch is the union
    /// of every process's rows (torch's SyncBatchNorm): the forward sums (Σx, Σx², rows) and
    /// the backward sums (Σg, Σg·x̂) are added across processes; the weight and bias gradients
    /// stay local (they are summed with all other gradients).
    public func batchNorm(weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor,
                          training: Bool, momentum: Float = 0.1, eps: Float = 1e-5, sync: BatchNormSync? = nil) -> Tensor {
        let c = shape[rank - 1]
        precondition(weight.count == c && runningMean.count == c, "batchNorm: weight \(weight.shape) for \(c) channels")
        let device = Device.common("batchNorm", [self, weight, bias, runningMean, runningVar])
        // Per channel (mean, 1/σ), kept on the device for backward: nothing here reads a value.
        let stats = Tensor(uninitializedShape: [2, c], on: device)
        var rows = Double(count / max(c, 1))
        if training {
            rows = device.backend.batchNormStatistics(self, runningMean: runningMean, runningVar: runningVar, momentum: momentum, eps: eps,
                                                      combine: sync.map { sync in { sync.sumForward(&$0) } }, into: stats)
        } else {
            device.backend.batchNormRunningStatistics(runningMean: runningMean, runningVar: runningVar, eps: eps, into: stats)
        }
        let out = Tensor(uninitializedShape: shape, on: device)
        device.backend.batchNormApply(self, weight: weight, bias: bias, stats: stats, into: out)
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias.tapeEntry)
        let input = detached(), weightValues = weight.detached()
        let result = out.recording([self, weight, bias]) { g in
            let gx = ex.map { Tensor(uninitializedShape: $0.shape, on: device) }
            // [Σg; Σg·x̂]: the bias and weight gradients.
            let affine = ew != nil || eb != nil ? Tensor(uninitializedShape: [2, c], on: device) : nil
            device.backend.batchNormBackward(input, g, weight: weightValues, stats: stats, training: training, rows: rows,
                                             combine: training ? sync.map { sync in { sync.sumBackward(&$0) } } : nil, dx: gx, affine: affine)
            if let eb, let affine { eb.accumulate(affine.slice(axis: 0, 0..<1).reshaped(eb.shape), owned: true) }
            if let ew, let affine { ew.accumulate(affine.slice(axis: 0, 1..<2).reshaped(ew.shape), owned: true) }
            if let gx { ex?.accumulate(gx, owned: true) }
        }
        if training, result.tapeEntry != nil { sync?.backwardsDue += 1 }
        return result
    }

    /// A training-mode BatchNorm forward of a process that holds no rows of the batch: it
    /// joins the sums of `sync` with zeros and moves its running statistics like the others.
    public static func batchNormWithoutRows(runningMean: Tensor, runningVar: Tensor, momentum: Float, sync: BatchNormSync) {
        let c = runningMean.count, device = runningMean.device
        let none = Tensor(uninitializedShape: [0, c], on: device), stats = Tensor(uninitializedShape: [2, c], on: device)
        _ = device.backend.batchNormStatistics(none, runningMean: runningMean, runningVar: runningVar, momentum: momentum, eps: 0,
                                               combine: { sync.sumForward(&$0) }, into: stats)
        sync.backwardsDue += 1
    }
}

/// Sums a BatchNorm's statistics over the processes that share its batch (see `batchNorm`).
/// Every process must join every sum in the same order: a process whose backward does not
/// reach a BatchNorm (no masked tokens, no rows) joins the sums it owes with zeros.
public final class BatchNormSync {
    /// Element-wise sum over the processes, in place.
    let sum: (UnsafeMutableBufferPointer<Double>) -> Void
    /// Forward sums joined whose backward sums are still owed.
    public fileprivate(set) var backwardsDue = 0

    public init(sum: @escaping (UnsafeMutableBufferPointer<Double>) -> Void) { self.sum = sum }

    fileprivate func sumForward(_ sums: inout [Double]) { sums.withUnsafeMutableBufferPointer { sum($0) } }

    fileprivate func sumBackward(_ sums: inout [Double]) {
        sums.withUnsafeMutableBufferPointer { sum($0) }
        backwardsDue -= 1
    }

    /// Joins the backward sums still owed with zeros (`channels` per BatchNorm).
    public func joinOwedBackwards(channels: Int) {
        while backwardsDue > 0 {
            var zeros = [Double](repeating: 0, count: 2 * channels)
            sumBackward(&zeros)
        }
    }

    /// Forgets owed backward sums: no process runs a backward this time.
    public func forgiveOwedBackwards() { backwardsDue = 0 }
}

extension Tensor {
    /// torch's GroupNorm on channels-last input [B, …, C]: the C channels form `groups` groups of
    /// C/G consecutive channels, and each (batch item, group) is normalised over all its
    /// positions and channels together (biased variance, eps inside the sqrt), then scaled and
    /// shifted per channel. Built from LayerNorm over each group's values laid out as one row, so
    /// its backward is LayerNorm's and the permutes'.
    public func groupNorm(groups: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let c = shape[rank - 1], b = shape[0]
        precondition(groups > 0 && c % groups == 0, "groupNorm: \(c) channels do not split into \(groups) groups")
        precondition(weight.count == c && bias.count == c, "groupNorm: weight \(weight.shape), bias \(bias.shape) for \(c) channels")
        let positions = count / (b * c), width = c / groups
        // [B, P, G, C/G] → [B, G, P, C/G] → rows [B, G, P·C/G], one per (item, group).
        let rows = reshaped([b, positions, groups, width]).permuted([0, 2, 1, 3]).reshaped([b, groups, positions * width])
        let unit = Tensor(repeating: 1, shape: [positions * width], on: device), zero = Tensor(zeros: [positions * width], on: device)
        let normalized = rows.layerNorm(weight: unit, bias: zero, eps: eps)
            .reshaped([b, groups, positions, width]).permuted([0, 2, 1, 3]).reshaped(shape)
        return normalized * weight + bias
    }
}
