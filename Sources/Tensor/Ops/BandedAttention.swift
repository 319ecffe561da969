/// Relative-position attention over a band of keys: with a limited context [left, right] query
/// i sees keys i − left … i + right only, so scores are [B, H, T, W] with W = left + right + 1
/// instead of [B, H, T, T], and time and memory grow linearly in T. Column w of row i is key
/// j = i − left + w; a column whose key lies outside 0..<T is masked (by `Tensor.bandMask`).
/// The numbers are NeMo's masked T × T computation's: blocked keys get exactly zero weight
/// there too (exp(−10000 − max) underflows), only the summation order differs.
extension Tensor {
    /// s[b,h,i,w] = scale·((q_i + u)·k_j + (q_i + v)·p[T−1−left+w]) for j = i − left + w inside
    /// 0..<T (0 elsewhere); q, k [B, T, H, d_k]; p [2T−1, H, d_k]; u, v [H, d_k] → [B, H, T, W].
    public static func bandedRelPositionScores(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float,
                                               left: Int, right: Int) -> Tensor {
        precondition(q.rank == 4 && k.shape == q.shape && left >= 0 && right >= 0, "bandedRelPositionScores: q \(q.shape), k \(k.shape), band [\(left), \(right)]")
        let (b, t, h, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let w = left + right + 1
        precondition(p.shape == [2 * t - 1, h, dk] && biasU.shape == [h, dk] && biasV.shape == [h, dk], "bandedRelPositionScores: p \(p.shape)")
        let device = Device.common("bandedRelPositionScores", [q, k, p, biasU, biasV])
        let out = Tensor(zeros: [b, h, t, w], on: device)
        device.backend.bandedScoresForward(q: q, k: k, p: p, biasU: biasU, biasV: biasV, scale: scale, left: left, into: out)
        let (eq, ek, ep, eu, ev) = (q.tapeEntry, k.tapeEntry, p.tapeEntry, biasU.tapeEntry, biasV.tapeEntry)
        let (qs, ks, ps, us, vs) = (q.detached(), k.detached(), p.detached(), biasU.detached(), biasV.detached())
        return out.recording([q, k, p, biasU, biasV]) { g in
            let dq = Tensor(zeros: [b, t, h, dk], on: device), dkT = Tensor(zeros: [b, t, h, dk], on: device)
            let dp = Tensor(zeros: [2 * t - 1, h, dk], on: device)
            let du = Tensor(zeros: [h, dk], on: device), dv = Tensor(zeros: [h, dk], on: device)
            device.backend.bandedScoresBackward(q: qs, k: ks, p: ps, biasU: us, biasV: vs, scale: scale, left: left, g,
                                                dq: dq, dk: dkT, dp: dp, du: du, dv: dv)
            eq?.accumulate(dq, owned: true)
            ek?.accumulate(dkT, owned: true)
            ep?.accumulate(dp, owned: true)
            eu?.accumulate(du, owned: true)
            ev?.accumulate(dv, owned: true)
        }
    }

    /// Band-weighted values: a [B, H, T, W], v [B, T, H, d_k] → [B, T, H, d_k], row i summing
    /// a[i, w]·v[i − left + w] over the keys inside 0..<T.
    public static func bandedAttentionContext(_ a: Tensor, _ v: Tensor, left: Int) -> Tensor {
        let (b, h, t, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3]), dk = v.shape[3]
        precondition(v.shape == [b, t, h, dk] && left < w, "bandedAttentionContext: weights \(a.shape), values \(v.shape)")
        let device = Device.common("bandedAttentionContext", [a, v])
        let out = Tensor(zeros: [b, t, h, dk], on: device)
        device.backend.bandedContextForward(a, v, left: left, into: out)
        let (ea, ev) = (a.tapeEntry, v.tapeEntry)
        let vForA = ea == nil ? nil : v.detached(), aForV = ev == nil ? nil : a.detached()
        return out.recording([a, v]) { g in
            let da = ea.map { _ in Tensor(zeros: [b, h, t, w], on: device) }
            let dv = ev.map { _ in Tensor(zeros: [b, t, h, dk], on: device) }
            device.backend.bandedContextBackward(aForV, vForA, left: left, g, da: da, dv: dv)
            if let da { ea?.accumulate(da, owned: true) }
            if let dv { ev?.accumulate(dv, owned: true) }
        }
    }

    /// The band's mask [B, 1, T, W] (1 = masked): key j = i − left + w outside 0..<lengths[b],
    /// a padded query (i ≥ lengths[b]), or (chunked contexts) a key the rule does not allow, as
    /// NeMo's limited-context mask blocks them. `left`/`right` give the band (`contextBand`),
    /// `context` the configured context.
    public static func bandMask(lengths: [Int], length t: Int, left: Int, right: Int, context: (left: Int, right: Int)? = nil,
                                chunked: Bool = false) -> Tensor {
        let w = left + right + 1
        var m = [Float](repeating: 1, count: lengths.count * t * w)
        for (b, l) in lengths.enumerated() {
            let valid = 0..<min(l, t)
            for i in valid {
                let keys = contextKeys(of: i, context ?? (left, right), chunked: chunked).clamped(to: valid)
                // Key j sits in column j − i + left.
                let columns = (keys.lowerBound - i + left)..<(keys.upperBound - i + left)
                let start = (b * t + i) * w + columns.lowerBound
                m.replaceSubrange(start..<(start + columns.count), with: repeatElement(0, count: columns.count))
            }
        }
        return Tensor(m, shape: [lengths.count, 1, t, w])
    }

    /// The columns of row i whose keys i − left + c lie inside 0..<T.
    static func bandColumns(row i: Int, length t: Int, left: Int, width w: Int) -> Range<Int> {
        let first = max(0, left - i)
        return first..<max(first, min(w, t - i + left))
    }
}
