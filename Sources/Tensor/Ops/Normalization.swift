/// LayerNorm over the last dimension and BatchNorm over rows, both fused with their affine part.
extension Tensor {
    /// PyTorch's LayerNorm over the last dimension (biased variance, eps inside the sqrt).
    public func layerNorm(weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let d = shape[rank - 1], rows = count / d
        precondition(weight.count == d && bias.count == d, "layerNorm: weight \(weight.shape) for width \(d)")
        let out = Tensor(uninitializedShape: shape)
        // Per-row mean and 1/σ, kept for backward.
        let stats = Tensor(uninitializedShape: [rows, 2])
        let x = data, y = out.data, w = weight.data, b = bias.data, st = stats.data
        Parallel.forRanges(rows, grain: max(1, 16_384 / d)) { r in
            for row in r {
                let xr = x + row * d, yr = y + row * d
                let mu = Vector.rowSum(xr, d) / Float(d)
                let rs = 1 / (Vector.rowSquaredDeviation(xr, from: mu, d) / Float(d) + eps).squareRoot()
                for i in 0..<d { yr[i] = (xr[i] - mu) * rs * w[i] + b[i] }
                st[2 * row] = mu
                st[2 * row + 1] = rs
            }
        }
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias.tapeEntry)
        let input = detached(), weightValues = weight.detached()
        return out.recording([self, weight, bias]) { g in
            // Read values through tensors the closure keeps alive (a raw pointer alone would let
            // the pool hand the storage to another tensor).
            let gp = g.data, st = stats.data, x = input.data, w = weightValues.data
            let gx = ex.map { Tensor(uninitializedShape: $0.shape) }
            let wantAffine = ew != nil || eb != nil
            // Per row (see `Vector.layerNormRowBackward`); dw, db summed per row range, ranges in parallel.
            let sums: [Float] = Parallel.columnSums(rows: rows, width: 2 * d, grain: max(1, 16_384 / d)) { r, partial in
                for row in r {
                    Vector.layerNormRowBackward(x: x + row * d, g: gp + row * d, weight: w, mean: st[2 * row],
                                                inverseDeviation: st[2 * row + 1], width: d,
                                                affine: wantAffine ? partial : nil, dx: gx.map { $0.data + row * d })
                }
            }
            if let gx { ex?.accumulate(gx, owned: true) }
            if let ew { ew.accumulate(Tensor(Array(sums[..<d]), shape: ew.shape), owned: true) }
            if let eb { eb.accumulate(Tensor(Array(sums[d...]), shape: eb.shape), owned: true) }
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
        var mean = [Float](repeating: 0, count: c), rstd = mean
        var totalRows = Double(rows)
        if training {
            // Σx and Σx² per channel, in Double: E[x²] − E[x]² cancels badly in Float.
            let x = data
            var sums: [Double] = Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
                for row in r {
                    let xr = x + row * c
                    for i in 0..<c { let v = Double(xr[i]); partial[i] += v; partial[c + i] += v * v }
                }
            }
            sums.append(Double(rows))
            (mean, rstd, totalRows) = Tensor.batchStatistics(&sums, runningMean: runningMean, runningVar: runningVar,
                                                             momentum: momentum, eps: eps, sync: sync)
        } else {
            for i in 0..<c {
                mean[i] = runningMean.data[i]
                rstd[i] = 1 / (runningVar.data[i] + eps).squareRoot()
            }
        }
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data, w = weight.data, b = bias.data
        // y = x·k + o per channel.
        let k = (0..<c).map { rstd[$0] * w[$0] }, o = (0..<c).map { b[$0] - mean[$0] * rstd[$0] * w[$0] }
        Parallel.forRanges(rows, grain: max(1, 16_384 / c)) { r in
            for row in r {
                let xr = x + row * c, yr = y + row * c
                for i in 0..<c { yr[i] = xr[i] * k[i] + o[i] }
            }
        }
        let (ex, ew, eb) = (tapeEntry, weight.tapeEntry, bias.tapeEntry)
        let input = detached(), weightValues = weight.detached()
        let result = out.recording([self, weight, bias]) { g in
            let x = input.data, w = weightValues.data, gp = g.data
            // Σg and Σg·x̂ per channel (Double, like the forward sums): the bias and weight
            // gradients, and terms of dx.
            var sums: [Double] = Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
                for row in r {
                    let xr = x + row * c, gr = gp + row * c
                    for i in 0..<c {
                        let gi = Double(gr[i])
                        partial[i] += gi
                        partial[c + i] += gi * Double((xr[i] - mean[i]) * rstd[i])
                    }
                }
            }
            if let ew { ew.accumulate(Tensor(sums[c...].map { Float($0) }, shape: ew.shape), owned: true) }
            if let eb { eb.accumulate(Tensor(sums[..<c].map { Float($0) }, shape: eb.shape), owned: true) }
            if training, let sync { sync.sumBackward(&sums) }
            let meanG = sums[..<c].map { Float($0 / totalRows) }, meanGXh = sums[c...].map { Float($0 / totalRows) }
            if let ex {
                let gx = Tensor(uninitializedShape: ex.shape)
                let dx = gx.data
                Parallel.forRanges(rows, grain: max(1, 16_384 / c)) { r in
                    for row in r {
                        let xr = x + row * c, gr = gp + row * c, dr = dx + row * c
                        for i in 0..<c {
                            if training {
                                let xh = (xr[i] - mean[i]) * rstd[i]
                                dr[i] = w[i] * rstd[i] * (gr[i] - meanG[i] - xh * meanGXh[i])
                            } else {
                                dr[i] = gr[i] * k[i]
                            }
                        }
                    }
                }
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
        for i in 0..<c {
            let mu = sums[i] / rows
            let variance = max(sums[c + i] / rows - mu * mu, 0)
            mean[i] = Float(mu)
            rstd[i] = 1 / (Float(variance) + eps).squareRoot()
            let unbiased = rows > 1 ? variance * rows / (rows - 1) : variance
            runningMean.data[i] = (1 - momentum) * runningMean.data[i] + momentum * Float(mu)
            runningVar.data[i] = (1 - momentum) * runningVar.data[i] + momentum * Float(unbiased)
        }
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
