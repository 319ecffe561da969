/// Fused relative-position attention (Transformer-XL with untied biases, as NeMo's
/// `RelPositionMultiHeadAttention`), on heads kept in the projections' own layout.
///
/// q, k, v stay [B, T, H, d_k] (a reshaped Linear output): each head is a strided matrix that
/// GEMM reads with a leading dimension of H·d_k, so no head is permuted or copied, the position
/// term is never broadcast over the batch, and the [B, H, T, 2T−1] position scores live only in
/// a per-thread scratch buffer instead of the tape.
extension Tensor {
    /// s[b,h,i,j] = scale·((q[b,i,h] + u[h])·k[b,j,h] + (q[b,i,h] + v[h])·p[T−1−i+j, h]):
    /// q, k [B, T, H, d_k]; p [2T−1, H, d_k] (relative positions T−1 … −(T−1));
    /// u, v [H, d_k] → scores [B, H, T, T].
    public static func relPositionScores(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float) -> Tensor {
        precondition(q.rank == 4 && k.shape == q.shape, "relPositionScores: q \(q.shape), k \(k.shape) [B, T, H, d_k]")
        let (b, t, h, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let np = 2 * t - 1
        precondition(p.shape == [np, h, dk] && biasU.shape == [h, dk] && biasV.shape == [h, dk],
                     "relPositionScores: p \(p.shape) [2T−1, H, d_k], biases \(biasU.shape), \(biasV.shape) [H, d_k]")
        let device = Device.common("relPositionScores", [q, k, p, biasU, biasV])
        let out = Tensor(uninitializedShape: [b, h, t, t], on: device)
        device.backend.relPositionScoresForward(q: q, k: k, p: p, biasU: biasU, biasV: biasV, scale: scale, into: out)
        let (eq, ek, ep, eu, ev) = (q.tapeEntry, k.tapeEntry, p.tapeEntry, biasU.tapeEntry, biasV.tapeEntry)
        let (qs, ks, ps, us, vs) = (q.detached(), k.detached(), p.detached(), biasU.detached(), biasV.detached())
        return out.recording([q, k, p, biasU, biasV]) { g in
            // dq and dk are written whole by the kernel; dp, du and dv accumulate over the batch.
            let dq = Tensor(uninitializedShape: [b, t, h, dk], on: device), dkT = Tensor(uninitializedShape: [b, t, h, dk], on: device)
            let dp = Tensor(zeros: [np, h, dk], on: device)
            let du = Tensor(zeros: [h, dk], on: device), dv = Tensor(zeros: [h, dk], on: device)
            device.backend.relPositionScoresBackward(q: qs, k: ks, p: ps, biasU: us, biasV: vs, scale: scale, g,
                                                     dq: dq, dk: dkT, dp: dp, du: du, dv: dv)
            eq?.accumulate(dq, owned: true)
            ek?.accumulate(dkT, owned: true)
            ep?.accumulate(dp, owned: true)
            eu?.accumulate(du, owned: true)
            ev?.accumulate(dv, owned: true)
        }
    }

    /// Attention-weighted values with heads in place: a [B, H, T, T], v [B, T, H, d_k] →
    /// [B, T, H, d_k] (reshape to [B, T, D] for the output projection).
    public static func attentionContext(_ a: Tensor, _ v: Tensor) -> Tensor {
        precondition(a.rank == 4 && v.rank == 4, "attentionContext: weights \(a.shape), values \(v.shape)")
        let (b, h, t) = (a.shape[0], a.shape[1], a.shape[2]), dk = v.shape[3]
        precondition(a.shape == [b, h, t, t] && v.shape == [b, t, h, dk], "attentionContext: weights \(a.shape) [B, H, T, T], values \(v.shape) [B, T, H, d_k]")
        let device = Device.common("attentionContext", [a, v])
        let out = Tensor(uninitializedShape: [b, t, h, dk], on: device)
        device.backend.attentionContextForward(a, v, into: out)
        let (ea, ev) = (a.tapeEntry, v.tapeEntry)
        // da reads v, dv reads a: keep each only if the other side wants a gradient.
        let vForA = ea == nil ? nil : v.detached(), aForV = ev == nil ? nil : a.detached()
        return out.recording([a, v]) { g in
            let da = ea.map { _ in Tensor(uninitializedShape: [b, h, t, t], on: device) }
            let dv = ev.map { _ in Tensor(uninitializedShape: [b, t, h, dk], on: device) }
            device.backend.attentionContextBackward(aForV, vForA, g, da: da, dv: dv)
            if let da { ea?.accumulate(da, owned: true) }
            if let dv { ev?.accumulate(dv, owned: true) }
        }
    }
}
