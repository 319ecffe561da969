import Foundation
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

    func testNoGradScopeOfAnotherThreadDoesNotStopRecordingHere() {
        let w = Tensor([2], shape: [1], requiresGrad: true)
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        final class Outcome: @unchecked Sendable { var recorded = true }   // written before `done`, read after
        let background = Outcome()
        Thread.detachNewThread {
            withoutGrad {
                entered.signal()
                release.wait()   // hold the scope open while the test thread records
                background.recorded = (w * w).requiresGrad
            }
            done.signal()
        }
        entered.wait()
        XCTAssertTrue(GradMode.isEnabled, "another thread's no-grad scope leaked into this one")
        let y = (w * w).sum()
        XCTAssertTrue(y.requiresGrad)
        release.signal()
        done.wait()
        XCTAssertFalse(background.recorded, "the background thread's own scope must hold there")
        y.backward()
        XCTAssertEqual(w.grad?.array, [4])
        // Nested scopes restore the outer state.
        withoutGrad {
            withoutGrad { XCTAssertFalse(GradMode.isEnabled) }
            XCTAssertFalse(GradMode.isEnabled)
        }
        XCTAssertTrue(GradMode.isEnabled)
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

    func testPassedThroughGradientsAreNotSharedBetweenConsumers() {
        // add and reshape hand their gradient storage to one input; fan-out after them (h and v
        // are each read twice, and x + x takes the same entry twice) must still accumulate
        // into separate gradients.
        let a = randomTensor([3, 4], seed: 31), b = randomTensor([3, 4], seed: 32)
        _TestSupport.assertGradients([a, b], "fan-out through add and reshape") {
            let h = a + b
            let v = h.reshaped([4, 3])
            let w = (v + v).reshaped([3, 4]) * h
            return (w - a) + (h + h) * b
        }
    }

    /// A leaf with a gradient home accumulates into that storage (data-parallel training sums
    /// it in place there), and after the gradient is dropped the next backward starts afresh.
    func testGradientsAccumulateInTheirHome() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let home = Tensor(repeating: 99, shape: [2])
        x.tapeEntry!.gradientHome = home
        ((x * x).sum() + x.sum()).backward()            // 2x + 1, from two consumers
        XCTAssertTrue(x.grad === home, "the gradient is the home itself")
        XCTAssertEqual(home.array, [3, 5], "the first gradient overwrote the home's stale values")
        (x * 3).sum().backward()
        XCTAssertEqual(home.array, [6, 8], "later gradients add")
        x.grad = nil
        (x * 3).sum().backward()
        XCTAssertEqual(home.array, [3, 3])
    }
}
