import Foundation
/// Softmax (with NeMo's attention masking), log-softmax, and the masked-token NLL.
extension Tensor {
    /// Softmax over the last dimension of [B, H, Tq, Tk] scores with a [B, 1, Tq, Tk] mask
    /// (1 = masked), exactly as NeMo's attention: masked scores are set to −10000 before the
    /// softmax and masked probabilities are set to 0 after it, so a fully masked row is all 0.
    /// Without a mask this is a plain softmax over the last dimension.
    public func softmax(mask: Tensor? = nil) -> Tensor {
        if let mask {
            precondition(rank == 4 && mask.shape == [shape[0], 1, shape[2], shape[3]],
                         "softmax mask \(mask.shape) for scores \(shape): expected [B, 1, Tq, Tk]")
        }
        let device = Device.common("softmax", [self, mask])
        let out = Tensor(uninitializedShape: shape, on: device)
        device.backend.softmaxForward(self, mask: mask, into: out)
        let entry = tapeEntry, probabilities = out.detached()
        return out.recording([self]) { g in
            // dx = y ⊙ (g − Σ y·g); masked entries have y = 0 and get no gradient.
            let gx = Tensor(uninitializedShape: g.shape, on: g.device)
            g.backend.softmaxBackward(probabilities, g, into: gx)
            entry?.accumulate(gx, owned: true)
        }
    }

    /// log softmax over the last dimension.
    public func logSoftmax() -> Tensor {
        let out = Tensor(uninitializedShape: shape, on: device)
        backend.logSoftmaxForward(self, into: out)
        let entry = tapeEntry, logProbabilities = out.detached()
        return out.recording([self]) { g in
            // dx = g − softmax·Σg
            let gx = Tensor(uninitializedShape: g.shape, on: g.device)
            g.backend.logSoftmaxBackward(logProbabilities, g, into: gx)
            entry?.accumulate(gx, owned: true)
        }
    }

    /// Mean negative log-likelihood of `targets[i]` in row `rows[i]` of log-probabilities
    /// [R, V] — the loss over masked tokens. Zero (not NaN) when no row is selected.
    public func nllLoss(rows: [Int], targets: [Int]) -> Tensor {
        precondition(rank == 2 && rows.count == targets.count, "nllLoss: \(shape), \(rows.count) rows, \(targets.count) targets")
        let v = shape[1]
        for (r, t) in zip(rows, targets) {
            precondition(t >= 0 && t < v && r >= 0 && r < shape[0], "nllLoss: target \(t) or row \(r) out of range for \(shape)")
        }
        let picked = zip(rows, targets).map { r, t in r * v + t }
        // Summed on the host in Double, in row order.
        var total = 0.0
        for value in backend.elements(self, at: picked) { total -= Double(value) }
        let n = rows.count
        let out = Tensor(scalar: n == 0 ? 0 : Float(total / Double(n)), on: device)
        let entry = tapeEntry, inputShape = shape
        return out.recording([self]) { g in
            let gx = Tensor(zeros: inputShape, on: g.device)
            g.backend.addValue(n == 0 ? 0 : -g.scalar / Float(n), at: picked, into: gx)
            entry?.accumulate(gx, owned: true)
        }
    }
}
