/// Sums and means over axes.
extension Tensor {
    /// Sum over `axes`; the reduced dimensions are kept with size 1 when `keepDims`.
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = Set(axes.map { Shape.axis($0, rank: rank) })
        let kept = shape.enumerated().map { ax.contains($0.offset) ? 1 : $0.element }
        let reduced = withoutGrad { summed(toShape: kept) }
        let out = reduced === self ? copy() : reduced
        let inputShape = shape, entry = tapeEntry
        let result = out.recording([self]) { g in
            entry?.accumulate(withoutGrad { g.reshaped(kept).expanded(to: inputShape) }, owned: true)
        }
        return keepDims ? result : result.reshaped(shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element })
    }

    /// Sum of every element, as a scalar tensor.
    public func sum() -> Tensor { sum(axes: Array(0..<rank)) }

    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[Shape.axis($0, rank: rank)] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims).scaled(1 / Float(n))
    }

    public func mean() -> Tensor { mean(axes: Array(0..<rank)) }
}
