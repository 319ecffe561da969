/// Ops that move values without arithmetic: reshape, permute, slice, pad, concat, row gather.
extension Tensor {
    /// The same storage viewed with another shape (one dimension may be −1).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var dims = newShape
        if let i = dims.firstIndex(of: -1) {
            let known = dims.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            dims[i] = known == 0 ? 0 : count / known
        }
        precondition(Shape.count(dims) == count, "cannot reshape \(shape) to \(newShape)")
        let inputShape = shape, entry = tapeEntry
        return Tensor(shape: dims, storage: storage).recording([self]) { g in
            entry?.accumulate(Tensor(shape: inputShape, storage: g.storage), owned: true)
        }
    }

    /// Copies `self` read through broadcast strides into a new tensor of shape `target`.
    public func expanded(to target: [Int]) -> Tensor {
        let out = Tensor(uninitializedShape: target)
        let loop = BroadcastLoop(shape: target, stridesA: Shape.broadcastStrides(shape, to: target),
                                 stridesB: [Int](repeating: 0, count: target.count))
        let src = data, dst = out.data
        loop.forEachRun(inParallel: true) { oa, _, oo, n, sa, _ in
            if sa == 1 { (dst + oo).update(from: src + oa, count: n) }
            else if sa == 0 { (dst + oo).update(repeating: src[oa], count: n) }
            else { for i in 0..<n { dst[oo + i] = src[oa + i * sa] } }
        }
        let inputShape = shape, entry = tapeEntry
        return out.recording([self]) { g in entry?.accumulate(g.summed(toShape: inputShape), owned: true) }
    }

    /// Dimensions reordered: output dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "bad permutation \(order) for rank \(rank)")
        let out = permutedCopy(order)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        let entry = tapeEntry
        return out.recording([self]) { g in entry?.accumulate(g.permutedCopy(inverse), owned: true) }
    }

    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(Shape.axis(a, rank: rank), Shape.axis(b, rank: rank))
        return permuted(order)
    }

    func permutedCopy(_ order: [Int]) -> Tensor {
        let inStrides = Shape.strides(shape)
        let outShape = order.map { shape[$0] }
        let out = Tensor(uninitializedShape: outShape)
        let loop = BroadcastLoop(shape: outShape, stridesA: order.map { inStrides[$0] },
                                 stridesB: [Int](repeating: 0, count: rank))
        let src = data, dst = out.data
        loop.forEachRun(inParallel: true) { oa, _, oo, n, sa, _ in
            if sa == 1 { (dst + oo).update(from: src + oa, count: n) }
            else { for i in 0..<n { dst[oo + i] = src[oa + i * sa] } }
        }
        return out
    }

    /// Views the shape as [outer, shape[axis], inner] around one axis.
    func split(at axis: Int) -> (outer: Int, length: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = Shape.axis(axis, rank: rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax], "slice \(range) of axis \(ax) in \(shape)")
        var outShape = shape
        outShape[ax] = range.count
        let out = Tensor(uninitializedShape: outShape)
        Tensor.copyBlocks(from: self, axis: ax, offset: range.lowerBound, to: out, offset: 0, length: range.count)
        let inputShape = shape, entry = tapeEntry
        return out.recording([self]) { g in
            let full = Tensor(zeros: inputShape)
            Tensor.copyBlocks(from: g, axis: ax, offset: 0, to: full, offset: range.lowerBound, length: range.count)
            entry?.accumulate(full, owned: true)
        }
    }

    /// Pads `axis` with `before` and `after` copies of `value`.
    public func padded(axis: Int, before: Int, after: Int, value: Float = 0) -> Tensor {
        let ax = Shape.axis(axis, rank: rank)
        var outShape = shape
        outShape[ax] += before + after
        let out = Tensor(repeating: value, shape: outShape)
        Tensor.copyBlocks(from: self, axis: ax, offset: 0, to: out, offset: before, length: shape[ax])
        let length = shape[ax], entry = tapeEntry
        return out.recording([self]) { g in entry?.accumulate(g.slice(axis: ax, before..<(before + length)), owned: true) }
    }

    /// Joins tensors that agree on every dimension but `axis`.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of nothing")
        let ax = Shape.axis(axis, rank: parts[0].rank)
        var outShape = parts[0].shape
        outShape[ax] = parts.reduce(0) { $0 + $1.shape[ax] }
        let out = Tensor(uninitializedShape: outShape)
        var offset = 0
        var offsets: [Int] = []
        for p in parts {
            var expected = outShape
            expected[ax] = p.shape[ax]
            precondition(p.shape == expected, "concat along \(ax): shape \(p.shape) does not fit \(outShape)")
            offsets.append(offset)
            copyBlocks(from: p, axis: ax, offset: 0, to: out, offset: offset, length: p.shape[ax])
            offset += p.shape[ax]
        }
        let pieces = parts.map { (entry: $0.tapeEntry, length: $0.shape[ax]) }
        return out.recording(parts) { g in
            for (piece, o) in zip(pieces, offsets) {
                piece.entry?.accumulate(withoutGrad { g.slice(axis: ax, o..<(o + piece.length)) }, owned: true)
            }
        }
    }

    /// Copies `length` entries along `axis` between two tensors equal in every other dimension.
    static func copyBlocks(from src: Tensor, axis: Int, offset so: Int, to dst: Tensor, offset d: Int, length: Int) {
        let (outer, srcLen, inner) = src.split(at: axis)
        let dstLen = dst.shape[axis]
        let block = length * inner
        for o in 0..<outer {
            (dst.data + (o * dstLen + d) * inner).update(from: src.data + (o * srcLen + so) * inner, count: block)
        }
    }

    /// Rows `indices` of the first dimension, in that order (rows may repeat).
    public func gatherRows(_ indices: [Int]) -> Tensor {
        let rowSize = count / max(shape[0], 1)
        var outShape = shape
        outShape[0] = indices.count
        let out = Tensor(uninitializedShape: outShape)
        for (r, i) in indices.enumerated() {
            precondition(i >= 0 && i < shape[0], "row \(i) out of range 0..<\(shape[0])")
            (out.data + r * rowSize).update(from: data + i * rowSize, count: rowSize)
        }
        let inputShape = shape, entry = tapeEntry
        return out.recording([self]) { g in
            let full = Tensor(zeros: inputShape)
            for (r, i) in indices.enumerated() {
                Vector.add(full.data + i * rowSize, g.data + r * rowSize, into: full.data + i * rowSize, count: rowSize)
            }
            entry?.accumulate(full, owned: true)
        }
    }

    /// `value` where `mask` (broadcastable, 0 or 1) is non-zero, self elsewhere.
    public func maskedFill(_ mask: Tensor, with value: Float) -> Tensor {
        let out = Tensor.broadcasting(self, mask, Pointwise.Fill(value: value))
        let entry = tapeEntry, inputShape = shape
        return out.recording([self]) { g in
            let kept = Tensor.broadcasting(g, mask, Pointwise.Fill(value: 0))
            entry?.accumulate(kept.summed(toShape: inputShape), owned: true)
        }
    }
}
