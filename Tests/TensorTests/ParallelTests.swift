import Foundation
import Tensor
import XCTest

/// `Parallel.forRanges` on its worker pool: every index exactly once, also when two threads
/// start regions at the same time (one falls back to libdispatch) and when a part starts a
/// nested region.
final class ParallelTests: XCTestCase {
    func coverage(_ count: Int, grain: Int) -> [Int] {
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0, count: count)
        defer { hits.deallocate() }
        Parallel.forRanges(count, grain: grain) { r in for i in r { hits[i] += 1 } }
        return Array(UnsafeBufferPointer(start: hits, count: count))
    }

    func testEveryIndexOnceAcrossManyRegions() {
        for count in [0, 1, 7, 1000, 65_537] {
            for _ in 0..<200 { XCTAssertEqual(coverage(count, grain: 4), [Int](repeating: 1, count: count), "count \(count)") }
        }
    }

    func testConcurrentAndNestedRegions() {
        final class Flag: @unchecked Sendable { var ok = true }
        let other = Flag(), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for _ in 0..<500 where self.coverage(10_000, grain: 16) != [Int](repeating: 1, count: 10_000) { other.ok = false }
            done.signal()
        }
        for _ in 0..<500 { XCTAssertEqual(coverage(10_000, grain: 16), [Int](repeating: 1, count: 10_000)) }
        done.wait()
        XCTAssertTrue(other.ok, "the other thread's regions lost or repeated indices")
        // A part that starts a region of its own.
        let outer = 64, inner = 1000
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: outer * inner)
        hits.initialize(repeating: 0, count: outer * inner)
        defer { hits.deallocate() }
        Parallel.forRanges(outer, grain: 1) { rows in
            for row in rows { Parallel.forRanges(inner, grain: 8) { r in for i in r { hits[row * inner + i] += 1 } } }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: hits, count: outer * inner)), [Int](repeating: 1, count: outer * inner))
    }
}
