/// The relative-position shift of Transformer-XL attention as NeMo uses it.
///
/// Input [B, H, T, 2T−1] holds scores against relative positions ordered r = T−1 … −(T−1);
/// output [B, H, T, T] picks, for query i and key j, the entry of r = i − j:
/// out[…, i, j] = in[…, i, T−1−i+j].
extension Tensor {
    public func relativeShift() -> Tensor {
        let t = shape[rank - 2], p = shape[rank - 1]
        precondition(p == 2 * t - 1, "relativeShift: last dimension \(p) should be 2·\(t)−1")
        let planes = count / (t * p)
        let out = Tensor(uninitializedShape: Array(shape.dropLast()) + [t])
        for n in 0..<planes {
            for i in 0..<t {
                (out.data + (n * t + i) * t).update(from: data + (n * t + i) * p + (t - 1 - i), count: t)
            }
        }
        let inputShape = shape, entry = tapeEntry
        return out.recording([self]) { g in
            let gx = Tensor(zeros: inputShape)
            for n in 0..<planes {
                for i in 0..<t {
                    let dst = gx.data + (n * t + i) * p + (t - 1 - i)
                    dst.update(from: g.data + (n * t + i) * t, count: t)
                }
            }
            entry?.accumulate(gx, owned: true)
        }
    }
}
