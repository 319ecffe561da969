import Foundation

/// Masks and frame edits of the NEST data path, as ops of the engine so that nothing above it
/// loops over a tensor's memory. None records a gradient: masks are constants, and the frames
/// they edit are features or a frozen embedding. They are built on the host (masks from
/// lengths) or computed through host views (once per batch, small next to the encoder), and
/// reach a device through the explicit copies like any host data.
extension Tensor {
    /// 1 where t < lengths[b], in a tensor of `shape` whose only non-1 dimensions are B (first)
    /// and T (`length`).
    public static func timeMask(lengths: [Int], length t: Int, shape: [Int]) -> Tensor {
        var m = [Float](repeating: 0, count: Shape.count(shape))
        for (b, l) in lengths.enumerated() { m.replaceSubrange((b * t)..<(b * t + min(l, t)), with: repeatElement(1, count: min(l, t))) }
        return Tensor(m, shape: shape)
    }

    /// NeMo's attention mask [B, 1, T, T]: 1 (masked) unless both query and key are valid and,
    /// with a limited `context`, the key is one query i may see (`contextKeys`).
    public static func attentionMask(lengths: [Int], length t: Int, context: (left: Int, right: Int)? = nil, chunked: Bool = false) -> Tensor {
        var m = [Float](repeating: 1, count: lengths.count * t * t)
        for (b, l) in lengths.enumerated() {
            let valid = 0..<min(l, t)
            for i in valid {
                let keys = context.map { contextKeys(of: i, $0, chunked: chunked).clamped(to: valid) } ?? valid
                let start = (b * t + i) * t + keys.lowerBound
                m.replaceSubrange(start..<(start + keys.count), with: repeatElement(0, count: keys.count))
            }
        }
        return Tensor(m, shape: [lengths.count, 1, t, t])
    }

    /// The keys query i may see under a limited context (−1 sides already made large), before
    /// clamping to the valid frames: `regular`, the window [i − left, i + right];
    /// `chunked_limited` (NeMo's rule), chunks of right + 1 frames, each seeing itself and
    /// left / (right + 1) chunks before it.
    public static func contextKeys(of i: Int, _ context: (left: Int, right: Int), chunked: Bool) -> Range<Int> {
        guard chunked else { return (i - context.left)..<(i + context.right + 1) }
        let size = context.right + 1, chunk = i / size
        return ((chunk - context.left / size) * size)..<((chunk + 1) * size)
    }

    /// The band [left, right] around each query that holds every key a context allows.
    public static func contextBand(_ context: (left: Int, right: Int), chunked: Bool) -> (left: Int, right: Int) {
        guard chunked else { return context }
        let size = context.right + 1
        return (context.left / size * size + size - 1, size - 1)
    }

    /// A key-padding attention mask [B, 1, T, T]: 1 (masked) for every key j ≥ lengths[b], in
    /// every query row (FlexAttention's `kv_idx < length` as NeMo's Transformer uses it).
    public static func keyMask(lengths: [Int], length t: Int) -> Tensor {
        var m = [Float](repeating: 0, count: lengths.count * t * t)
        for (b, l) in lengths.enumerated() where l < t {
            for i in 0..<t {
                let start = (b * t + i) * t + l
                m.replaceSubrange(start..<(start + t - l), with: repeatElement(1, count: t - l))
            }
        }
        return Tensor(m, shape: [lengths.count, 1, t, t])
    }

    /// Features [B, F, T] with every frame where `mask` (B·T host values, 0 or 1) is 1
    /// replaced by `embedding` [F], on the features' device: x·(1 − m) + m·e, exact for a
    /// 0/1 mask and finite values.
    public func replacingFrames(mask: [Float], with embedding: Tensor) -> Tensor {
        let (b, f, t) = (shape[0], shape[1], shape[2])
        precondition(mask.count == b * t && embedding.count == f, "replacingFrames: \(mask.count) mask values, embedding \(embedding.shape) for \(shape)")
        return withoutGrad {
            let masked = Tensor(mask, shape: [b, 1, t], on: device), kept = Tensor(mask.map { 1 - $0 }, shape: [b, 1, t], on: device)
            return self * kept + masked * embedding.reshaped([1, f, 1])
        }
    }

