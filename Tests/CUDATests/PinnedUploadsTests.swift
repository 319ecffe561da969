import CUDA
import XCTest

/// `PinnedUploads` against a queue that runs its copies late, as a busy GPU does: a copy reads
/// the staging ring only when the queue gets to it, so a region handed out again too early
/// shows up as wrong values at the destination.
final class PinnedUploadsTests: XCTestCase {
    /// A GPU stream on the host: copies wait in order until an event is waited for, or until
    /// `progress` runs some of them.
    final class LateQueue: UploadQueue {
        final class Event { var position = -1 }
        var pending: [(source: UnsafeRawPointer, destination: UnsafeMutableRawPointer, bytes: Int)] = []
        var executed = 0, queued = 0, pinnedAllocations = 0, waits = 0
        let refusesPinned: Bool
        var rng = SystemRandomNumberGenerator()

        init(refusesPinned: Bool = false) { self.refusesPinned = refusesPinned }

        func allocatePinned(bytes: Int) -> UnsafeMutableRawPointer? {
            guard !refusesPinned else { return nil }
            pinnedAllocations += 1
            return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        }
        func freePinned(_ address: UnsafeMutableRawPointer) { address.deallocate() }
        func queueCopy(from pinned: UnsafeRawPointer, to device: UnsafeMutableRawPointer, bytes: Int) {
            pending.append((pinned, device, bytes))
            queued += 1
        }
        func makeEvent() -> Event { Event() }
        func record(_ event: Event) { event.position = queued }
        func isDone(_ event: Event) -> Bool { executed >= event.position }
        func wait(_ event: Event) {
            waits += 1
            run(upTo: event.position)
        }
        func destroy(_ event: Event) {}

        func run(upTo position: Int) {
            while executed < position {
                let c = pending.removeFirst()
                c.destination.copyMemory(from: c.source, byteCount: c.bytes)
                executed += 1
            }
        }
        /// The GPU gets through a random number of the queued copies.
        func progress() { run(upTo: executed + Int.random(in: 0...pending.count, using: &rng)) }
        func drain() { run(upTo: queued) }
    }

    func testValuesArriveIntactWhileTheRingIsReusedBehindTheQueue() {
        let queue = LateQueue()
        let uploads = PinnedUploads(queue, capacity: 1000, pieceBytes: 300)
        var expected: [[UInt8]] = [], destinations: [UnsafeMutableRawPointer] = []
        var source = [UInt8](repeating: 0, count: 2500)
        for i in 0..<200 {
            // Sizes below a piece, across pieces and beyond the whole ring.
            let bytes = [1, 7, 299, 300, 301, 650, 999, 1000, 2500][i % 9]
            for j in 0..<bytes { source[j] = UInt8.random(in: .min ... .max) }
            let destination = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 1)
            XCTAssertTrue(source.withUnsafeBytes { uploads.upload(from: $0.baseAddress!, to: destination, bytes: bytes) })
            expected.append(Array(source[..<bytes]))
            destinations.append(destination)
            // The caller's buffer is reused at once, as a loading thread's is.
            for j in 0..<bytes { source[j] = 0xEE }
            if i % 3 == 0 { queue.progress() }
        }
        queue.drain()
        for (i, (bytes, destination)) in zip(expected, destinations).enumerated() {
            XCTAssert(Array(UnsafeRawBufferPointer(start: destination, count: bytes.count)) == bytes,
                      "upload \(i) (\(bytes.count) bytes) arrived changed: its staging was reused before the queue copied it")
            destination.deallocate()
        }
        XCTAssertEqual(queue.pinnedAllocations, 1, "one ring, allocated once")
        XCTAssertGreaterThan(queue.waits, 0, "uploads larger than the ring must have waited for the queue")
        XCTAssertEqual(uploads.piecesInFlight, 0)
    }

    func testUploadsDoNotWaitWhileTheRingHasRoom() {
        let queue = LateQueue()
        let uploads = PinnedUploads(queue, capacity: 1 << 20, pieceBytes: 1 << 18)
        let values = [Float](repeating: 1, count: 1 << 16)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: values.count * 4, alignment: 64)
        defer { destination.deallocate() }
        for _ in 0..<4 { XCTAssertTrue(values.withUnsafeBytes { uploads.upload(from: $0.baseAddress!, to: destination, bytes: $0.count) }) }
        XCTAssertEqual(queue.waits, 0)
        XCTAssertEqual(queue.executed, 0, "nothing copied yet: the uploads only queued their copies")
        XCTAssertEqual(uploads.piecesInFlight, 4)
        // Once the queue has run, the ring starts over without waiting.
        queue.drain()
        XCTAssertTrue(values.withUnsafeBytes { uploads.upload(from: $0.baseAddress!, to: destination, bytes: $0.count) })
        XCTAssertEqual(queue.waits, 0)
        queue.drain()
    }

    func testRefusedPinnedMemoryLeavesTheCopyToTheCaller() {
        let queue = LateQueue(refusesPinned: true)
        let uploads = PinnedUploads(queue, capacity: 1024, pieceBytes: 256)
        var value: Float = 3
        var destination: Float = 0
        XCTAssertFalse(uploads.upload(from: &value, to: &destination, bytes: 4))
        XCTAssertEqual(queue.queued, 0)
    }
}
