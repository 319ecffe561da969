import ArgumentParser
import Foundation
import Training

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Redraw RUN/curves.svg from RUN/metrics.jsonl: loss, validation loss vs target entropy, accuracy vs prior, learning rate.")

    @Argument(help: "A run folder (exp_manager.exp_dir/name).") var folder: String

    func run() throws {
        try reportingErrors {
            try CurvePlot.write(run: folder)
            log("wrote \(folder)/curves.svg")
        }
    }
}
