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
        let w = left + right + 1, ld = h * dk
        precondition(p.shape == [2 * t - 1, h, dk] && biasU.shape == [h, dk] && biasV.shape == [h, dk], "bandedRelPositionScores: p \(p.shape)")
        let out = Tensor(zeros: [b, h, t, w])
        let (qp, kp, pp, up, vp, sp) = (q.data, k.data, p.data, biasU.data, biasV.data, out.data)
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let (bi, hi) = (pair / h, pair % h)
                for i in 0..<t {
                    let qi = qp + (bi * t + i) * ld + hi * dk, row = sp + (pair * t + i) * w
                    for c in bandColumns(row: i, length: t, left: left, width: w) {
                        let j = i - left + c
                        let kj = kp + (bi * t + j) * ld + hi * dk, pm = pp + (t - 1 - left + c) * ld + hi * dk
                        var s: Float = 0
                        for e in 0..<dk { s += (qi[e] + up[hi * dk + e]) * kj[e] + (qi[e] + vp[hi * dk + e]) * pm[e] }
                        row[c] = s * scale
                    }
                }
            }
        }
        let (eq, ek, ep, eu, ev) = (q.tapeEntry, k.tapeEntry, p.tapeEntry, biasU.tapeEntry, biasV.tapeEntry)
        let (qs, ks, ps, us, vs) = (q.detached(), k.detached(), p.detached(), biasU.detached(), biasV.detached())
        return out.recording([q, k, p, biasU, biasV]) { g in
            let dq = Tensor(zeros: [b, t, h, dk]), dkT = Tensor(zeros: [b, t, h, dk]), dp = Tensor(zeros: [2 * t - 1, h, dk])
            let du = Tensor(zeros: [h, dk]), dv = Tensor(zeros: [h, dk])
            let (qp, kp, pp, up, vp, gp) = (qs.data, ks.data, ps.data, us.data, vs.data, g.data)
            // Heads own their slices of every gradient: parallel over heads.
            Parallel.forRanges(h, grain: 1) { heads in
                for hi in heads {
                    let u = up + hi * dk, v = vp + hi * dk
                    for bi in 0..<b {
                        for i in 0..<t {
                            let qi = qp + (bi * t + i) * ld + hi * dk, dqi = dq.data + (bi * t + i) * ld + hi * dk
                            let grow = gp + ((bi * h + hi) * t + i) * w
                            for c in bandColumns(row: i, length: t, left: left, width: w) where grow[c] != 0 {
                                let j = i - left + c, m = t - 1 - left + c, gs = grow[c] * scale
                                let kj = kp + (bi * t + j) * ld + hi * dk, pm = pp + m * ld + hi * dk
                                let dkj = dkT.data + (bi * t + j) * ld + hi * dk, dpm = dp.data + m * ld + hi * dk
                                for e in 0..<dk {
                                    dqi[e] += gs * (kj[e] + pm[e])
                                    dkj[e] += gs * (qi[e] + u[e])
                                    dpm[e] += gs * (qi[e] + v[e])
                                    du.data[hi * dk + e] += gs * kj[e]
                                    dv.data[hi * dk + e] += gs * pm[e]
                                }
                            }
                        }
                    }
                }
            }
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
        let (b, h, t, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3]), dk = v.shape[3], ld = h * dk
        precondition(v.shape == [b, t, h, dk] && left < w, "bandedAttentionContext: weights \(a.shape), values \(v.shape)")
        let out = Tensor(zeros: [b, t, h, dk])
        let (ap, vp, op) = (a.data, v.data, out.data)
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let (bi, hi) = (pair / h, pair % h)
                for i in 0..<t {
                    let oi = op + (bi * t + i) * ld + hi * dk, arow = ap + (pair * t + i) * w
                    for c in bandColumns(row: i, length: t, left: left, width: w) {
                        let weight = arow[c], vj = vp + (bi * t + i - left + c) * ld + hi * dk
                        for e in 0..<dk { oi[e] += weight * vj[e] }
                    }
                }
            }
        }
        let (ea, ev) = (a.tapeEntry, v.tapeEntry)
        let vForA = ea == nil ? nil : v.detached(), aForV = ev == nil ? nil : a.detached()
        return out.recording([a, v]) { g in
            let da = ea.map { _ in Tensor(zeros: [b, h, t, w]) }
            let dv = ev.map { _ in Tensor(zeros: [b, t, h, dk]) }
            let gp = g.data
            Parallel.forRanges(b * h, grain: 1) { pairs in
                for pair in pairs {
                    let (bi, hi) = (pair / h, pair % h)
                    for i in 0..<t {
                        let gi = gp + (bi * t + i) * ld + hi * dk
                        for c in bandColumns(row: i, length: t, left: left, width: w) {
                            let j = i - left + c
                            if let da, let vForA {
                                let vj = vForA.data + (bi * t + j) * ld + hi * dk
                                var s: Float = 0
                                for e in 0..<dk { s += gi[e] * vj[e] }
                                da.data[(pair * t + i) * w + c] = s
                            }
                            if let dv, let aForV {
                                let weight = aForV.data[(pair * t + i) * w + c], dvj = dv.data + (bi * t + j) * ld + hi * dk
                                for e in 0..<dk { dvj[e] += weight * gi[e] }
                            }
                        }
                    }
                }
            }
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
        let m = Tensor(repeating: 1, shape: [lengths.count, 1, t, w])
        for (b, l) in lengths.enumerated() {
            let valid = 0..<min(l, t)
            for i in valid {
                let keys = contextKeys(of: i, context ?? (left, right), chunked: chunked).clamped(to: valid)
                // Key j sits in column j − i + left.
                let columns = (keys.lowerBound - i + left)..<(keys.upperBound - i + left)
                (m.data + (b * t + i) * w + columns.lowerBound).update(repeating: 0, count: columns.count)
            }
        }
        return m
    }

    /// The columns of row i whose keys i − left + c lie inside 0..<T.
    static func bandColumns(row i: Int, length t: Int, left: Int, width w: Int) -> Range<Int> {
        let first = max(0, left - i)
        return first..<max(first, min(w, t - i + left))
    }
}
