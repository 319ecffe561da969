import Foundation

/// A 64-byte aligned block of Float32 owned by one or more tensors (reshape shares it).
///
/// When the last tensor using it goes away the block returns to `BufferPool`, so a training
/// step whose shapes repeat reuses the previous step's memory instead of faulting in fresh pages.
public final class Storage {
    public let pointer: UnsafeMutablePointer<Float>
    public let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        self.pointer = BufferPool.shared.acquire(capacity)
    }

    deinit { BufferPool.shared.release(pointer, capacity: capacity) }
}

/// Free lists of aligned buffers keyed by their exact capacity, with a bound on the bytes held.
///
/// Exact sizes are the right key here: a training step allocates the same shapes every step,
/// and rounding would waste memory on the largest activations (attention scores, decoder logits).
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    private var idle: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var heldBytes = 0
    private var liveBytes = 0
    /// High-water marks since the last `resetPeaks()`: bytes handed out, and handed out plus idle.
    public private(set) var peakLiveBytes = 0
    public private(set) var peakTotalBytes = 0
    public var currentLiveBytes: Int { lock.lock(); defer { lock.unlock() }; return liveBytes }
    public var currentHeldBytes: Int { lock.lock(); defer { lock.unlock() }; return heldBytes }
    public func resetPeaks() { lock.lock(); peakLiveBytes = liveBytes; peakTotalBytes = liveBytes + heldBytes; lock.unlock() }
    private func noteLive(_ delta: Int) {
        liveBytes += delta
        peakLiveBytes = max(peakLiveBytes, liveBytes)
        peakTotalBytes = max(peakTotalBytes, liveBytes + heldBytes)
    }
    private let lock = NSLock()
    /// Upper bound on idle memory kept for reuse; beyond it buffers go back to the system.
    public var maxHeldBytes = 8 << 30

    func acquire(_ count: Int) -> UnsafeMutablePointer<Float> {
        let capacity = max(count, 1)
        lock.lock()
        if var list = idle[capacity], let p = list.popLast() {
            idle[capacity] = list
            heldBytes -= capacity * 4
            noteLive(capacity * 4)
            lock.unlock()
            return p
        }
        noteLive(capacity * 4)
        lock.unlock()
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, capacity * MemoryLayout<Float>.stride) == 0, let raw else {
            fatalError("out of memory allocating \(capacity) floats")
        }
        return raw.bindMemory(to: Float.self, capacity: capacity)
    }

    func release(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        let bytes = max(capacity, 1) * 4
        lock.lock()
        noteLive(-bytes)
        if heldBytes + bytes <= maxHeldBytes {
            idle[max(capacity, 1), default: []].append(pointer)
            heldBytes += bytes
            lock.unlock()
        } else {
            lock.unlock()
            free(pointer)
        }
    }
}
