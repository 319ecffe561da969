import Foundation

/// What `PinnedUploads` needs of a GPU: page-locked host memory, a host→device copy queued
/// behind the work before it (and returning at once), and events that mark how far the queue has
/// run.
public protocol UploadQueue: AnyObject {
    associatedtype Event
    /// Page-locked host memory the GPU copies from without the host waiting; nil when the
    /// system refuses it.
    func allocatePinned(bytes: Int) -> UnsafeMutableRawPointer?
    func freePinned(_ address: UnsafeMutableRawPointer)
    /// Queues the copy and returns at once: the source must stay unchanged until an event
    /// recorded after it is done.
    func queueCopy(from pinned: UnsafeRawPointer, to device: UnsafeMutableRawPointer, bytes: Int)
    func makeEvent() -> Event
    func record(_ event: Event)
    func isDone(_ event: Event) -> Bool
    func wait(_ event: Event)
    func destroy(_ event: Event)
}

/// Host→device copies that return as soon as the host's values are staged: each piece is copied
/// into a ring of page-locked memory and the GPU copies it from there in stream order, so a
/// data-loading thread that uploads a batch never waits for the step the GPU is running.
///
/// The ring is reused only behind the GPU: every piece records an event after its copy, and a
/// region is handed out again only once the events of the pieces that held it are done (in
/// queue order, so the oldest piece is the one waited for when the ring is full). The caller's
/// values may be reused the moment `upload` returns, as with a synchronous copy.
///
/// Where the system refuses page-locked memory, `upload` returns false and the caller copies
/// synchronously.
public final class PinnedUploads<Queue: UploadQueue> {
    private let queue: Queue
    /// Ring size, and the largest piece: a batch goes up in several pieces, so the GPU copies
    /// one while the host stages the next.
    public let capacity: Int, pieceBytes: Int
    private var ring: UnsafeMutableRawPointer?
    private var refused = false
    /// Pieces the GPU may not have copied yet, oldest first, with the event after each.
    private var inFlight: [(range: Range<Int>, event: Queue.Event)] = []
    private var spareEvents: [Queue.Event] = []
    /// Where the next piece starts.
    private var head = 0
    private let lock = NSLock()

    public init(_ queue: Queue, capacity: Int = 64 << 20, pieceBytes: Int = 8 << 20) {
        precondition(pieceBytes > 0 && pieceBytes <= capacity)
        self.queue = queue
        self.capacity = capacity
        self.pieceBytes = pieceBytes
    }

    /// Stages `bytes` from `source` and queues their copy to `destination`; false when no
    /// page-locked memory is available (nothing was copied).
    public func upload(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let ring = ringMemory() else { return false }
        var done = 0
        while done < bytes {
            let n = min(pieceBytes, bytes - done)
            let start = reserve(n)
            (ring + start).copyMemory(from: source + done, byteCount: n)
            queue.queueCopy(from: ring + start, to: destination + done, bytes: n)
            let event = spareEvents.popLast() ?? queue.makeEvent()
            queue.record(event)
            inFlight.append((start..<start + n, event))
            done += n
        }
        return true
    }

    /// How many pieces the GPU may still be copying (for tests).
    public var piecesInFlight: Int {
        lock.lock()
        defer { lock.unlock() }
        retireFinished()
        return inFlight.count
    }

    /// The ring, allocated at the first upload.
    private func ringMemory() -> UnsafeMutableRawPointer? {
        if ring == nil && !refused {
            ring = queue.allocatePinned(bytes: capacity)
            refused = ring == nil
        }
        return ring
    }

    /// A free region of `n` bytes: after the last piece if it fits before the ring's end, else
    /// at its start; waiting for the oldest piece in flight while the region still overlaps one.
    private func reserve(_ n: Int) -> Int {
        while true {
            retireFinished()
            if inFlight.isEmpty { head = 0 }
            let start = head + n <= capacity ? head : 0
            let region = start..<start + n
            if !inFlight.contains(where: { $0.range.overlaps(region) }) {
                head = region.upperBound
                return start
            }
            let oldest = inFlight.removeFirst()
            queue.wait(oldest.event)
            spareEvents.append(oldest.event)
        }
    }

    private func retireFinished() {
        while let oldest = inFlight.first, queue.isDone(oldest.event) {
            inFlight.removeFirst()
            spareEvents.append(oldest.event)
        }
    }

    deinit {
        for piece in inFlight { queue.wait(piece.event) }
        for e in inFlight.map(\.event) + spareEvents { queue.destroy(e) }
        if let ring { queue.freePinned(ring) }
    }
}
