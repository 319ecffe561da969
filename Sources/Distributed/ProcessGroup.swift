import Basics
import CMPI
import Foundation

/// The processes that train one model together: one process without a launcher, or the ranks
/// an MPI launcher (`mpirun`, `srun --mpi=pmix`) started. Every collective is a no-op for one
/// process, so the training code has a single path; MPI is initialised only under a launcher
/// (a singleton `MPI_Init` forks Open MPI's runtime and costs 0.4 s for nothing).
///
/// MPI is called from the main thread only (`MPI_THREAD_FUNNELED`): the data thread and the
/// kernel workers never communicate. Two communicators keep independent traffic apart: `world`
/// carries the blocking collectives every rank issues in program order (BatchNorm statistics,
/// metrics, broadcasts), `gradients` the non-blocking gradient sums, whose start order may
/// interleave differently with the others on different ranks.
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let world: nest_MPI_Comm?
    private let gradientComm: nest_MPI_Comm?
    /// The loaded MPI library (`MPILibrary`); nil for one process.
    private let mpi: nest_mpi?

    public var isDistributed: Bool { world != nil }
    public var isLeader: Bool { rank == 0 }

    /// One process, no MPI.
    public static let single = ProcessGroup()

    private init() {
        rank = 0
        size = 1
        world = nil
        gradientComm = nil
        mpi = nil
    }

    private init(mpi: nest_mpi, world: nest_MPI_Comm, gradients: nest_MPI_Comm, rank: Int, size: Int) {
        self.mpi = mpi
        self.world = world
        self.gradientComm = gradients
        self.rank = rank
        self.size = size
    }

    /// Whether a launcher started this process (Open MPI's mpirun, PMIx as under srun, PMI-1/2).
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// The group this process belongs to: MPI's world under a launcher, else `single`.
    public static func fromLauncher() throws -> ProcessGroup {
        guard launchedByMPI else { return .single }
        let mpi = try MPILibrary.shared.get()
        var provided: Int32 = 0
        guard mpi.Init_thread(nil, nil, Int32(NEST_MPI_THREAD_FUNNELED), &provided) == Int32(NEST_MPI_SUCCESS) else {
            throw NestError("MPI_Init_thread failed")
        }
        guard provided >= Int32(NEST_MPI_THREAD_FUNNELED) else {
            throw NestError("this MPI library does not support MPI_THREAD_FUNNELED (provided level \(provided))")
        }
        let world = mpi.comm_world!
        var rank: Int32 = 0, size: Int32 = 0
        _ = mpi.Comm_rank(world, &rank)
        _ = mpi.Comm_size(world, &size)
        var gradients: nest_MPI_Comm?
        guard mpi.Comm_dup(world, &gradients) == Int32(NEST_MPI_SUCCESS), let gradients else { throw NestError("MPI_Comm_dup failed") }
        return ProcessGroup(mpi: mpi, world: world, gradients: gradients, rank: Int(rank), size: Int(size))
    }

    /// The MPI library's own name and version (first line), e.g. "Open MPI v4.1.4, …", and
    /// the file it was loaded from.
    public var libraryVersion: String {
        guard let mpi else { return "no MPI (one process)" }
        var buffer = [CChar](repeating: 0, count: Int(NEST_MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        _ = mpi.Get_library_version(&buffer, &length)
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let first = text.split(separator: "\n").first.map { $0.split(separator: ",").prefix(2).joined(separator: ",") } ?? text
        return first.replacingOccurrences(of: "\t", with: " ")
    }

    /// Ends MPI cleanly (a rank that exits without it makes mpirun report a failure).
    public func finalize() {
        _ = mpi?.Finalize()
    }

    /// Ends every rank of the job: one rank's fatal error must not leave the others waiting in
    /// a collective forever.
    public func abort(code: Int32) -> Never {
        if let mpi, let world { _ = mpi.Abort(world, code) }
        exit(code)
    }

    // MARK: Blocking collectives on `world`

    /// Element-wise sum over the ranks, in place; the result is identical on every rank.
    public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
        guard let mpi, let world, values.count > 0 else { return }
        _ = mpi.Allreduce(nest_mpi_in_place(), values.baseAddress, Int32(values.count), mpi.float64, mpi.sum, world)
    }

    public func sum(_ values: [Double]) -> [Double] {
        var v = values
        v.withUnsafeMutableBufferPointer { sum($0) }
        return v
    }

    public func sum(_ values: [Int64]) -> [Int64] { reduce(values, \.sum) }
    public func max(_ values: [Int64]) -> [Int64] { reduce(values, \.max) }
    public func min(_ values: [Int64]) -> [Int64] { reduce(values, \.min) }

    private func reduce(_ values: [Int64], _ op: KeyPath<nest_mpi, nest_MPI_Op?>) -> [Int64] {
        guard let mpi, let world, !values.isEmpty else { return values }
        var v = values
        v.withUnsafeMutableBufferPointer { _ = mpi.Allreduce(nest_mpi_in_place(), $0.baseAddress, Int32($0.count), mpi.int64, mpi[keyPath: op], world) }
        return v
    }

    /// Rank `root`'s bytes at `pointer` copied to every rank (in pieces below MPI's Int32 counts).
    public func broadcast(_ pointer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0) {
        guard let mpi, let world else { return }
        let piece = 1 << 30
        var offset = 0
        while offset < bytes {
            let n = Swift.min(piece, bytes - offset)
            _ = mpi.Bcast(pointer + offset, Int32(n), mpi.byte, Int32(root), world)
            offset += n
        }
    }

    /// Waits until every rank arrives, sleeping instead of spinning: the ranks waiting for
    /// rank 0 to validate or write a checkpoint leave it the cores.
    public func barrier() {
        guard let mpi, let world else { return }
        var request = mpi.request_null
        _ = mpi.Ibarrier(world, &request)
        var done: Int32 = 0
        while true {
            _ = mpi.Test(&request, &done, nest_mpi_status_ignore())
            if done != 0 { return }
            usleep(500)
        }
    }

    // MARK: Non-blocking gradient sums on `gradients`

    /// Starts an in-place float sum over the ranks; every rank must start the same sums in
    /// the same order. Open MPI makes no progress in the background: call `progress` often.
    public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int) -> PendingSum {
        guard let mpi, let gradientComm, count > 0 else { return PendingSum(mpi: nil) }
        precondition(count <= Int(Int32.max), "a gradient bucket holds at most 2³¹ floats")
        let pending = PendingSum(mpi: mpi)
        _ = mpi.Iallreduce(nest_mpi_in_place(), values, Int32(count), mpi.float32, mpi.sum, gradientComm, &pending.request)
        return pending
    }
}

/// A sum started by `ProcessGroup.startSum` (complete from the start without MPI).
public final class PendingSum {
    private let mpi: nest_mpi?
    var request: nest_MPI_Request?

    init(mpi: nest_mpi?) {
        self.mpi = mpi
        request = mpi?.request_null
    }

    /// Drives the communication; true when the sum is complete.
    @discardableResult
    public func test() -> Bool {
        guard let mpi else { return true }
        var done: Int32 = 0
        _ = mpi.Test(&request, &done, nest_mpi_status_ignore())
        return done != 0
    }

    public func wait() { _ = mpi?.Wait(&request, nest_mpi_status_ignore()) }
}
