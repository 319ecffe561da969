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
        let c = shape[rank - 1], rows = count / c
        precondition(weight.count == c && runningMean.count == c, "batchNorm: weight \(weight.shape) for \(c) channels")
        let device = Device.common("batchNorm", [self, weight, bias, runningMean, runningVar])
        var mean = [Float](repeating: 0, count: c), rstd = mean
        var totalRows = Double(rows)
        if training {
            // Σx and Σx² per channel, in Double: E[x²] − E[x]² cancels badly in Float.
            var sums = device.backend.batchNormSums(self)
            sums.append(Double(rows))
            (mean, rstd, totalRows) = Tensor.batchStatistics(&sums, runningMean: runningMean, runningVar: runningVar,
                                                             momentum: momentum, eps: eps, sync: sync)
        } else {
            let (runningMeans, runningVars) = (runningMean.array, runningVar.array)
            for i in 0..<c {
                mean[i] = runningMeans[i]
                rstd[i] = 1 / (runningVars[i] + eps).squareRoot()
            }
        }
        let out = Tensor(uninitializedShape: shape, on: device)
        let w = weight.array, b = bias.array
        // y = x·k + o per channel.
        let k = (0..<c).map { rstd[$0] * w[$0] }, o = (0..<c).map { b[$0] - mean[$0] * rstd[$0] * w[$0] }
        device.backend.batchNormApply(self, scale: k, shift: o, into: out)
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias.tapeEntry)
        let input = detached()
        let result = out.recording([self, weight, bias]) { g in
            // Σg and Σg·x̂ per channel (Double, like the forward sums): the bias and weight
            // gradients, and terms of dx.
            var sums = device.backend.batchNormBackwardSums(input, g, mean: mean, rstd: rstd)
            if let ew { ew.accumulate(Tensor(sums[c...].map { Float($0) }, shape: ew.shape, on: device), owned: true) }
            if let eb { eb.accumulate(Tensor(sums[..<c].map { Float($0) }, shape: eb.shape, on: device), owned: true) }
            if training, let sync { sync.sumBackward(&sums) }
            let meanG = sums[..<c].map { Float($0 / totalRows) }, meanGXh = sums[c...].map { Float($0 / totalRows) }
            if let ex {
                let gx = Tensor(uninitializedShape: ex.shape, on: device)
                let terms = BatchNormBackwardTerms(training: training, weight: w, mean: mean, rstd: rstd, meanG: meanG, meanGXh: meanGXh, scale: k)
                device.backend.batchNormBackwardInput(input, g, terms, into: gx)
                ex.accumulate(gx, owned: true)
            }
        }
        if training, result.tapeEntry != nil { sync?.backwardsDue += 1 }
        return result
    }

    /// Mean and 1/σ from (Σx, Σx², rows) summed over the processes of `sync`, and the running
    /// statistics moved (unbiased variance from the global row count). Returns the global rows.
    static func batchStatistics(_ sums: inout [Double], runningMean: Tensor, runningVar: Tensor, momentum: Float, eps: Float,
                                sync: BatchNormSync?) -> (mean: [Float], rstd: [Float], rows: Double) {
        let c = runningMean.count
        sync?.sumForward(&sums)
        let rows = sums[2 * c]
        var mean = [Float](repeating: 0, count: c), rstd = mean
        guard rows > 0 else { return (mean, rstd, rows) }
        var (runningMeans, runningVars) = (runningMean.array, runningVar.array)
        for i in 0..<c {
            let mu = sums[i] / rows
            let variance = max(sums[c + i] / rows - mu * mu, 0)
            mean[i] = Float(mu)
            rstd[i] = 1 / (Float(variance) + eps).squareRoot()
            let unbiased = rows > 1 ? variance * rows / (rows - 1) : variance
            runningMeans[i] = (1 - momentum) * runningMeans[i] + momentum * Float(mu)
            runningVars[i] = (1 - momentum) * runningVars[i] + momentum * Float(unbiased)
        }
        // The running statistics are a few hundred values per layer: updated on the host.
        runningMean.assign(runningMeans)
        runningVar.assign(runningVars)
        return (mean, rstd, rows)
    }

    /// A training-mode BatchNorm forward of a process that holds no rows of the batch: it
    /// joins the sums of `sync` with zeros and moves its running statistics like the others.
    public static func batchNormWithoutRows(runningMean: Tensor, runningVar: Tensor, momentum: Float, sync: BatchNormSync) {
        var sums = [Double](repeating: 0, count: 2 * runningMean.count + 1)
        _ = batchStatistics(&sums, runningMean: runningMean, runningVar: runningVar, momentum: momentum, eps: 0, sync: sync)
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
