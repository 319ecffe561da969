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

/// The quantizer's targets and the decoder's choices over [R, V] scores, on the scores' device.
extension Tensor {
    /// The column of the largest value of each row of [R, V] (the first of equal ones): [R],
    /// as floats, on the device.
    public func rowArgmax() -> Tensor {
        let out = Tensor(uninitializedShape: [count / max(shape[rank - 1], 1)], on: device)
        backend.rowArgmax(self, into: out)
        return out
    }

    /// x[r, columns[r]] of a [R, V] tensor for columns [R] (indices as floats): [R].
    public func gatheringColumns(_ columns: Tensor) -> Tensor {
        precondition(rank == 2 && columns.count == shape[0], "gatheringColumns: \(columns.count) columns for \(shape)")
        let out = Tensor(uninitializedShape: [shape[0]], on: Device.common("gatheringColumns", [self, columns]))
        backend.gatherColumns(self, columns: columns, into: out)
        return out
    }

    /// Each group of `c` consecutive values scaled to unit L2 norm (the quantizer's
    /// normalisation; no gradient).
    public func l2NormalizedGroups(width c: Int) -> Tensor {
        precondition(c > 0 && count % c == 0, "l2NormalizedGroups: \(count) values in groups of \(c)")
        let out = Tensor(uninitializedShape: shape, on: device)
        backend.l2NormalizeGroups(detached(), width: c, into: out)
        return out
    }

    /// For vectors [..., N·C] (per position, N books of C values): the index of the nearest of
    /// `classes` codes of each book in `codebooks` [N, classes, C] (float64 values carried bit
    /// for bit by `Tensor(doubles:on:)`, so that they stay on the device between calls; compared
    /// in double precision, the first of equal ones): [P·N] as floats on the device, book
    /// fastest. Nearest by squared Euclidean distance, or with `cosine` by the largest dot
    /// product (NeMo's `dist_fn: cosine`, whose vectors and codes are unit length).
    public func nearestCodes(codebooks: Tensor, books n: Int, classes v: Int, cosine: Bool = false) -> Tensor {
        let c = shape[rank - 1] / n
        precondition(c > 0 && codebooks.count == 2 * n * v * c, "nearestCodes: \(codebooks.count / 2) code values for \(n) × \(v) × \(c)")
        let out = Tensor(uninitializedShape: [count / c], on: Device.common("nearestCodes", [self, codebooks]))
        backend.nearestCodes(detached(), codebooks: codebooks, books: n, classes: v, cosine: cosine, into: out)
        return out
    }

    /// Doubles carried in a float tensor, two floats each (bit for bit), for the kernels that
    /// read them as doubles.
    public convenience init(doubles: [Double], on device: Device = .default) {
        self.init(uninitializedShape: [2 * doubles.count], on: device)
        doubles.withUnsafeBytes { bytes in
            device.backend.copy(fromHost: bytes.baseAddress!.assumingMemoryBound(to: Float.self), to: storage, offset: 0, count: 2 * doubles.count)
        }
    }
}
