import Foundation

/// A block of one device's memory owned by one or more tensors (reshape shares it).
///
/// It comes from its device's allocator and goes back to it when the last tensor using it goes
/// away (the CPU's is `BufferPool`: a training step whose shapes repeat reuses the previous
/// step's memory instead of faulting in fresh pages). Host code reaches the values only
/// through the tensor's explicit host views and copies; the address is for kernels.
public final class Storage {
    public let device: Device
    public let elementType: ElementType
    /// Elements reserved, at least the count asked for (allocators round up to a size class).
    public let capacity: Int
    /// The block's address in its device's memory, for the backend's kernels only.
    let address: UnsafeMutablePointer<Float>
    /// The same address for a backend in another module (`@_spi(Backend) import Tensor`).
    @_spi(Backend) public var kernelAddress: UnsafeMutablePointer<Float> { address }
    /// The storage a slice lies in, kept alive by it; nil for a block of its own.
    private let parent: Storage?

    init(capacity: Int, on device: Device) {
        self.device = device
        elementType = .float32
        (address, self.capacity) = device.backend.allocate(capacity)
        parent = nil
    }

    private init(slice address: UnsafeMutablePointer<Float>, count: Int, of parent: Storage) {
        device = parent.device
        elementType = parent.elementType
        self.address = address
        capacity = count
        self.parent = parent
    }

    /// `count` elements from `offset`, sharing this block's memory (the gradient buckets of
    /// data-parallel training hand out such slices as gradient homes).
    public func slice(offset: Int, count: Int) -> Storage {
        precondition(offset >= 0 && offset + count <= capacity, "slice \(offset)..<\(offset + count) of a storage of \(capacity)")
        return Storage(slice: address + offset, count: count, of: self)
    }

    deinit { if parent == nil { device.backend.release(address, capacity: capacity) } }
}

/// Free lists of aligned buffers by size class, trimmed to what the recent steps used.
///
/// Sizes are rounded up to eight classes per octave (at most 12.5 % more than asked), so that
/// batches of slightly different lengths, and gradients of parameters versus activations of
/// nearly equal size, share buffers instead of each keeping their own. Idle memory is what
/// makes peak RSS exceed the live tensors, so it is bounded twice: `maxHeldBytes` at all times,
/// and `endStep()` frees buffers that sat idle through several steps (as they do after a batch
/// of unusual length).
///
/// The pool is the same for every device: `RawMemory` says where fresh blocks come from (the
/// host's pages, or a GPU's `cuMemAlloc`), so a device allocator reuses blocks without calling
/// the driver in the steady state.
public final class BufferPool: @unchecked Sendable {
    /// The CPU's memory.
    public static let shared = BufferPool()

    private let memory: RawMemory

    /// When idle blocks go back to the memory they came from.
    public enum Trimming: Sendable {
        /// The host's pool: idle memory is what makes RSS exceed the live tensors, so it is
        /// bounded (`maxHeldBytes`), freed after `idleStepsKept` idle steps, and smaller stale
        /// blocks go first on a miss.
        case recentSteps
        /// A GPU's pool: every `cuMemFree` waits for the whole device, so a step returns nothing;
        /// idle blocks go back only when an allocation fails (then the allocation is retried).
        case onFailure
    }
    public let trimming: Trimming

    public init(memory: RawMemory = .host, trimming: Trimming = .recentSteps) {
        self.memory = memory
        self.trimming = trimming
    }

    private struct Idle { let pointer: UnsafeMutablePointer<Float>; let generation: Int }
    private var idle: [Int: [Idle]] = [:]
    private var heldBytes = 0
    private var liveBytes = 0
    private var generation = 0
    private let lock = NSLock()
    /// Measured on variable-length batches: freeing what one step left idle and reusing only the
    /// next two classes cost the demo 40k page faults and 22 % system time per step; four
    /// classes and four steps (with the miss rule in `acquire`) cut the faults by a fifth, and
    /// the large model's peak on the demo corpus from 4.6 GB to 3.8 GB (the longest batch's
    /// activations are 1.7 GB of that).
    public static let largerClassesToReuse = 4
    public static let idleStepsKept = 4
    /// Upper bound on idle memory kept for reuse; beyond it buffers go back to the system.
    public let maxHeldBytes = 4 << 30

    /// High-water marks of the process: bytes handed out, and handed out plus idle.
    public private(set) var peakLiveBytes = 0
    public private(set) var peakTotalBytes = 0

    /// An allocation that fails even after the idle buffers went back: the process ends with
    /// an error that says what happened and what to do, as `nest-train` reports any error (no
    /// trap, no backtrace). Checkpoints are atomic, so ending here loses no saved work; under
    /// a launcher the other ranks are ended with it.
    static func outOfMemory(_ memory: String, bytes: Int) -> Never {
        let message = String(format: "error: out of %@ memory: a tensor of %.2f GiB could not be allocated. The model and batch need more memory "
                             + "than this machine has: `nest-train info --config …` estimates it; lower the batch (batch_size, batch_duration, "
                             + "max_duration) or the model's sizes\n", memory, Double(bytes) / Double(1 << 30))
        FileHandle.standardError.write(message.data(using: .utf8)!)
        _exit(1)
    }

    /// Floats actually allocated for a request of `count`: multiples of 16 up to 4096, then
    /// eight classes per octave.
    public static func sizeClass(_ count: Int) -> Int {
        let n = max(count, 1)
        if n <= 4096 { return (n + 15) & ~15 }
        let step = 1 << (Int.bitWidth - n.leadingZeroBitCount - 1 - 3)
        return (n + step - 1) / step * step
    }