    /// The same values with the last dimension zero-padded to `n` (each row's values first).
    public func paddingLastDimension(to n: Int) -> Tensor {
        let t = shape[rank - 1]
        precondition(n >= t, "paddingLastDimension: \(n) < \(t)")
        let out = Tensor(zeros: shape.dropLast() + [n], on: device)
        if t > 0 { backend.copyBlocks(from: self, axis: rank - 1, offset: 0, to: out, offset: 0, length: t) }
        return out
    }

    /// A sinusoid table [N, D], one row per position: channel 2k sin(r·w_k), 2k+1 cos(r·w_k)
    /// for position r, computed in Double and rounded (as torch computes it); a nil position
    /// gives a row of zeros.
    public static func sinusoids(positions: [Int?], frequencies: [Float]) -> Tensor {
        let d = 2 * frequencies.count
        var table = [Float](repeating: 0, count: positions.count * d)
        for (m, position) in positions.enumerated() {
            guard let position else { continue }
            let r = Float(position)
            for (k, w) in frequencies.enumerated() {
                let angle = r * w
                table[m * d + 2 * k] = Float(sin(Double(angle)))
                table[m * d + 2 * k + 1] = Float(cos(Double(angle)))
            }
        }
        return Tensor(table, shape: [positions.count, d])
    }
}

/// Row-wise choices over [R, V] scores, handed to the host as indices or values.
extension Tensor {
    /// The index of each row's largest value (the first of equal ones), for R = count / V rows.
    public func rowArgmax() -> [Int] {
        let v = shape[rank - 1]
        return withHostValues { x in
            (0..<(count / max(v, 1))).map { r in
                let row = x.baseAddress! + r * v
                var best = 0
                for c in 1..<v where row[c] > row[best] { best = c }
                return best
            }
        }
    }

    /// Elements (rows[i], columns[i]) of a [R, V] tensor.
    public func elements(rows: [Int], columns: [Int]) -> [Float] {
        let v = shape[rank - 1]
        precondition(rows.count == columns.count, "elements: \(rows.count) rows, \(columns.count) columns")
        let indices = zip(rows, columns).map { r, c in
            precondition(r >= 0 && r < count / v && c >= 0 && c < v, "element (\(r), \(c)) outside \(shape)")
            return r * v + c
        }
        return backend.elements(self, at: indices)
    }

    /// Each consecutive group of `width` values scaled to unit L2 norm (norms below 1e-12 count
    /// as 1e-12, as torch's `F.normalize`).
    public func l2NormalizedGroups(width c: Int) -> Tensor {
        let x = detached().copy()
        x.withMutableHostValues { values in
            for v in 0..<(count / c) {
                let p = values.baseAddress! + v * c
                var norm: Float = 0
                for j in 0..<c { norm += p[j] * p[j] }
                let inv = 1 / max(norm.squareRoot(), 1e-12)
                for j in 0..<c { p[j] *= inv }
            }
        }
        return x
    }

    /// For vectors [..., N·C] (per position, N books of C values): the index of the nearest of `classes`
    /// codes of each book in `codebooks` [N, classes, C] (float64, in double precision, the first
    /// of equal ones): [P·N], book fastest. Nearest by squared Euclidean distance, or with
    /// `cosine` by the largest dot product (NeMo's `dist_fn: cosine`, whose vectors and codes are
    /// unit length).
    public func nearestCodes(codebooks: [Double], books n: Int, classes v: Int, cosine: Bool = false) -> [Int] {
        let c = shape[rank - 1] / n
        let positions = count / (n * c)
        precondition(codebooks.count == n * v * c, "nearestCodes: \(codebooks.count) code values for \(n) × \(v) × \(c)")
        var out = [Int](repeating: 0, count: positions * n)
        withHostValues { x in
            out.withUnsafeMutableBufferPointer { tokens in
                codebooks.withUnsafeBufferPointer { codes in
                    // Each position's nearest codes are independent of the others.
                    Parallel.forRanges(positions, grain: 8) { range in
                        for pos in range {
                            for book in 0..<n {
                                let q = x.baseAddress! + (pos * n + book) * c
                                var best = 0
                                var bestDistance = Double.infinity
                                for code in 0..<v {
                                    let e = codes.baseAddress! + (book * v + code) * c
                                    var d = 0.0
                                    if cosine {
                                        for j in 0..<c { d -= Double(q[j]) * e[j] }
                                    } else {
                                        for j in 0..<c { let diff = Double(q[j]) - e[j]; d += diff * diff }
                                    }
                                    if d < bestDistance { bestDistance = d; best = code }
                                }
                                tokens[pos * n + book] = best
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
