/// LayerNorm over the last dimension and BatchNorm over rows, both fused with their affine part.
extension Tensor {
    /// PyTorch's LayerNorm over the last dimension (biased variance, eps inside the sqrt).
    public func layerNorm(weight: Tensor, bias: Tensor, eps: Float = 1e-5) -> Tensor {
        let d = shape[rank - 1], rows = count / d
        precondition(weight.count == d && bias.count == d, "layerNorm: weight \(weight.shape) for width \(d)")
        let out = Tensor(uninitializedShape: shape)
        var mean = [Float](repeating: 0, count: rows), rstd = mean
        let x = data, y = out.data, w = weight.data, b = bias.data
        mean.withUnsafeMutableBufferPointer { mp in
            rstd.withUnsafeMutableBufferPointer { rp in
                let mp = mp.baseAddress!, rp = rp.baseAddress!
                Parallel.forRanges(rows, grain: max(1, 8192 / d)) { r in
                    for row in r {
                        let xr = x + row * d, yr = y + row * d
                        let mu = Float(Vector.sum(xr, count: d)) / Float(d)
                        var ss: Float = 0
                        for i in 0..<d { let c = xr[i] - mu; ss += c * c }
                        let rs = 1 / (ss / Float(d) + eps).squareRoot()
                        for i in 0..<d { yr[i] = (xr[i] - mu) * rs * w[i] + b[i] }
                        mp[row] = mu
                        rp[row] = rs
                    }
                }
            }
        }
        return out.recording([self, weight, bias]) { _, g in
            let gx = Tensor(uninitializedShape: self.shape)
            let dw = Tensor(zeros: [d]), db = Tensor(zeros: [d])
            let gp = g.data, dx = gx.data
            for row in 0..<rows {
                let xr = x + row * d, gr = gp + row * d, dr = dx + row * d
                let mu = mean[row], rs = rstd[row]
                var sumDh: Float = 0, sumDhXh: Float = 0
                for i in 0..<d {
                    let xh = (xr[i] - mu) * rs
                    let dh = gr[i] * w[i]
                    sumDh += dh
                    sumDhXh += dh * xh
                    dw.data[i] += gr[i] * xh
                    db.data[i] += gr[i]
                }
                let a = sumDh / Float(d), c = sumDhXh / Float(d)
                for i in 0..<d { dr[i] = rs * (gr[i] * w[i] - a - (xr[i] - mu) * rs * c) }
            }
            if self.requiresGrad { self.accumulateGrad(gx, owned: true) }
            if weight.requiresGrad { weight.accumulateGrad(dw, owned: true) }
            if bias.requiresGrad { bias.accumulateGrad(db, owned: true) }
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
            var s = [Double](repeating: 0, count: c), ss = s
            for row in 0..<rows {
                let xr = data + row * c
                for i in 0..<c { let v = Double(xr[i]); s[i] += v; ss[i] += v * v }
            }
            for i in 0..<c {
                let mu = s[i] / Double(rows)
                let variance = max(ss[i] / Double(rows) - mu * mu, 0)
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
        return out.recording([self, weight, bias]) { _, g in
            var sumG = [Float](repeating: 0, count: c), sumGXh = sumG
            for row in 0..<rows {
                let xr = x + row * c, gr = g.data + row * c
                for i in 0..<c {
                    sumG[i] += gr[i]
                    sumGXh[i] += gr[i] * (xr[i] - mean[i]) * rstd[i]
                }
            }
            if self.requiresGrad {
                let gx = Tensor(uninitializedShape: self.shape)
                for row in 0..<rows {
                    let xr = x + row * c, gr = g.data + row * c, dr = gx.data + row * c
                    for i in 0..<c {
                        if training {
                            let xh = (xr[i] - mean[i]) * rstd[i]
                            dr[i] = w[i] * rstd[i] * (gr[i] - sumG[i] / Float(rows) - xh * sumGXh[i] / Float(rows))
                        } else {
                            dr[i] = gr[i] * k[i]
                        }
                    }
                }
                self.accumulateGrad(gx, owned: true)
            }
            if weight.requiresGrad { weight.accumulateGrad(Tensor(sumGXh, shape: weight.shape), owned: true) }
            if bias.requiresGrad { bias.accumulateGrad(Tensor(sumG, shape: bias.shape), owned: true) }
        }
    }
}
