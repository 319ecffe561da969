/// The NEST targets and loss: the quantizer's normalisation and code search, the log-probability
/// of each target and its gradient, and the decoder's predictions.
extension CPUBackend {
    public func l2NormalizeGroups(_ x: Tensor, width c: Int, into out: Tensor) {
        let (input, output) = (x.address, out.address)
        Parallel.forRanges(x.count / max(c, 1), grain: 64) { groups in
            for v in groups {
                let p = input + v * c, q = output + v * c
                var norm: Float = 0
                for j in 0..<c { norm += p[j] * p[j] }
                let inv = 1 / max(norm.squareRoot(), 1e-12)
                for j in 0..<c { q[j] = p[j] * inv }
            }
        }
    }

    public func nearestCodes(_ x: Tensor, codebooks: Tensor, books n: Int, classes v: Int, cosine: Bool, into codes: Tensor) {
        let c = x.shape[x.rank - 1] / n, groups = x.count / max(c, 1)
        let input = x.address, out = codes.address
        let book = UnsafeRawPointer(codebooks.address).assumingMemoryBound(to: Double.self)
        // Each position's nearest codes are independent of the others.
        Parallel.forRanges(groups, grain: 8) { range in
            for i in range {
                let q = input + i * c
                var best = 0, bestDistance = Double.infinity
                for code in 0..<v {
                    let e = book + ((i % n) * v + code) * c
                    var d = 0.0
                    if cosine {
                        for j in 0..<c { d -= Double(q[j]) * e[j] }
                    } else {
                        for j in 0..<c { let diff = Double(q[j]) - e[j]; d += diff * diff }
                    }
                    if d < bestDistance { bestDistance = d; best = code }
                }
                out[i] = Float(best)
            }
        }
    }

    public func gatherColumns(_ x: Tensor, columns: Tensor, into out: Tensor) {
        let v = x.shape[x.rank - 1]
        for r in 0..<out.count { out.address[r] = x.address[r * v + Int(columns.address[r])] }
    }

    public func addToColumns(_ value: Tensor, scale: Float, columns: Tensor, into out: Tensor) {
        let v = out.shape[out.rank - 1], add = scale * value.address[0]
        for r in 0..<columns.count { out.address[r * v + Int(columns.address[r])] += add }
    }

    public func rowArgmax(_ x: Tensor, into out: Tensor) {
        let v = x.shape[x.rank - 1]
        Parallel.forRanges(out.count, grain: 16) { rows in
            for r in rows {
                let row = x.address + r * v
                var best = 0
                for c in 1..<v where row[c] > row[best] { best = c }
                out.address[r] = Float(best)
            }
        }
    }
}
