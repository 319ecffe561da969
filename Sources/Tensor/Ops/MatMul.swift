/// Matrix products: (batched) matmul with optional transposes, and Linear.
extension Tensor {
    /// op(a)·op(b) over the last two dimensions. Leading dimensions must be equal, or `b` may be
    /// a plain matrix shared by every batch entry.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs matrices, got \(a.shape) and \(b.shape)")
        let batchShape = Array(a.shape.dropLast(2))
        let sharedB = b.rank == 2 && a.rank > 2
        precondition(sharedB || Array(b.shape.dropLast(2)) == batchShape, "matmul batch dims \(a.shape) vs \(b.shape)")
        precondition(!(sharedB && transposeA), "matmul: a shared right operand needs an untransposed left one")
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == k2, "matmul inner dimensions \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let batches = batchShape.reduce(1, *)
        let device = Device.common("matmul", [a, b])
        let out = Tensor(uninitializedShape: batchShape + [m, n], on: device)
        if sharedB {
            // One GEMM over all rows of a.
            device.backend.gemm(GEMMProblem(transposeB: transposeB, m: batches * m, n: n, k: k, lda: ac, ldb: bc, ldc: n), a: a, b: b, c: out)
        } else {
            var problem = GEMMProblem(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: ac, ldb: bc, ldc: n)
            (problem.batches, problem.strideA, problem.strideB, problem.strideC) = (batches, ar * ac, br * bc, m * n)
            device.backend.gemm(problem, a: a, b: b, c: out)
        }
        let (ea, eb) = (a.tapeEntry, b.tapeEntry)
        // dA needs B's values and dB needs A's: keep each only if the other side wants a gradient.
        let bForA = ea == nil ? nil : b.detached(), aForB = eb == nil ? nil : a.detached()
        return out.recording([a, b]) { g in
            // C = A′B′ ⇒ dA′ = dC·B′ᵀ, dB′ = A′ᵀ·dC; a transposed operand takes the transpose.
            withoutGrad {
                if let ea, let b = bForA {
                    let ga = transposeA ? matmul(b, g, transposeA: transposeB, transposeB: true)
                                        : matmul(g, b, transposeA: false, transposeB: !transposeB)
                    ea.accumulate(ga, owned: true)
                }
                if let eb, let a = aForB {
                    if sharedB {
                        // Sum over the batch: stack the batch into rows of one GEMM.
                        let a2 = a.reshaped([batches * ar, ac]), g2 = g.reshaped([batches * m, n])
                        let gb = transposeB ? matmul(g2, a2, transposeA: true) : matmul(a2, g2, transposeA: true)
                        eb.accumulate(gb, owned: true)
                    } else {
                        let gb = transposeB ? matmul(g, a, transposeA: true, transposeB: transposeA)
                                            : matmul(a, g, transposeA: !transposeA, transposeB: false)
                        eb.accumulate(gb, owned: true)
                    }
                }
            }
        }
    }

    /// PyTorch's Linear: x·Wᵀ + bias over the last dimension. W is [out, in].
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let inF = weight.shape[weight.rank - 1], outF = weight.shape[0]
        precondition(x.shape.last == inF, "linear: input \(x.shape) vs weight \(weight.shape)")
        let rows = x.count / inF
        let device = Device.common("linear", [x, weight, bias])
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF], on: device)
        var beta: Float = 0
        if let bias {
            precondition(bias.count == outF, "linear: bias \(bias.shape) for \(outF) outputs")
            // Every row starts as the bias; the product adds to it.
            device.backend.expand(Tensor(shape: [1, outF], storage: bias.storage), into: Tensor(shape: [rows, outF], storage: out.storage))
            beta = 1
        }
        device.backend.gemm(GEMMProblem(transposeB: true, m: rows, n: outF, k: inF, beta: beta, lda: inF, ldb: inF, ldc: outF),
                            a: x, b: weight, c: out)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        let (ex, ew, eb, inputShape) = (x.tapeEntry, weight.tapeEntry, bias?.tapeEntry, x.shape)
        let weightValues = weight.detached(), xForWeight = ew == nil ? nil : x.detached()
        return out.recording(inputs) { g in
            if let ex {
                let gx = Tensor(uninitializedShape: inputShape, on: device)
                device.backend.gemm(GEMMProblem(m: rows, n: inF, k: outF, lda: outF, ldb: inF, ldc: inF), a: g, b: weightValues, c: gx)
                ex.accumulate(gx, owned: true)
            }
            if let ew, let x = xForWeight {
                // Straight into the gradient (beta = 1 adds to an existing one): no temporary.
                let (gw, adds) = ew.writableGradient()
                device.backend.gemm(GEMMProblem(transposeA: true, m: outF, n: inF, k: rows, beta: adds ? 1 : 0, lda: outF, ldb: inF, ldc: inF),
                                    a: g, b: x, c: gw)
            }
            if let eb {
                eb.accumulate(withoutGrad { g.reshaped([rows, outF]).summed(toShape: [1, outF]) }.reshaped(eb.shape), owned: true)
            }
        }
    }
}
