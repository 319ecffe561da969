import Tensor
import XCTest

/// Finite-difference check of the vector–Jacobian product of `f` with a random upstream
/// gradient u (a plain sum would hide transposes): for every input element x,
/// ∂(u·f)/∂x from `backward` must match (u·f(x+h) − u·f(x−h)) / 2h.
public func assertGradients(_ inputs: [Tensor], h: Float = 1e-2, atol: Float = 2e-3, rtol: Float = 2e-2,
                            seed: UInt64 = 7, _ what: String = "", file: StaticString = #filePath, line: UInt = #line,
                            _ f: () -> Tensor) {
    for x in inputs { x.requiresGrad = true; x.grad = nil }
    let out = f()
    let rng = RandomGenerator(seed: seed)
    let u = Tensor(zeros: out.shape)
    rng.fillUniform(u, -1, 1)
    out.backward(seed: u)

    func objective() -> Double {
        let y = withoutGrad { f() }.array, weights = u.array
        var s = 0.0
        for i in 0..<y.count { s += Double(y[i]) * Double(weights[i]) }
        return s
    }
    for (n, x) in inputs.enumerated() {
        guard let analytic = x.grad else {
            XCTFail("\(what): input \(n) \(x.shape) received no gradient", file: file, line: line)
            continue
        }
        var numeric = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let saved = x.withHostValues { $0[i] }
            x.withMutableHostValues { $0[i] = saved + h }
            let plus = objective()
            x.withMutableHostValues { $0[i] = saved - h }
            let minus = objective()
            x.withMutableHostValues { $0[i] = saved }
            numeric[i] = Float((plus - minus) / (2 * Double(h)))
        }
        assertClose(analytic.array, numeric, atol: atol, rtol: rtol, "\(what) gradient of input \(n) \(x.shape)", file: file, line: line)
    }
}

/// A tensor of uniform values in [lo, hi) from a fixed seed.
public func randomTensor(_ shape: [Int], seed: UInt64, _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
    let t = Tensor(zeros: shape)
    RandomGenerator(seed: seed).fillUniform(t, lo, hi)
    return t
}
