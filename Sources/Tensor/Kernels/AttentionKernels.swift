/// Relative-position attention kernels of the CPU backend (see `Tensor.relPositionScores`):
/// heads stay in the projections' [B, T, H, d_k] layout and are read as strided matrices.
extension CPUBackend {
    public func relPositionScoresForward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, into out: Tensor) {
        let (b, t, h, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let np = 2 * t - 1, ld = h * dk
        let (qp, kp, pp, up, vp, sp) = (q.address, k.address, p.address, biasU.address, biasV.address, out.address)
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
    }

    /// dq and dk are written whole by β = 0 products; dp, du and dv accumulate.
    public func relPositionScoresBackward(q: Tensor, k: Tensor, p: Tensor, biasU: Tensor, biasV: Tensor, scale: Float, _ g: Tensor,
                                          dq: Tensor, dk dkT: Tensor, dp: Tensor, du: Tensor, dv: Tensor) {
        let (b, t, h, dk) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let np = 2 * t - 1, ld = h * dk
        let (qp, kp, pp, up, vp, gp) = (q.address, k.address, p.address, biasU.address, biasV.address, g.address)
        // Heads own their slices of dp, du, dv (and of dq, dk): parallel over heads.
        Parallel.forRanges(h, grain: 1) { heads in
            let qu = UnsafeMutablePointer<Float>.allocate(capacity: 3 * t * dk + t * np)
            defer { qu.deallocate() }
            let qv = qu + t * dk, viaPosition = qv + t * dk, gShifted = viaPosition + t * dk
            for hi in heads {
                for bi in 0..<b {
                    let offset = bi * t * ld + hi * dk
                    let gs = gp + (bi * h + hi) * t * t, dqRows = dq.address + offset
                    biased(qp + offset, ld, up + hi * dk, into: qu, t, dk)
                    biased(qp + offset, ld, vp + hi * dk, into: qv, t, dk)
                    // Content term: dq = s·g·k, dk = s·gᵀ·(q + u), du = Σᵢ s·g·k.
                    GEMM.run(transposeA: false, transposeB: false, m: t, n: dk, k: t, alpha: scale,
                             a: gs, lda: t, b: kp + offset, ldb: ld, c: dqRows, ldc: ld)
                    GEMM.run(transposeA: true, transposeB: false, m: t, n: dk, k: t, alpha: scale,
                             a: gs, lda: t, b: qu, ldb: dk, c: dkT.address + offset, ldc: ld)
                    addRowSums(dqRows, ld, t, dk, into: du.address + hi * dk)
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
                             a: gShifted, lda: np, b: qv, ldb: dk, beta: 1, c: dp.address + hi * dk, ldc: ld)
                    addRowSums(viaPosition, dk, t, dk, into: dv.address + hi * dk)
                    for i in 0..<t { Vector.add(dqRows + i * ld, viaPosition + i * dk, into: dqRows + i * ld, count: dk) }
                }
            }
        }
    }

    public func attentionContextForward(_ a: Tensor, _ v: Tensor, into out: Tensor) {
        let (b, h, t) = (a.shape[0], a.shape[1], a.shape[2]), dk = v.shape[3], ld = h * dk
        let (ap, vp, op) = (a.address, v.address, out.address)
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let offset = (pair / h) * t * ld + (pair % h) * dk
                GEMM.run(transposeA: false, transposeB: false, m: t, n: dk, k: t, a: ap + pair * t * t, lda: t,
                         b: vp + offset, ldb: ld, c: op + offset, ldc: ld)
            }
        }
    }

    /// `aForV` is needed for dv, `vForA` for da.
    public func attentionContextBackward(_ aForV: Tensor?, _ vForA: Tensor?, _ g: Tensor, da: Tensor?, dv: Tensor?) {
        let (b, t, h, dk) = (g.shape[0], g.shape[1], g.shape[2], g.shape[3]), ld = h * dk
        let gp = g.address
        Parallel.forRanges(b * h, grain: 1) { pairs in
            for pair in pairs {
                let offset = (pair / h) * t * ld + (pair % h) * dk
                if let da, let vForA {
                    GEMM.run(transposeA: false, transposeB: true, m: t, n: t, k: dk, a: gp + offset, lda: ld,
                             b: vForA.address + offset, ldb: ld, c: da.address + pair * t * t, ldc: t)
                }
                if let dv, let aForV {
                    GEMM.run(transposeA: true, transposeB: false, m: t, n: dk, k: t, a: aForV.address + pair * t * t, lda: t,
                             b: gp + offset, ldb: ld, c: dv.address + offset, ldc: ld)
                }
            }
        }
    }

    /// rows[i, :] + bias, for T rows of a strided head, into a contiguous [T, d_k] buffer.
    private func biased(_ rows: UnsafePointer<Float>, _ ld: Int, _ bias: UnsafePointer<Float>,
                        into out: UnsafeMutablePointer<Float>, _ t: Int, _ dk: Int) {
        for i in 0..<t { Vector.add(rows + i * ld, bias, into: out + i * dk, count: dk) }
    }

    /// sums[c] += Σᵢ rows[i, c] over T rows of width d_k.
    private func addRowSums(_ rows: UnsafePointer<Float>, _ ld: Int, _ t: Int, _ dk: Int, into sums: UnsafeMutablePointer<Float>) {
        for i in 0..<t { Vector.add(sums, rows + i * ld, into: sums, count: dk) }
    }
}
