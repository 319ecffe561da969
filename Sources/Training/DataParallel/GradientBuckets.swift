import Distributed
import Foundation
import Tensor

/// Sums the gradients of every rank while backward still runs, as PyTorch's DDP reducer does:
/// parameters in reverse registration order (about the order backward completes them) are
/// grouped into buckets of about 25 MiB; a bucket whose gradients are all complete has its sum
/// started, buckets strictly in index order (every rank must start the same sums in the same
/// order); between backward rules the started sums are driven (Open MPI makes no progress on
/// its own). `finish` starts what is left (a rank with nothing
/// to backpropagate sends zeros) and waits.
///
/// Every parameter's gradient lives in a slice of its bucket's buffer (`TapeEntry.gradientHome`):
/// backward accumulates there, the sum lands there in place, and the optimiser reads it there,
/// with no copy in or back and no second copy of the gradients in memory.
final class GradientBuckets: BackwardObserver {
    private struct Bucket {
        var members: [Int] = []
        var offsets: [Int] = []
        var count = 0
        var complete = 0
        var sum: PendingSum?
        /// The bucket's values as the sum reads and writes them (see `HostStage`).
        var stage: HostStage?
    }

    private let group: ProcessGroup
    private let parameters: [Tensor]
    private var buckets: [Bucket] = []
    private let buffer: Storage
    private var bucketStart: [Int] = []
    /// Each parameter's slice of the buffer, by parameter index.
    private let slices: [Tensor]
    /// Whether this rank had a gradient for each parameter when its bucket started.
    private var reached: [Int64]
    private var bucketOfEntry: [ObjectIdentifier: Int] = [:]
    private var nextToStart = 0
    private var oldestRunning = 0
    /// Seconds spent starting, driving and waiting for sums, and of those the ones after
    /// backward ended (not hidden behind computation).
    private(set) var communicationSeconds = 0.0
    private(set) var exposedSeconds = 0.0

    static let bucketBytes = 25 << 20

    init(parameters: [Tensor], group: ProcessGroup, bucketBytes: Int = GradientBuckets.bucketBytes) {
        self.parameters = parameters
        self.group = group
        var current = Bucket(), offset = 0
        for index in parameters.indices.reversed() {
            current.members.append(index)
            current.offsets.append(current.count)
            // Each slice starts on a 64-byte line, as the pool's blocks do.
            current.count += (parameters[index].count + 15) / 16 * 16
            if current.count * 4 >= bucketBytes {
                buckets.append(current)
                current = Bucket()
            }
        }
        if !current.members.isEmpty { buckets.append(current) }
        for b in buckets {
            bucketStart.append(offset)
            offset += b.count
        }
        let buffer = Tensor(zeros: [max(offset, 1)]).storage
        var slices = [Tensor?](repeating: nil, count: parameters.count)
        for (b, bucket) in buckets.enumerated() {
            for (m, o) in zip(bucket.members, bucket.offsets) {
                let p = parameters[m]
                slices[m] = Tensor(shape: p.shape, storage: buffer.slice(offset: bucketStart[b] + o, count: p.count))
            }
        }
        self.buffer = buffer
        self.slices = slices.map { $0! }
        reached = [Int64](repeating: 0, count: parameters.count)
    }

    /// Before the backward whose gradients complete the step.
    func begin() {
        bucketOfEntry = [:]
        for (b, bucket) in buckets.enumerated() {
            for m in bucket.members {
                guard let e = parameters[m].tapeEntry else { continue }
                bucketOfEntry[ObjectIdentifier(e)] = b
                e.gradientHome = slices[m]
            }
            buckets[b].complete = 0
            buckets[b].sum = nil
            buckets[b].stage = nil
        }
        nextToStart = 0
        oldestRunning = 0
        communicationSeconds = 0
        exposedSeconds = 0
    }

    func gradientComplete(_ entry: TapeEntry) {
        guard let b = bucketOfEntry[ObjectIdentifier(entry)] else { return }
        buckets[b].complete += 1
        let t = MonotonicClock.seconds
        while nextToStart < buckets.count, buckets[nextToStart].complete == buckets[nextToStart].members.count { start(nextToStart) }
        communicationSeconds += MonotonicClock.seconds - t
    }

    func betweenRules() {
        guard oldestRunning < nextToStart else { return }
        let t = MonotonicClock.seconds
        while oldestRunning < nextToStart, buckets[oldestRunning].sum?.test() ?? true { oldestRunning += 1 }
        communicationSeconds += MonotonicClock.seconds - t
    }

    /// Starts the remaining sums and waits for all: every parameter's gradient is then the sum.
    /// A parameter no rank had a gradient for is left without one, as on one process (AdamW
    /// skips it).
    func finish() {
        let t = MonotonicClock.seconds
        while nextToStart < buckets.count { start(nextToStart) }
        for bucket in buckets {
            bucket.sum?.wait()
            bucket.stage?.finish()
        }
        for (p, anywhere) in zip(parameters, group.max(reached)) where anywhere == 0 { p.grad = nil }
        let elapsed = MonotonicClock.seconds - t
        communicationSeconds += elapsed
        exposedSeconds = elapsed
    }

    private func start(_ b: Int) {
        for m in buckets[b].members {
            // A parameter no gradient reached this step sends zeros (its slice is stale).
            let p = parameters[m], slice = slices[m]
            reached[m] = p.grad == nil ? 0 : 1
            if p.grad !== slice {
                precondition(p.grad == nil, "a gradient outside its bucket slice")
                slice.fill(0)
                p.grad = slice
            }
        }
        let stage = HostStage(Tensor(shape: [buckets[b].count], storage: buffer.slice(offset: bucketStart[b], count: buckets[b].count)))
        buckets[b].stage = stage
        buckets[b].sum = group.startSum(stage.values.baseAddress!, count: buckets[b].count)
        nextToStart += 1
    }

}
