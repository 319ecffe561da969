/// Pointwise nonlinearities, the gated linear unit and dropout.
extension Tensor {
    public func activation(_ f: ActivationFunction) -> Tensor {
        let out = Tensor(uninitializedShape: shape, on: device)
        backend.activationForward(f, self, into: out)
        let entry = tapeEntry
        let saved = f.derivativeFromOutput ? out.detached() : detached()
        return out.recording([self]) { g in
            let d = Tensor(uninitializedShape: g.shape, on: g.device)
            g.backend.activationBackward(f, saved: saved, g, into: d)
            entry?.accumulate(d, owned: true)
        }
    }

    public func relu() -> Tensor { activation(.relu) }
    public func sigmoid() -> Tensor { activation(.sigmoid) }
    public func silu() -> Tensor { activation(.silu) }
    public func gelu() -> Tensor { activation(.gelu) }

    /// Gated linear unit over the last dimension [.., 2C] → [.., C]: the first half is the
    /// value, the second half the gate (PyTorch's `glu` order).
    public func glu() -> Tensor {
        let twoC = shape[rank - 1]
        precondition(twoC % 2 == 0, "glu needs an even last dimension, got \(shape)")
        let out = Tensor(uninitializedShape: Array(shape.dropLast()) + [twoC / 2], on: device)
        backend.gluForward(self, into: out)
        let entry = tapeEntry, inputShape = shape, input = detached()
        return out.recording([self]) { g in
            let gx = Tensor(uninitializedShape: inputShape, on: g.device)
            g.backend.gluBackward(input, g, into: gx)
            entry?.accumulate(gx, owned: true)
        }
    }

    /// Inverted dropout: zero with probability p, scale survivors by 1/(1−p). Identity for p = 0.
    ///
    /// The mask is a pure function of `seed` and each element's index in a batch: `rows[b]` is
    /// the batch row that leading row b of this tensor stands for (nil: row b). A process
    /// holding some rows of a larger batch (or a batch whose unreadable utterances were
    /// dropped) draws exactly the mask one process holding every row would draw for them. The
    /// mask is never stored: backward recomputes it bit for bit.
    public func dropout(_ p: Float, seed: UInt64, rows: [Int]? = nil) -> Tensor {
        guard p > 0 else { return self }
        let mask = DropoutMask(p: p, seed: seed, rows: rows)
        let out = Tensor(uninitializedShape: shape, on: device)
        backend.dropout(self, into: out, mask)
        let entry = tapeEntry
        return out.recording([self]) { g in
            let gx = Tensor(uninitializedShape: g.shape, on: g.device)
            g.backend.dropout(g, into: gx, mask)
            entry?.accumulate(gx, owned: true)
        }
    }
}
