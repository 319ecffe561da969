import CMPI
import Formats
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
    private let world: MPI_Comm?
    private let gradientComm: MPI_Comm?

    public var isDistributed: Bool { world != nil }
    public var isLeader: Bool { rank == 0 }

    /// One process, no MPI.
    public static let single = ProcessGroup()

    private init() {
        rank = 0
        size = 1
        world = nil
        gradientComm = nil
    }

    private init(world: MPI_Comm, gradients: MPI_Comm, rank: Int, size: Int) {
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
        var provided: Int32 = 0
        guard MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided) == MPI_SUCCESS else {
            throw NestError("MPI_Init_thread failed")
        }
        guard provided >= cmpi_thread_funneled() else {
            throw NestError("this MPI library does not support MPI_THREAD_FUNNELED (provided level \(provided))")
        }
        let world: MPI_Comm = cmpi_comm_world()
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        let gradients: MPI_Comm = cmpi_comm_dup(world)
        return ProcessGroup(world: world, gradients: gradients, rank: Int(rank), size: Int(size))
    }

    /// The MPI library's own name and version (first line), e.g. "Open MPI v4.1.4, …".
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING))
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let first = text.split(separator: "\n").first.map { $0.split(separator: ",").prefix(2).joined(separator: ",") } ?? text
        return first.replacingOccurrences(of: "\t", with: " ")
    }

    /// Ends MPI cleanly (a rank that exits without it makes mpirun report a failure).
    public func finalize() {
        guard world != nil else { return }
        MPI_Finalize()
    }

    /// Ends every rank of the job: one rank's fatal error must not leave the others waiting in
    /// a collective forever.
    public func abort(code: Int32) -> Never {
        if let world { MPI_Abort(world, code) }
        exit(code)
    }

    // MARK: Blocking collectives on `world`

    /// Element-wise sum over the ranks, in place; the result is identical on every rank.
    public func sum(_ values: UnsafeMutableBufferPointer<Double>) {
        guard let world, values.count > 0 else { return }
        MPI_Allreduce(cmpi_in_place(), values.baseAddress, Int32(values.count), cmpi_double(), cmpi_sum(), world)
    }

    public func sum(_ values: [Double]) -> [Double] {
        var v = values
        v.withUnsafeMutableBufferPointer { sum($0) }
        return v
    }

    public func sum(_ values: [Int64]) -> [Int64] { reduce(values, cmpi_sum()) }
    public func max(_ values: [Int64]) -> [Int64] { reduce(values, cmpi_max()) }
    public func min(_ values: [Int64]) -> [Int64] { reduce(values, cmpi_min()) }

    private func reduce(_ values: [Int64], _ op: MPI_Op) -> [Int64] {
        guard let world, !values.isEmpty else { return values }
        var v = values
        v.withUnsafeMutableBufferPointer { _ = MPI_Allreduce(cmpi_in_place(), $0.baseAddress, Int32($0.count), cmpi_int64(), op, world) }
        return v
    }

    /// Rank `root`'s bytes at `pointer` copied to every rank (in pieces below MPI's Int32 counts).
    public func broadcast(_ pointer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0) {
        guard let world else { return }
        let piece = 1 << 30
        var offset = 0
        while offset < bytes {
            let n = Swift.min(piece, bytes - offset)
            MPI_Bcast(pointer + offset, Int32(n), cmpi_byte(), Int32(root), world)
            offset += n
        }
    }

    /// Waits until every rank arrives, sleeping instead of spinning: the ranks waiting for
    /// rank 0 to validate or write a checkpoint leave it the cores.
    public func barrier() {
        guard let world else { return }
        var request = cmpi_request_null()
        MPI_Ibarrier(world, &request)
        var done: Int32 = 0
        while true {
            MPI_Test(&request, &done, cmpi_status_ignore())
            if done != 0 { return }
            usleep(500)
        }
    }

    // MARK: Non-blocking gradient sums on `gradients`

    /// Starts an in-place float sum over the ranks; every rank must start the same sums in
    /// the same order. Open MPI makes no progress in the background: call `progress` often.
    public func startSum(_ values: UnsafeMutablePointer<Float>, count: Int) -> PendingSum {
        let pending = PendingSum()
        guard let gradientComm, count > 0 else { return pending }
        precondition(count <= Int(Int32.max), "a gradient bucket holds at most 2³¹ floats")
        MPI_Iallreduce(cmpi_in_place(), values, Int32(count), cmpi_float(), cmpi_sum(), gradientComm, &pending.request)
        return pending
    }
}

/// A sum started by `ProcessGroup.startSum`.
public final class PendingSum {
    var request = cmpi_request_null()

    /// Drives the communication; true when the sum is complete.
    @discardableResult
    public func test() -> Bool {
        var done: Int32 = 0
        MPI_Test(&request, &done, cmpi_status_ignore())
        return done != 0
    }

    public func wait() { MPI_Wait(&request, cmpi_status_ignore()) }
}
