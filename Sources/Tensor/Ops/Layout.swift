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
        let out = Tensor(uninitializedShape: target, on: device)
        backend.expand(self, into: out)
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
        let out = Tensor(uninitializedShape: order.map { shape[$0] }, on: device)
        backend.permute(self, order, into: out)
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
        let out = Tensor(uninitializedShape: outShape, on: device)
        backend.copyBlocks(from: self, axis: ax, offset: range.lowerBound, to: out, offset: 0, length: range.count)
        let inputShape = shape, entry = tapeEntry
        return out.recording([self]) { g in
            let full = Tensor(zeros: inputShape, on: g.device)
            g.backend.copyBlocks(from: g, axis: ax, offset: 0, to: full, offset: range.lowerBound, length: range.count)
            entry?.accumulate(full, owned: true)
        }
    }

    /// Pads `axis` with `before` and `after` copies of `value`.
    public func padded(axis: Int, before: Int, after: Int, value: Float = 0) -> Tensor {
        let ax = Shape.axis(axis, rank: rank)
        var outShape = shape
        outShape[ax] += before + after
        let out = Tensor(repeating: value, shape: outShape, on: device)
        backend.copyBlocks(from: self, axis: ax, offset: 0, to: out, offset: before, length: shape[ax])
        let length = shape[ax], entry = tapeEntry
        return out.recording([self]) { g in entry?.accumulate(g.slice(axis: ax, before..<(before + length)), owned: true) }
    }

    /// Joins tensors that agree on every dimension but `axis`.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of nothing")
        let ax = Shape.axis(axis, rank: parts[0].rank)
        var outShape = parts[0].shape
        outShape[ax] = parts.reduce(0) { $0 + $1.shape[ax] }
        let device = Device.common("concat", parts)
        let out = Tensor(uninitializedShape: outShape, on: device)
        var offset = 0
        var offsets: [Int] = []
        for p in parts {
            var expected = outShape
            expected[ax] = p.shape[ax]
            precondition(p.shape == expected, "concat along \(ax): shape \(p.shape) does not fit \(outShape)")
            offsets.append(offset)
            device.backend.copyBlocks(from: p, axis: ax, offset: 0, to: out, offset: offset, length: p.shape[ax])
            offset += p.shape[ax]
        }
        let pieces = parts.map { (entry: $0.tapeEntry, length: $0.shape[ax]) }
        return out.recording(parts) { g in
            for (piece, o) in zip(pieces, offsets) {
                piece.entry?.accumulate(withoutGrad { g.slice(axis: ax, o..<(o + piece.length)) }, owned: true)
            }
        }
    }

    /// Rows `indices` of the first dimension, in that order (rows may repeat).
    public func gatherRows(_ indices: [Int]) -> Tensor {
        var outShape = shape
        outShape[0] = indices.count
        for i in indices { precondition(i >= 0 && i < shape[0], "row \(i) out of range 0..<\(shape[0])") }
        let out = Tensor(uninitializedShape: outShape, on: device)
        backend.gatherRows(self, indices, into: out)
        let inputShape = shape, entry = tapeEntry
        return out.recording([self]) { g in
            let full = Tensor(zeros: inputShape, on: g.device)
            g.backend.scatterAddRows(g, indices, into: full)
            entry?.accumulate(full, owned: true)
        }
    }

    /// `value` where `mask` (broadcastable, 0 or 1) is non-zero, self elsewhere.
    public func maskedFill(_ mask: Tensor, with value: Float) -> Tensor {
        let out = Tensor.broadcasting(self, mask, .fill(value))
        let entry = tapeEntry, inputShape = shape
        return out.recording([self]) { g in
            let kept = Tensor.broadcasting(g, mask, .fill(0))
            entry?.accumulate(kept.summed(toShape: inputShape), owned: true)
        }
    }
}
