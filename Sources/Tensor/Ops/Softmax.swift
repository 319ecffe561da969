import Foundation
/// Softmax (with NeMo's attention masking), log-softmax, and the masked-token NLL.
extension Tensor {
    /// Softmax over the last dimension of [B, H, Tq, Tk] scores with a [B, 1, Tq, Tk] mask
    /// (1 = masked), exactly as NeMo's attention: masked scores are set to −10000 before the
    /// softmax and masked probabilities are set to 0 after it, so a fully masked row is all 0.
    /// Without a mask this is a plain softmax over the last dimension.
    public func softmax(mask: Tensor? = nil) -> Tensor {
        let n = shape[rank - 1], rows = count / n
        var rowsPerMaskRow = 1, heads = 1
        if let mask {
            precondition(rank == 4 && mask.shape == [shape[0], 1, shape[2], shape[3]],
                         "softmax mask \(mask.shape) for scores \(shape): expected [B, 1, Tq, Tk]")
            heads = shape[1]
            rowsPerMaskRow = shape[2]
        }
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data, m = mask?.data
        Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
            for row in r {
                let xr = x + row * n, yr = y + row * n
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
        let entry = tapeEntry, probabilities = out.detached()
        return out.recording([self]) { g in
            // dx = y ⊙ (g − Σ y·g); masked entries have y = 0 and get no gradient.
            let gx = Tensor(uninitializedShape: g.shape)
            let y = probabilities.data, gp = g.data, d = gx.data
            Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
                for row in r {
                    let yr = y + row * n, gr = gp + row * n, dr = d + row * n
                    let dot = Vector.rowDot(yr, gr, n)
                    for j in 0..<n { dr[j] = yr[j] * (gr[j] - dot) }
                }
            }
            entry?.accumulate(gx, owned: true)
        }
    }

    /// log softmax over the last dimension.
    public func logSoftmax() -> Tensor {
        let n = shape[rank - 1], rows = count / n
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
            for row in r {
                let xr = x + row * n, yr = y + row * n
                let mx = Vector.rowMax(xr, n)
                for j in 0..<n { yr[j] = Vector.exp(xr[j] - mx) }
                let lse = mx + Foundation.log(Vector.rowSum(yr, n))
                for j in 0..<n { yr[j] = xr[j] - lse }
            }
        }
        let entry = tapeEntry, logProbabilities = out.detached()
        return out.recording([self]) { g in
            // dx = g − softmax·Σg
            let gx = Tensor(uninitializedShape: g.shape)
            let y = logProbabilities.data, gp = g.data, d = gx.data
            Parallel.forRanges(rows, grain: max(1, 8192 / n)) { r in
                for row in r {
                    let yr = y + row * n, gr = gp + row * n, dr = d + row * n
                    let total = Vector.rowSum(gr, n)
                    for j in 0..<n { dr[j] = gr[j] - Vector.exp(yr[j]) * total }
                }
            }
            entry?.accumulate(gx, owned: true)
        }
    }

    /// Mean negative log-likelihood of `targets[i]` in row `rows[i]` of log-probabilities
    /// [R, V] — the loss over masked tokens. Zero (not NaN) when no row is selected.
    public func nllLoss(rows: [Int], targets: [Int]) -> Tensor {
        precondition(rank == 2 && rows.count == targets.count, "nllLoss: \(shape), \(rows.count) rows, \(targets.count) targets")
        let v = shape[1]
        var total = 0.0
        for (r, t) in zip(rows, targets) {
            precondition(t >= 0 && t < v && r >= 0 && r < shape[0], "nllLoss: target \(t) or row \(r) out of range for \(shape)")
            total -= Double(data[r * v + t])
        }
        let n = rows.count
        let out = Tensor(scalar: n == 0 ? 0 : Float(total / Double(n)))
        let entry = tapeEntry, inputShape = shape
        return out.recording([self]) { g in
            let gx = Tensor(zeros: inputShape)
            let w = n == 0 ? 0 : -g.scalar / Float(n)
            for (r, t) in zip(rows, targets) { gx.data[r * v + t] += w }
            entry?.accumulate(gx, owned: true)
        }
    }
}
