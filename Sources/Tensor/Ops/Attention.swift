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
        let np = 2 * t - 1, ld = h * dk
        precondition(p.shape == [np, h, dk] && biasU.shape == [h, dk] && biasV.shape == [h, dk],
                     "relPositionScores: p \(p.shape) [2T−1, H, d_k], biases \(biasU.shape), \(biasV.shape) [H, d_k]")
        let out = Tensor(uninitializedShape: [b, h, t, t])
        let (qp, kp, pp, up, vp, sp) = (q.data, k.data, p.data, biasU.data, biasV.data, out.data)
        Parallel.forRanges(b * h, grain: 1) { pairs in
            let qu = UnsafeMutablePointer<Float>.allocate(capacity: 2 * t * dk + t * np)
            defer { qu.deallocate() }
            let qv = qu + t * dk, bd = qv + t * dk
            for pair in pairs {
                let (bi, hi) = (pair / h, pair % h)
                let qRows = qp + bi * t * ld + hi * dk, kRows = kp + bi * t * ld + hi * dk, s = sp + pair * t * t
                biased(qRows, ld, up + hi * dk, into: qu, t, dk)
                biased(qRows, ld, vp + hi * dk, into: qv, t, dk)
                GEMM.run(transposeA: false, transposeB: true, m: t, n: t, k: dk, a: qu, lda: dk, b: kRows, ldb: ld, c: s, ldc: t)
                GEMM.run(transposeA: false, transposeB: true, m: t, n: np, k: dk, a: qv, lda: dk, b: pp + hi * dk, ldb: ld, c: bd, ldc: np)
                for i in 0..<t {
                    let row = s + i * t, band = bd + i * np + (t - 1 - i)
                    for j in 0..<t { row[j] = (row[j] + band[j]) * scale }
                }
            }
        }
        let (eq, ek, ep, eu, ev) = (q.tapeEntry, k.tapeEntry, p.tapeEntry, biasU.tapeEntry, biasV.tapeEntry)
        let (qs, ks, ps, us, vs) = (q.detached(), k.detached(), p.detached(), biasU.detached(), biasV.detached())
        return out.recording([q, k, p, biasU, biasV]) { g in
            // dq and dk are written whole by β = 0 products; dp accumulates over the batch.
            let dq = Tensor(uninitializedShape: [b, t, h, dk]), dkT = Tensor(uninitializedShape: [b, t, h, dk])
            let dp = Tensor(zeros: [np, h, dk])
            let du = Tensor(zeros: [h, dk]), dv = Tensor(zeros: [h, dk])
            let (qp, kp, pp, up, vp, gp) = (qs.data, ks.data, ps.data, us.data, vs.data, g.data)
            // Heads own their slices of dp, du, dv (and of dq, dk): parallel over heads.
            Parallel.forRanges(h, grain: 1) { heads in
                let qu = UnsafeMutablePointer<Float>.allocate(capacity: 3 * t * dk + t * np)
                defer { qu.deallocate() }
                let qv = qu + t * dk, viaPosition = qv + t * dk, gShifted = viaPosition + t * dk
                for hi in heads {
                    for bi in 0..<b {
                        let offset = bi * t * ld + hi * dk
                        let gs = gp + (bi * h + hi) * t * t, dqRows = dq.data + offset
                        biased(qp + offset, ld, up + hi * dk, into: qu, t, dk)
                        biased(qp + offset, ld, vp + hi * dk, into: qv, t, dk)
                        // Content term: dq = s·g·k, dk = s·gᵀ·(q + u), du = Σᵢ s·g·k.
                        GEMM.run(transposeA: false, transposeB: false, m: t, n: dk, k: t, alpha: scale,
                                 a: gs, lda: t, b: kp + offset, ldb: ld, c: dqRows, ldc: ld)
                        GEMM.run(transposeA: true, transposeB: false, m: t, n: dk, k: t, alpha: scale,
                                 a: gs, lda: t, b: qu, ldb: dk, c: dkT.data + offset, ldc: ld)
                        addRowSums(dqRows, ld, t, dk, into: du.data + hi * dk)
                        // Position term through the shift's transpose: g′[i, T−1−i+j] = g[i, j].
                        for i in 0..<t {
                            let row = gShifted + i * np, start = t - 1 - i
                            row.update(repeating: 0, count: start)
                            (row + start).update(from: gs + i * t, count: t)
                            (row + start + t).update(repeating: 0, count: np - start - t)
                        }
                        GEMM.run(transposeA: false, transposeB: false, m: t, n: dk, k: np, alpha: scale,
                                 a: gShifted, lda: np, b: pp + hi * dk, ldb: ld, c: viaPosition, ldc: dk)
                        GEMM.run(transposeA: true, transposeB: false, m: np, n: dk, k: t, alpha: scale,
                                 a: gShifted, lda: np, b: qv, ldb: dk, beta: 1, c: dp.data + hi * dk, ldc: ld)
                        addRowSums(viaPosition, dk, t, dk, into: dv.data + hi * dk)
                        for i in 0..<t { Vector.add(dqRows + i * ld, viaPosition + i * dk, into: dqRows + i * ld, count: dk) }
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

    /// Attention-weighted values with heads in place: a [B, H, T, T], v [B, T, H, d_k] →
    /// [B, T, H, d_k] (reshape to [B, T, D] for the output projection).
    public static func attentionContext(_ a: Tensor, _ v: Tensor) -> Tensor {
        precondition(a.rank == 4 && v.rank == 4, "attentionContext: weights \(a.shape), values \(v.shape)")
        let (b, h, t) = (a.shape[0], a.shape[1], a.shape[2]), dk = v.shape[3], ld = h * dk
        precondition(a.shape == [b, h, t, t] && v.shape == [b, t, h, dk], "attentionContext: weights \(a.shape) [B, H, T, T], values \(v.shape) [B, T, H, d_k]")
        let out = Tensor(uninitializedShape: [b, t, h, dk])
        let (ap, vp, op) = (a.data, v.data, out.data)
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let offset = (pair / h) * t * ld + (pair % h) * dk
                GEMM.run(transposeA: false, transposeB: false, m: t, n: dk, k: t, a: ap + pair * t * t, lda: t,
                         b: vp + offset, ldb: ld, c: op + offset, ldc: ld)
            }
        }
        let (ea, ev) = (a.tapeEntry, v.tapeEntry)
        // da reads v, dv reads a: keep each only if the other side wants a gradient.
        let vForA = ea == nil ? nil : v.detached(), aForV = ev == nil ? nil : a.detached()
        return out.recording([a, v]) { g in
            let da = ea.map { _ in Tensor(uninitializedShape: [b, h, t, t]) }
            let dv = ev.map { _ in Tensor(uninitializedShape: [b, t, h, dk]) }
            let gp = g.data
            Parallel.forRanges(b * h, grain: 1) { pairs in
                for pair in pairs {
                    let offset = (pair / h) * t * ld + (pair % h) * dk
                    if let da, let vForA {
                        GEMM.run(transposeA: false, transposeB: true, m: t, n: t, k: dk, a: gp + offset, lda: ld,
                                 b: vForA.data + offset, ldb: ld, c: da.data + pair * t * t, ldc: t)
                    }
                    if let dv, let aForV {
                        GEMM.run(transposeA: true, transposeB: false, m: t, n: dk, k: t, a: aForV.data + pair * t * t, lda: t,
                                 b: gp + offset, ldb: ld, c: dv.data + offset, ldc: ld)
                    }
                }
            }
            if let da { ea?.accumulate(da, owned: true) }
            if let dv { ev?.accumulate(dv, owned: true) }
        }
    }

    /// rows[i, :] + bias, for T rows of a strided head, into a contiguous [T, d_k] buffer.
    private static func biased(_ rows: UnsafePointer<Float>, _ ld: Int, _ bias: UnsafePointer<Float>,
                               into out: UnsafeMutablePointer<Float>, _ t: Int, _ dk: Int) {
        for i in 0..<t { Vector.add(rows + i * ld, bias, into: out + i * dk, count: dk) }
    }

    /// sums[c] += Σᵢ rows[i, c] over T rows of width d_k.
    private static func addRowSums(_ rows: UnsafePointer<Float>, _ ld: Int, _ t: Int, _ dk: Int, into sums: UnsafeMutablePointer<Float>) {
        for i in 0..<t { Vector.add(sums, rows + i * ld, into: sums, count: dk) }
    }
}