    public func acquire(_ count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        let capacity = Self.sizeClass(count)
        lock.lock()
        // The request's class or, when that is empty, one of the next four (at most 54 % larger):
        // shapes that vary from step to step (batch lengths, the decoder's masked rows) then
        // reuse the buffers of a longer batch instead of faulting in fresh pages.
        var candidate = capacity
        for _ in 0...Self.largerClassesToReuse {
            if let reused = idle[candidate]?.popLast() {
                heldBytes -= candidate * 4
                noteLive(candidate * 4)
                lock.unlock()
                return (reused.pointer, candidate)
            }
            candidate = Self.sizeClass(candidate + 1)
        }
        // A miss: fresh pages are coming. Idle buffers from earlier steps that are too small for
        // this request go first, so that a batch longer than the last ones replaces their
        // buffers instead of adding to them (RSS then follows the longest batch, not the sum).
        let stale = trimming == .onFailure ? [] : takeIdle { size, buffer in size < capacity && buffer.generation < generation }
        noteLive(capacity * 4)
        lock.unlock()
        for (pointer, size) in stale { memory.deallocate(pointer, size) }
        if let fresh = memory.allocate(capacity) { return (fresh, capacity) }
        // Out of memory: what is idle goes back first, then one more try.
        lock.lock()
        let idleNow = takeIdle { _, _ in true }
        lock.unlock()
        for (pointer, size) in idleNow { memory.deallocate(pointer, size) }
        guard let fresh = memory.allocate(capacity) else { Self.outOfMemory(memory.name, bytes: capacity * 4) }
        return (fresh, capacity)
    }

    public func release(_ pointer: UnsafeMutablePointer<Float>, capacity: Int) {
        let bytes = capacity * 4
        lock.lock()
        noteLive(-bytes)
        if trimming == .onFailure || heldBytes + bytes <= maxHeldBytes {
            idle[capacity, default: []].append(Idle(pointer: pointer, generation: generation))
            heldBytes += bytes
            lock.unlock()
        } else {
            lock.unlock()
            memory.deallocate(pointer, capacity)
        }
    }

    /// Marks the end of a training step: idle buffers that nothing reused during the last
    /// `idleStepsKept` steps go back to the system.
    public func endStep() {
        lock.lock()
        let stale = trimming == .onFailure ? [] : takeIdle { _, buffer in buffer.generation <= generation - Self.idleStepsKept }
        generation += 1
        lock.unlock()
        for (pointer, capacity) in stale { memory.deallocate(pointer, capacity) }
    }

    /// Removes the idle buffers `drop(sizeClass, buffer)` selects from the free lists and
    /// returns them for freeing outside the lock. Call with the lock held.
    private func takeIdle(_ drop: (Int, Idle) -> Bool) -> [(UnsafeMutablePointer<Float>, Int)] {
        var taken: [(UnsafeMutablePointer<Float>, Int)] = []
        for (size, list) in idle {
            let kept = list.filter { !drop(size, $0) }
            guard kept.count < list.count else { continue }
            taken += list.filter { drop(size, $0) }.map { ($0.pointer, size) }
            heldBytes -= (list.count - kept.count) * size * 4
            idle[size] = kept.isEmpty ? nil : kept
        }
        return taken
    }

    public var currentLiveBytes: Int { lock.lock(); defer { lock.unlock() }; return liveBytes }
    public var statistics: DeviceMemory {
        lock.lock(); defer { lock.unlock() }
        return DeviceMemory(live: liveBytes, held: heldBytes, peakLive: peakLiveBytes, peakTotal: peakTotalBytes)
    }
    public var currentHeldBytes: Int { lock.lock(); defer { lock.unlock() }; return heldBytes }

    private func noteLive(_ delta: Int) {
        liveBytes += delta
        peakLiveBytes = max(peakLiveBytes, liveBytes)
        peakTotalBytes = max(peakTotalBytes, liveBytes + heldBytes)
    }
}

/// Where a `BufferPool` gets fresh blocks of floats and returns them: the host's pages, or a
/// device's memory (an address there is never dereferenced on the host).
public struct RawMemory: Sendable {
    public let name: String
    /// A block of `count` floats, nil when the memory is exhausted.
    public let allocate: @Sendable (_ count: Int) -> UnsafeMutablePointer<Float>?
    public let deallocate: @Sendable (_ block: UnsafeMutablePointer<Float>, _ count: Int) -> Void

    public init(name: String, allocate: @escaping @Sendable (Int) -> UnsafeMutablePointer<Float>?,
                deallocate: @escaping @Sendable (UnsafeMutablePointer<Float>, Int) -> Void) {
        self.name = name
        self.allocate = allocate
        self.deallocate = deallocate
    }

    /// Buffers from 64 KiB up are mapped directly, so that freeing one returns its pages to the
    /// system and the process's RSS follows the pool (glibc would keep some freed blocks in its
    /// heap, out of the pool's sight). Smaller ones come from malloc, 64-byte aligned.
    public static let host = RawMemory(name: "host", allocate: { capacity in
        let bytes = capacity * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        if capacity >= mappedFloats {
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if p != MAP_FAILED { raw = p }
        } else if posix_memalign(&raw, 64, bytes) != 0 {
            raw = nil
        }
        return raw?.bindMemory(to: Float.self, capacity: capacity)
    }, deallocate: { pointer, capacity in
        if capacity >= mappedFloats { munmap(pointer, capacity * MemoryLayout<Float>.stride) } else { free(pointer) }
    })

    private static let mappedFloats = 16 << 10
}
