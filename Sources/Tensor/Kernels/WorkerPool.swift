import CCPUID
import Foundation

/// The threads `Parallel` runs its parts on: one per extra core, started once, each spinning
/// briefly for the next job before it sleeps. libdispatch wakes a parked worker through the
/// kernel for every parallel region (about 2,000 per large training step, each a few hundred
/// microseconds), and the part waiting for that wake-up sets the pace of the region.
///
/// One job at a time: a caller that finds the pool busy (another thread's job, or a nested
/// region inside a part) gets `false` and runs its work another way.
final class WorkerPool: @unchecked Sendable {
    let workers: Int
    /// How long an idle worker spins before it sleeps (in pause instructions, ~0.1 ms).
    static let spins = 20_000

    /// Bumped once per job; the workers wait for it to change.
    private let generationWord = UnsafeMutablePointer<CLong>.allocate(capacity: 1)
    /// Workers still running the current job.
    private let pendingWord = UnsafeMutablePointer<CLong>.allocate(capacity: 1)
    /// 1 while a job runs.
    private let busyWord = UnsafeMutablePointer<CLong>.allocate(capacity: 1)
    private let wake = NSCondition()
    private var job: ((Int) -> Void)?
    private var parts = 0

    init(workers: Int) {
        self.workers = workers
        for p in [generationWord, pendingWord, busyWord] { p.initialize(to: 0) }
        for w in 0..<workers {
            let t = Thread { [unowned self] in self.loop(worker: w) }
            t.name = "nest-train kernels \(w + 1)"
            t.start()
        }
    }

    private func loop(worker: Int) {
        var seen: CLong = 0
        while true {
            var n = 0
            while nest_atomic_load(generationWord) == seen {
                if n < Self.spins { nest_cpu_relax(); n += 1; continue }
                wake.lock()
                while nest_atomic_load(generationWord) == seen { wake.wait() }
                wake.unlock()
            }
            seen = nest_atomic_load(generationWord)
            // Parts worker+1, worker+1+(workers+1), ...; part 0 belongs to the caller.
            var part = worker + 1
            while part < parts {
                job!(part)
                part += workers + 1
            }
            _ = nest_atomic_add(pendingWord, -1)
        }
    }

    /// Runs `body(part)` for every part in 0..<parts across the caller and the workers, or
    /// returns false at once when the pool is already running a job.
    func run(parts: Int, _ body: (Int) -> Void) -> Bool {
        guard nest_atomic_claim(busyWord) != 0 else { return false }
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            self.parts = parts
            nest_atomic_store(pendingWord, CLong(workers))
            wake.lock()
            _ = nest_atomic_add(generationWord, 1)
            wake.broadcast()
            wake.unlock()
            var part = 0
            while part < parts {
                escapable(part)
                part += workers + 1
            }
            while nest_atomic_load(pendingWord) > 0 { nest_cpu_relax() }
            job = nil
        }
        nest_atomic_store(busyWord, 0)
        return true
    }
}
