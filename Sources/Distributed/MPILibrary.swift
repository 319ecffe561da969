import Basics
import CMPI
import Foundation

/// The Open MPI library (`libmpi.so.40`) of the launcher that started this process, loaded at
/// run time: a single process never loads MPI, and a bundle carries none (Open MPI's library
/// must be the one its `mpirun` belongs to, so the machine's own is the right one).
enum MPILibrary {
    static let soname = "libmpi.so.40"

    /// Loaded once, on first use under a launcher.
    static let shared: Result<nest_mpi, NestError> = Result { try load() }.mapError { $0 as? NestError ?? NestError("\($0)") }

    /// Where to look, in order: `NEST_TRAIN_MPI_LIB` (a file), `OPAL_PREFIX/lib` (an Open MPI
    /// installed away from its build prefix), the `lib` folder beside the `mpirun` on the PATH,
    /// then the loader's own search (Debian's `libmpi.so.40` is on it).
    static func candidates(environment env: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var paths = [env["NEST_TRAIN_MPI_LIB"]].compactMap { $0 }
        if let prefix = env["OPAL_PREFIX"] { paths.append("\(prefix)/lib/\(soname)") }
        for dir in (env["PATH"] ?? "").split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/mpirun") {
            let launcher = URL(fileURLWithPath: "\(dir)/mpirun").resolvingSymlinksInPath()
            let prefix = launcher.deletingLastPathComponent().deletingLastPathComponent().path
            paths += ["\(prefix)/lib/\(soname)", "\(prefix)/lib64/\(soname)"]
            break
        }
        return paths.filter { FileManager.default.fileExists(atPath: $0) } + [soname]
    }

    private static func load() throws -> nest_mpi {
        var table = nest_mpi()
        var tried: [String] = []
        for path in candidates() {
            var error = [CChar](repeating: 0, count: 512)
            if nest_mpi_load(path, &table, &error, error.count) == 0 { return table }
            tried.append("\(path): \(String(cString: error))")
        }
        let env = ProcessInfo.processInfo.environment
        let mpichFamily = env["OMPI_COMM_WORLD_SIZE"] == nil && env["PMIX_RANK"] == nil
        throw NestError("a launcher started this process, but Open MPI's library (\(soname)) could not be loaded: \(tried.joined(separator: "; ")). "
            + "nest-train speaks Open MPI's ABI: start it with Open MPI's mpirun (or srun --mpi=pmix on a Slurm built for Open MPI), "
            + "or set NEST_TRAIN_MPI_LIB to the libmpi.so.40 of the Open MPI that launches it"
            + (mpichFamily ? ". This launcher looks like an MPICH-family one (PMI_SIZE without Open MPI's variables): MPICH, Intel MPI and MVAPICH are not supported" : ""))
    }
}
