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
    /// evaluation normalises with the running statistics.
    public func batchNorm(weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor,
                          training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
        let c = shape[rank - 1], rows = count / c
        precondition(weight.count == c && runningMean.count == c, "batchNorm: weight \(weight.shape) for \(c) channels")
        var mean = [Float](repeating: 0, count: c), rstd = mean
        if training {
            // Σx and Σx² per channel, in Double: E[x²] − E[x]² cancels badly in Float.
            let x = data
            let sums: [Double] = Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
                for row in r {
                    let xr = x + row * c
                    for i in 0..<c { let v = Double(xr[i]); partial[i] += v; partial[c + i] += v * v }
                }
            }
            for i in 0..<c {
                let mu = sums[i] / Double(rows)
                let variance = max(sums[c + i] / Double(rows) - mu * mu, 0)
                mean[i] = Float(mu)
                rstd[i] = 1 / (Float(variance) + eps).squareRoot()
                let unbiased = rows > 1 ? variance * Double(rows) / Double(rows - 1) : variance
                runningMean.data[i] = (1 - momentum) * runningMean.data[i] + momentum * Float(mu)
                runningVar.data[i] = (1 - momentum) * runningVar.data[i] + momentum * Float(unbiased)
            }
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
        return out.recording([self, weight, bias]) { g in
            let x = input.data, w = weightValues.data, gp = g.data
            // Σg and Σg·x̂ per channel: the bias and weight gradients, and terms of dx.
            let sums: [Float] = Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
                for row in r {
                    let xr = x + row * c, gr = gp + row * c
                    for i in 0..<c {
                        partial[i] += gr[i]
                        partial[c + i] += gr[i] * (xr[i] - mean[i]) * rstd[i]
                    }
                }
            }
            let sumG = Array(sums[..<c]), sumGXh = Array(sums[c...])
            if let ex {
                let gx = Tensor(uninitializedShape: ex.shape)
                let dx = gx.data
                Parallel.forRanges(rows, grain: max(1, 16_384 / c)) { r in
                    for row in r {
                        let xr = x + row * c, gr = gp + row * c, dr = dx + row * c
                        for i in 0..<c {
                            if training {
                                let xh = (xr[i] - mean[i]) * rstd[i]
                                dr[i] = w[i] * rstd[i] * (gr[i] - sumG[i] / Float(rows) - xh * sumGXh[i] / Float(rows))
                            } else {
                                dr[i] = gr[i] * k[i]
                            }
                        }
                    }
                }
                ex.accumulate(gx, owned: true)
            }
            if let ew { ew.accumulate(Tensor(sumGXh, shape: ew.shape), owned: true) }
            if let eb { eb.accumulate(Tensor(sumG, shape: eb.shape), owned: true) }
        }
    }
}
