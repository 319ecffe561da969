import Tensor
import XCTest
import _TestSupport

/// Exact-value tests of the autodiff graph itself.
final class GraphSemanticsTests: XCTestCase {
    func testTensorUsedTwiceAccumulates() {
        let x = Tensor([3], shape: [1], requiresGrad: true)
        let y = (x * x + x).sum()   // dy/dx = 2x + 1 = 7
        y.backward()
        XCTAssertEqual(x.grad?.array, [7])
    }

    func testFrozenTensorsGetNoGradient() {
        let w = Tensor([2], shape: [1], requiresGrad: true)
        let frozen = Tensor([5], shape: [1])
        (w * frozen).sum().backward()
        XCTAssertEqual(w.grad?.array, [5])
        XCTAssertNil(frozen.grad)
    }

    func testNoGradRecordsNothing() {
        let w = Tensor([2], shape: [1], requiresGrad: true)
        let y = withoutGrad { w * w }
        XCTAssertFalse(y.requiresGrad)
    }

    func testGradientsAccumulateAcrossBackwardCallsUntilZeroed() {
        let w = Tensor([1, 2], shape: [2], requiresGrad: true)
        (w * 3).sum().backward()
        (w * 3).sum().backward()
        XCTAssertEqual(w.grad?.array, [6, 6])
        Gradients.zero([w])
        XCTAssertNil(w.grad)
    }

    func testDiamondGraphVisitsSharedNodeOnce() {
        let x = Tensor([2], shape: [1], requiresGrad: true)
        let h = x * 3           // shared by both branches
        let y = (h * h + h).sum()   // dy/dx = (2h + 1)·3 = 39
        y.backward()
        XCTAssertEqual(x.grad?.array, [39])
    }
}
