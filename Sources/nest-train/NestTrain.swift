import ArgumentParser
import Foundation
import Training

@main
struct NestTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nest-train",
        abstract: "NEST self-supervised speech pretraining (NeMo's recipe) on the CPU.",
        subcommands: [Train.self, Info.self, Export.self, Extract.self],
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
