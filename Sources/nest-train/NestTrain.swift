import Config
import ArgumentParser
import Foundation
import Tensor
import Training

@main
struct NestTrain: ParsableCommand {
    /// Runs the command, then leaves with `_exit`: Debian's OpenBLAS 0.3.21 can deadlock in its
    /// exit-time thread shutdown (`blas_thread_shutdown_` joining a worker that never wakes; seen
    /// in this project's end-to-end tests). Every file nest-train writes is closed and fsync'ed
    /// before this point, so skipping the libraries' exit handlers loses nothing.
    static func main() {
        for notice in BLASKernel.selectBest() { log("warning: \(notice)") }
        var code: Int32 = 0
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            code = exitCode(for: error).rawValue
            let message = fullMessage(for: error)
            if !message.isEmpty {
                FileHandle(fileDescriptor: code == 0 ? STDOUT_FILENO : STDERR_FILENO).write(Data((message + "\n").utf8))
            }
        }
        fflush(stdout)
        fflush(stderr)
        _exit(code)
    }

    static let configuration = CommandConfiguration(
        commandName: "nest-train",
        abstract: "NEST self-supervised speech pretraining (NeMo's recipe) on CPUs and NVIDIA GPUs, one process or many.",
        subcommands: [Train.self, Info.self, Export.self, Extract.self, Bench.self, Tar.self, Plot.self, Probe.self, Validate.self, GPUCheck.self],
        defaultSubcommand: Train.self)
}

/// Prints to stderr with a prefix; the product's log channel.
func log(_ message: String) {
    FileHandle.standardError.write(Data("[nest-train] \(message)\n".utf8))
}

/// Loads a config (NeMo layout or bare model config) with Hydra-style overrides.
func loadConfig(_ path: String, overrides: [String], requireData: Bool) throws -> RunConfig {
    let doc = try ConfigDocument(contentsOf: path, overrides: overrides)
    let config = try RunConfig(doc, requireData: requireData)
    for w in config.warnings { log("warning: \(w)") }
    return config
}
