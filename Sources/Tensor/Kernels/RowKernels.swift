import Foundation

/// Row-wise kernels of the CPU backend: softmax, log-softmax, LayerNorm and BatchNorm.
extension CPUBackend {
    public func softmaxForward(_ x: Tensor, mask: Tensor?, into out: Tensor) {
        let n = x.shape[x.rank - 1], rows = x.count / n
        let heads = mask == nil ? 1 : x.shape[1], rowsPerMaskRow = mask == nil ? 1 : x.shape[2]
        let xp = x.address, y = out.address, m = mask?.address
        Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
            for row in r {
                let xr = xp + row * n, yr = y + row * n
                // Row (b, h, i) reads mask row (b, i).
                let mr = m.map { $0 + ((row / (heads * rowsPerMaskRow)) * rowsPerMaskRow + row % rowsPerMaskRow) * n }
                if let mr {
                    for j in 0..<n { yr[j] = mr[j] != 0 ? -10000 : xr[j] }
                } else {
                    yr.update(from: xr, count: n)
                }
                let mx = Vector.rowMax(yr, n)
                for j in 0..<n { yr[j] = Vector.exp(yr[j] - mx) }
                let inv = 1 / Vector.rowSum(yr, n)
                if let mr {
                    for j in 0..<n { yr[j] = mr[j] != 0 ? 0 : yr[j] * inv }
                } else {
                    for j in 0..<n { yr[j] *= inv }
                }
            }
        }
    }

    public func softmaxBackward(_ probabilities: Tensor, _ g: Tensor, into gx: Tensor) {
        let n = g.shape[g.rank - 1], rows = g.count / n
        let y = probabilities.address, gp = g.address, d = gx.address
        Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
            for row in r {
                let yr = y + row * n, gr = gp + row * n, dr = d + row * n
                let dot = Vector.rowDot(yr, gr, n)
                for j in 0..<n { dr[j] = yr[j] * (gr[j] - dot) }
            }
        }
    }

    public func logSoftmaxForward(_ x: Tensor, into out: Tensor) {
        let n = x.shape[x.rank - 1], rows = x.count / n
        let xp = x.address, y = out.address
        Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
            for row in r {
                let xr = xp + row * n, yr = y + row * n
                let mx = Vector.rowMax(xr, n)
                for j in 0..<n { yr[j] = Vector.exp(xr[j] - mx) }
                let lse = mx + Foundation.log(Vector.rowSum(yr, n))
                for j in 0..<n { yr[j] = xr[j] - lse }
            }
        }
    }

    public func logSoftmaxBackward(_ logProbabilities: Tensor, _ g: Tensor, into gx: Tensor) {
        let n = g.shape[g.rank - 1], rows = g.count / n
        let y = logProbabilities.address, gp = g.address, d = gx.address
        Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
            for row in r {
                let yr = y + row * n, gr = gp + row * n, dr = d + row * n
                let total = Vector.rowSum(gr, n)
                for j in 0..<n { dr[j] = gr[j] - Vector.exp(yr[j]) * total }
            }
        }
    }

    public func layerNormForward(_ input: Tensor, weight: Tensor, bias: Tensor, eps: Float, into out: Tensor, stats: Tensor) {
        let d = input.shape[input.rank - 1], rows = input.count / d
        let x = input.address, y = out.address, w = weight.address, b = bias.address, st = stats.address
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
    }

    public func layerNormBackward(_ input: Tensor, _ g: Tensor, weight: Tensor, stats: Tensor, dx gx: Tensor?, affine: Tensor?) {
        let d = input.shape[input.rank - 1], rows = input.count / d
        let gp = g.address, st = stats.address, x = input.address, w = weight.address
        // Per row (see `Vector.layerNormRowBackward`); dw, db summed per row range, ranges in parallel.
        let sums = Parallel.columnSums(rows: rows, width: 2 * d, grain: max(1, 16_384 / d)) { r, partial in
            for row in r {
                Vector.layerNormRowBackward(x: x + row * d, g: gp + row * d, weight: w, mean: st[2 * row],
                                            inverseDeviation: st[2 * row + 1], width: d,
                                            affine: affine != nil ? partial : nil, dx: gx.map { $0.address + row * d })
            }
        }
        if let affine { sums.withUnsafeBufferPointer { affine.address.update(from: $0.baseAddress!, count: 2 * d) } }
    }

    public func batchNormStatistics(_ input: Tensor, runningMean: Tensor, runningVar: Tensor, momentum: Float, eps: Float,
                                    combine: ((inout [Double]) -> Void)?, into stats: Tensor) -> Double {
        let c = input.shape[input.rank - 1], rows = input.count / max(c, 1), x = input.address
        var sums = Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
            for row in r {
                let xr = x + row * c
                for i in 0..<c { let v = Double(xr[i]); partial[i] += v; partial[c + i] += v * v }
            }
        }
        sums.append(Double(rows))
        combine?(&sums)
        let total = sums[2 * c], mean = stats.address, rstd = stats.address + c
        let (runningMeans, runningVars) = (runningMean.address, runningVar.address)
        for i in 0..<c {
            guard total > 0 else { (mean[i], rstd[i]) = (0, 0); continue }
            // E[x²] − E[x]² in Double: it cancels badly in Float.
            let mu = sums[i] / total
            let variance = max(sums[c + i] / total - mu * mu, 0)
            mean[i] = Float(mu)
            rstd[i] = 1 / (Float(variance) + eps).squareRoot()
            let unbiased = total > 1 ? variance * total / (total - 1) : variance
            runningMeans[i] = (1 - momentum) * runningMeans[i] + momentum * Float(mu)
            runningVars[i] = (1 - momentum) * runningVars[i] + momentum * Float(unbiased)
        }
        return total
    }

    public func batchNormRunningStatistics(runningMean: Tensor, runningVar: Tensor, eps: Float, into stats: Tensor) {
        let c = runningMean.count
        for i in 0..<c {
            stats.address[i] = runningMean.address[i]
            stats.address[c + i] = 1 / (runningVar.address[i] + eps).squareRoot()
        }
    }

    public func batchNormApply(_ input: Tensor, weight: Tensor, bias: Tensor, stats: Tensor, into out: Tensor) {
        let c = input.shape[input.rank - 1], rows = input.count / c
        let (w, b, mean, rstd) = (weight.address, bias.address, stats.address, stats.address + c)
        let k = (0..<c).map { rstd[$0] * w[$0] }, o = (0..<c).map { b[$0] - mean[$0] * rstd[$0] * w[$0] }
        let x = input.address, y = out.address
        Parallel.forRanges(rows, grain: max(1, 16_384 / c)) { r in
            for row in r {
                let xr = x + row * c, yr = y + row * c
                for i in 0..<c { yr[i] = xr[i] * k[i] + o[i] }
            }
        }
    }

    public func batchNormBackward(_ input: Tensor, _ g: Tensor, weight: Tensor, stats: Tensor, training: Bool, rows total: Double,
                                  combine: ((inout [Double]) -> Void)?, dx: Tensor?, affine: Tensor?) {
        let c = input.shape[input.rank - 1], rows = input.count / c
        let x = input.address, gp = g.address, w = weight.address, mean = stats.address, rstd = stats.address + c
        var sums = Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
            for row in r {
                let xr = x + row * c, gr = gp + row * c
                for i in 0..<c {
                    let gi = Double(gr[i])
                    partial[i] += gi
                    partial[c + i] += gi * Double((xr[i] - mean[i]) * rstd[i])
                }
            }
        }
        if let affine { for i in 0..<(2 * c) { affine.address[i] = Float(sums[i]) } }
        combine?(&sums)
        guard let dx else { return }
        let meanG = sums[..<c].map { Float($0 / total) }, meanGXh = sums[c...].map { Float($0 / total) }
        let out = dx.address
        Parallel.forRanges(rows, grain: max(1, 16_384 / c)) { r in
            for row in r {
                let xr = x + row * c, gr = gp + row * c, dr = out + row * c
                for i in 0..<c {
                    if training {
                        let xh = (xr[i] - mean[i]) * rstd[i]
                        dr[i] = w[i] * rstd[i] * (gr[i] - meanG[i] - xh * meanGXh[i])
                    } else {
                        dr[i] = gr[i] * (rstd[i] * w[i])
                    }
                }
            }
        }
    }
}
