import HDF5
import Tensor
import XCTest

/// The train-step checks every NeMo fixture shares (`/train_step/grads`, `/optimizer_step*`).
extension HDF5File {
    /// Every trainable parameter's gradient against NeMo's: within 1e-4 of the tensor's largest
    /// gradient (they span orders of magnitude) with a 2e-6 floor, since gradients that are 0 in
    /// exact arithmetic hold rounding noise of ~1e-7 on both sides.
    public func assertGradientsMatch(_ parameters: [(name: String, tensor: Tensor)], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(parameters.count, try datasetNames(in: "/train_step/grads").count, "trainable parameters", file: file, line: line)
        for (name, p) in parameters {
            let expected = try read("/train_step/grads/\(name)").floats
            let scale = expected.map(abs).max() ?? 0
            assertClose(p.grad?.array ?? [], expected, atol: max(1e-4 * scale, 2e-6), rtol: 1e-3, "grad \(name)", file: file, line: line)
        }
    }

    /// One AdamW update of `group` ("/optimizer_step" or "/optimizer_step_peak") from NeMo's own
    /// gradients (ours agree to rounding, but Adam turns a rounding-noise gradient into ±lr).
    public func assertAdamWStepMatches(_ parameters: [(name: String, tensor: Tensor)], group: String,
                                       file: StaticString = #filePath, line: UInt = #line) throws {
        for (name, p) in parameters { p.grad = try tensor("/train_step/grads/\(name)") }
        let optimizer = AdamW(parameters: parameters, settings: .init(betas: (0.9, 0.98), eps: 1e-8, weightDecay: 1e-3))
        optimizer.update(lr: try read("\(group)/lr").doubles[0])
        for (name, p) in parameters {
            // float32 rounding of the weights (|w| ≲ 1) and of lr·m̂/(√v̂ + ε).
            assertClose(p.array, try read("\(group)/weights/\(name)").floats, atol: 2e-7, rtol: 1e-6, "\(group) \(name)", file: file, line: line)
        }
    }
}
