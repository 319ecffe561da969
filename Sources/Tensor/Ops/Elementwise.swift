/// Broadcasting arithmetic: +, −, ×, ÷ between tensors, and scaling by a constant.
extension Tensor {
    /// out = f(a, b) with NumPy broadcasting.
    static func broadcasting(_ a: Tensor, _ b: Tensor, _ f: BinaryKernel) -> Tensor {
        guard let outShape = Shape.broadcast(a.shape, b.shape) else {
            preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let device = Device.common("arithmetic", [a, b])
        let out = Tensor(uninitializedShape: outShape, on: device)
        device.backend.binary(f, a, b, into: out)
        return out
    }

    // Backward rules capture the inputs' tape entries and only the values they read, so that
    // recording an add or a product keeps no operand alive that its gradient does not need.

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, .add)
        let (ea, eb, shapeA, shapeB, shapeOut) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape, out.shape)
        return out.recording([a, b]) { g in
            // g belongs to this rule alone (see `TapeEntry.accumulate`): the first taker adopts it.
            ea?.accumulate(g.summed(toShape: shapeA), owned: true)
            eb?.accumulate(g.summed(toShape: shapeB), owned: shapeB != shapeOut || ea == nil)
        }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, .subtract)
        let (ea, eb, shapeA, shapeB) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape)
        return out.recording([a, b]) { g in
            eb?.accumulate(g.scaled(-1, recording: false).summed(toShape: shapeB), owned: true)
            ea?.accumulate(g.summed(toShape: shapeA), owned: true)
        }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, .multiply)
        let (ea, eb, shapeA, shapeB) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape)
        // da needs b's values and db needs a's: keep each only if the other side wants a gradient.
        let bForA = ea == nil ? nil : b.detached(), aForB = eb == nil ? nil : a.detached()
        return out.recording([a, b]) { g in
            withoutGrad {
                if let ea, let bForA { ea.accumulate((g * bForA).summed(toShape: shapeA), owned: true) }
                if let eb, let aForB { eb.accumulate((g * aForB).summed(toShape: shapeB), owned: true) }
            }
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let out = broadcasting(a, b, .divide)
        let (ea, eb, shapeA, shapeB) = (a.tapeEntry, b.tapeEntry, a.shape, b.shape)
        let divisor = b.detached(), quotient = eb == nil ? nil : out.detached()
        return out.recording([a, b]) { g in
            withoutGrad {
                ea?.accumulate((g / divisor).summed(toShape: shapeA), owned: true)
                // d(a/b)/db = −(a/b)/b
                if let eb, let quotient { eb.accumulate((g * quotient / divisor).scaled(-1, recording: false).summed(toShape: shapeB), owned: true) }
            }
        }
    }

    /// self·s
    public func scaled(_ s: Float) -> Tensor { scaled(s, recording: true) }

    func scaled(_ s: Float, recording: Bool) -> Tensor {
        let out = Tensor(uninitializedShape: shape, on: device)
        backend.unary(.scale(s), self, into: out)
        guard recording else { return out }
        let entry = tapeEntry
        return out.recording([self]) { g in entry?.accumulate(g.scaled(s, recording: false), owned: true) }
    }

    public static func * (a: Tensor, s: Float) -> Tensor { a.scaled(s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.scaled(s) }

    /// Sums `self` over the dimensions along which `shape` was broadcast to give `self.shape`
    /// (the gradient of a broadcast). Returns self when nothing was broadcast.
    public func summed(toShape target: [Int]) -> Tensor {
        if target == shape { return self }
        let out = Tensor(uninitializedShape: target, on: device)
        backend.sumToShape(self, into: out)
        return out
    }
}
