/// The relative-position shift of Transformer-XL attention as NeMo uses it.
///
/// Input [B, H, T, 2T−1] holds scores against relative positions ordered r = T−1 … −(T−1);
/// output [B, H, T, T] picks, for query i and key j, the entry of r = i − j:
/// out[…, i, j] = in[…, i, T−1−i+j].
extension Tensor {
    public func relativeShift() -> Tensor {
        let t = shape[rank - 2], p = shape[rank - 1]
        precondition(p == 2 * t - 1, "relativeShift: last dimension \(p) should be 2·\(t)−1")
        let rows = count / p   // (plane, i) pairs; row r reads its own band of input row r
        let out = Tensor(uninitializedShape: Array(shape.dropLast()) + [t])
        let x = data, y = out.data
        Parallel.forRanges(rows, grain: max(1, 16_384 / t)) { r in
            for row in r {
                let i = row % t
                (y + row * t).update(from: x + row * p + (t - 1 - i), count: t)
            }
        }
        let inputShape = shape, entry = tapeEntry
        return out.recording([self]) { g in
            // The band of each row gets the gradient; the rest of the row is zero.
            let gx = Tensor(uninitializedShape: inputShape)
            let d = gx.data, gp = g.data
            Parallel.forRanges(rows, grain: max(1, 16_384 / t)) { r in
                for row in r {
                    let i = row % t, start = t - 1 - i, dr = d + row * p
                    dr.update(repeating: 0, count: start)
                    (dr + start).update(from: gp + row * t, count: t)
                    (dr + start + t).update(repeating: 0, count: p - start - t)
                }
            }
            entry?.accumulate(gx, owned: true)
        }
    }
}
