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

    /// Mean negative log-likelihood of `targets[r]` in row r of log-probabilities [R, V] — the
    /// loss over masked tokens — with targets [R] (class indices as floats) on the same device;
    /// nothing is read to the host. Zero (not NaN) when there is no row.
    public func nllLoss(targets: Tensor) -> Tensor {
        precondition(rank == 2 && targets.count == shape[0], "nllLoss: \(shape) with \(targets.count) targets")
        let n = shape[0], device = Device.common("nllLoss", [self, targets])
        let out = n == 0 ? Tensor(zeros: [], on: device) : withoutGrad { gatheringColumns(targets).sum() * (-1 / Float(n)) }
        let entry = tapeEntry, inputShape = shape, columns = targets.detached()
        return out.recording([self]) { g in
            let gx = Tensor(zeros: inputShape, on: g.device)
            if n > 0 { g.backend.addToColumns(g, scale: -1 / Float(n), columns: columns, into: gx) }
            entry?.accumulate(gx, owned: true)
        }
    }

    /// `nllLoss` with targets made on the host, each checked against the V classes.
    public func nllLoss(targets: [Int]) -> Tensor {
        precondition(rank == 2 && targets.allSatisfy { $0 >= 0 && $0 < shape[1] }, "nllLoss: a target outside the \(shape[1]) classes")
        return nllLoss(targets: Tensor(targets.map(Float.init), shape: [targets.count], on: device))
    }
}
