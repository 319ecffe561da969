import Tensor
import XCTest

/// What the tape keeps alive and what the buffer pool keeps idle: the two things that decide a
/// training step's peak memory.
final class MemoryTests: XCTestCase {
    let n = 1 << 18   // 1 MiB per tensor, far above anything else a test leaves around

    /// Where a CPU tensor's values are (its host view is its memory): identity only.
    private func memory(of t: Tensor) -> UnsafePointer<Float>? { t.withHostValues { $0.baseAddress } }
    /// Bytes that tensors on the default device hold now (the device the graph below runs on).
    private func liveMiB() -> Double { Double(Device.default.backend.memory.live) / Double(1 << 20) }

    func testRecordingKeepsOnlyWhatBackwardRulesRead() {
        let x = Tensor(zeros: [n], requiresGrad: true)
        let one = Tensor([1], shape: [1])
        let before = liveMiB()
        // Eight intermediates of 1 MiB; adds, scaling and dropout read none of them backward.
        let loss = { () -> Tensor in
            var h = x
            for i in 0..<4 { h = (h + one).dropout(0.5, seed: UInt64(i)) * 2 }
            return h.sum()
        }()
        XCTAssertLessThan(liveMiB() - before, 0.5, "intermediates no rule reads must be freed during the forward")
        // A product reads its operands: sigmoid keeps its output, the product keeps both factors.
        let s = x.sigmoid()
        let p = (s * (x + one)).sum()
        XCTAssertEqual(liveMiB() - before, 2, accuracy: 0.1, "sigmoid output and x + 1 are saved, nothing else")
        (loss + p).backward()
        XCTAssertNotNil(x.grad)
    }

    func testSizeClassesRoundUpByAtMostOneEighth() {
        var previous = 0
        for count in [1, 15, 16, 17, 4095, 4096, 4097, 5000, 65_537, 258_048, 262_144, 1_032_192, 10_000_019] {
            let c = BufferPool.sizeClass(count)
            XCTAssertGreaterThanOrEqual(c, count)
            XCTAssertLessThanOrEqual(Double(c), Double(count) * 1.125 + 16, "class of \(count)")
            XCTAssertGreaterThanOrEqual(c, previous, "classes grow with the request")
            XCTAssertEqual(BufferPool.sizeClass(c), c, "a class is its own class")
            previous = c
        }
    }

    func testPoolReusesAClassAndEndStepReturnsIdleBuffers() {
        // Start from a pool with nothing idle, whatever earlier tests left behind.
        for _ in 0...BufferPool.idleStepsKept { BufferPool.shared.endStep() }
        XCTAssertEqual(BufferPool.shared.currentHeldBytes, 0)
        var address: UnsafePointer<Float>?
        do { let t = Tensor(uninitializedShape: [n + 1000], on: .cpu); address = memory(of: t) }
        let held = BufferPool.shared.currentHeldBytes
        XCTAssertGreaterThanOrEqual(held, n * 4, "a dropped tensor's buffer is kept for reuse")
        do {
            let t = Tensor(uninitializedShape: [n + 2000], on: .cpu)   // same size class
            XCTAssertEqual(memory(of: t), address, "a request of the same class reuses the idle buffer")
        }
        do {
            let t = Tensor(uninitializedShape: [n - n / 8], on: .cpu)   // three classes smaller
            XCTAssertEqual(memory(of: t), address, "a smaller request reuses a buffer up to four classes larger")
        }
        for _ in 0..<BufferPool.idleStepsKept {   // idle for fewer steps than the limit: kept
            BufferPool.shared.endStep()
            XCTAssertGreaterThanOrEqual(BufferPool.shared.currentHeldBytes, n * 4)
        }
        BufferPool.shared.endStep()   // not reused for idleStepsKept steps: freed
        XCTAssertEqual(BufferPool.shared.currentHeldBytes, 0)
    }

    func testAMissFreesOlderIdleBuffersTooSmallForIt() {
        for _ in 0...BufferPool.idleStepsKept { BufferPool.shared.endStep() }
        do { _ = Tensor(uninitializedShape: [n], on: .cpu) }   // idle after this step…
        BufferPool.shared.endStep()
        XCTAssertGreaterThanOrEqual(BufferPool.shared.currentHeldBytes, n * 4, "kept for the next steps")
        // …until a longer batch needs fresh pages: the smaller idle buffer makes room.
        let big = Tensor(uninitializedShape: [4 * n], on: .cpu)
        XCTAssertEqual(BufferPool.shared.currentHeldBytes, 0)
        withExtendedLifetime(big) {}
    }
}
