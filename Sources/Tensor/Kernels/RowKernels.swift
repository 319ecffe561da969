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

    public func batchNormSums(_ input: Tensor) -> [Double] {
        let c = input.shape[input.rank - 1], rows = input.count / c, x = input.address
        return Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
            for row in r {
                let xr = x + row * c
                for i in 0..<c { let v = Double(xr[i]); partial[i] += v; partial[c + i] += v * v }
            }
        }
    }

    public func batchNormApply(_ input: Tensor, scale k: [Float], shift o: [Float], into out: Tensor) {
        let c = input.shape[input.rank - 1], rows = input.count / c
        let x = input.address, y = out.address
        Parallel.forRanges(rows, grain: max(1, 16_384 / c)) { r in
            for row in r {
                let xr = x + row * c, yr = y + row * c
                for i in 0..<c { yr[i] = xr[i] * k[i] + o[i] }
            }
        }
    }

    public func batchNormBackwardSums(_ input: Tensor, _ g: Tensor, mean: [Float], rstd: [Float]) -> [Double] {
        let c = input.shape[input.rank - 1], rows = input.count / c
        let x = input.address, gp = g.address
        return Parallel.columnSums(rows: rows, width: 2 * c, grain: max(1, 16_384 / c)) { r, partial in
            for row in r {
                let xr = x + row * c, gr = gp + row * c
                for i in 0..<c {
                    let gi = Double(gr[i])
                    partial[i] += gi
                    partial[c + i] += gi * Double((xr[i] - mean[i]) * rstd[i])
                }
            }
        }
    }

    public func batchNormBackwardInput(_ input: Tensor, _ g: Tensor, _ t: BatchNormBackwardTerms, into gx: Tensor) {
        let c = input.shape[input.rank - 1], rows = input.count / c
        let x = input.address, gp = g.address, dx = gx.address
        let (w, mean, rstd, meanG, meanGXh, k, training) = (t.weight, t.mean, t.rstd, t.meanG, t.meanGXh, t.scale, t.training)
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
    }
}
