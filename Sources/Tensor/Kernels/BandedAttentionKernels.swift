/// Banded relative-position attention kernels of the CPU backend (see `Tensor.bandedRelPositionScores`).
extension CPUBackend {
    public func bandedScoresForward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, left: Int, into s: Tensor) {
        let (b, t, h, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]), w = s.shape[3], ld = h * dk
        let (qp, kp, pp, up, vp, sp) = (q.address, k.address, p.address, biasU.address, biasV.address, s.address)
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let (bi, hi) = (pair / h, pair % h)
                for i in 0..<t {
                    let qi = qp + (bi * t + i) * ld + hi * dk, row = sp + (pair * t + i) * w
                    for c in Tensor.bandColumns(row: i, length: t, left: left, width: w) {
                        let j = i - left + c
                        let kj = kp + (bi * t + j) * ld + hi * dk, pm = pp + (t - 1 - left + c) * ld + hi * dk
                        var s: Float = 0
                        for e in 0..<dk { s += (qi[e] + up[hi * dk + e]) * kj[e] + (qi[e] + vp[hi * dk + e]) * pm[e] }
                        row[c] = s * scale
                    }
                }
            }
        }
    }

    public func bandedScoresBackward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, left: Int, _ g: Tensor,
                                     dq: Tensor, dk dkT: Tensor, dp: Tensor, du: Tensor, dv: Tensor) {
        let (b, t, h, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]), w = g.shape[3], ld = h * dk
        let (qp, kp, pp, up, vp, gp) = (q.address, k.address, p.address, biasU.address, biasV.address, g.address)
        // Heads own their slices of every gradient: parallel over heads.
        Parallel.forRanges(h, grain: 1) { heads in
            for hi in heads {
                let u = up + hi * dk, v = vp + hi * dk
                for bi in 0..<b {
                    for i in 0..<t {
                        let qi = qp + (bi * t + i) * ld + hi * dk, dqi = dq.address + (bi * t + i) * ld + hi * dk
                        let grow = gp + ((bi * h + hi) * t + i) * w
                        for c in Tensor.bandColumns(row: i, length: t, left: left, width: w) where grow[c] != 0 {
                            let j = i - left + c, m = t - 1 - left + c, gs = grow[c] * scale
                            let kj = kp + (bi * t + j) * ld + hi * dk, pm = pp + m * ld + hi * dk
                            let dkj = dkT.address + (bi * t + j) * ld + hi * dk, dpm = dp.address + m * ld + hi * dk
                            for e in 0..<dk {
                                dqi[e] += gs * (kj[e] + pm[e])
                                dkj[e] += gs * (qi[e] + u[e])
                                dpm[e] += gs * (qi[e] + v[e])
                                du.address[hi * dk + e] += gs * kj[e]
                                dv.address[hi * dk + e] += gs * pm[e]
                            }
                        }
                    }
                }
            }
        }
    }

    public func bandedContextForward(_ a: Tensor, _ v: Tensor, left: Int, into out: Tensor) {
        let (b, h, t, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3]), dk = v.shape[3], ld = h * dk
        let (ap, vp, op) = (a.address, v.address, out.address)
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let (bi, hi) = (pair / h, pair % h)
                for i in 0..<t {
                    let oi = op + (bi * t + i) * ld + hi * dk, arow = ap + (pair * t + i) * w
                    for c in Tensor.bandColumns(row: i, length: t, left: left, width: w) {
                        let weight = arow[c], vj = vp + (bi * t + i - left + c) * ld + hi * dk
                        for e in 0..<dk { oi[e] += weight * vj[e] }
                    }
                }
            }
        }
    }

    /// `aForV` is needed for dv, `vForA` for da.
    public func bandedContextBackward(_ aForV: Tensor?, _ vForA: Tensor?, left: Int, _ g: Tensor, da: Tensor?, dv: Tensor?) {
        let (b, t, h, dk) = (g.shape[0], g.shape[1], g.shape[2], g.shape[3]), ld = h * dk
        let w = (da ?? aForV)!.shape[3]
        let gp = g.address
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let (bi, hi) = (pair / h, pair % h)
                for i in 0..<t {
                    let gi = gp + (bi * t + i) * ld + hi * dk
                    for c in Tensor.bandColumns(row: i, length: t, left: left, width: w) {
                        let j = i - left + c
                        if let da, let vForA {
                            let vj = vForA.address + (bi * t + j) * ld + hi * dk
                            var s: Float = 0
                            for e in 0..<dk { s += gi[e] * vj[e] }
                            da.address[(pair * t + i) * w + c] = s
                        }
                        if let dv, let aForV {
                            let weight = aForV.address[(pair * t + i) * w + c], dvj = dv.address + (bi * t + j) * ld + hi * dk
                            for e in 0..<dk { dvj[e] += weight * gi[e] }
                        }
                    }
                }
            }
        }
    }
}
