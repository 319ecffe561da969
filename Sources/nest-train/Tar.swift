import DataLoading
import ArgumentParser
import Foundation
import Training

struct Tar: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write NeMo-compatible tar shards (audio_N.tar) and tarred_audio_manifest.json from a manifest, as NeMo's convert_to_tarred_audio_dataset.py does.")

    @Option(help: "A NeMo manifest (JSON lines).") var manifest: String
    @Option(help: "Output folder.") var output: String
    @Option(help: "Number of shards (entries beyond an equal split are dropped, as NeMo does).") var shards: Int
    @Option(help: "Shards written at once.") var workers = 1
    @Option(help: "Seed of the shuffle before splitting (NeMo's --shuffle_seed).") var seed: UInt64 = 1

    func run() throws {
        try reportingErrors {
            let s = try TarredDatasetWriter.write(manifest: manifest, output: output, shards: shards, workers: workers, seed: seed)
            log("\(s.entries) entries in \(s.shards) shards in \(output)\(s.dropped > 0 ? "; \(s.dropped) entries beyond an equal split dropped" : "")")
            log("train with: model.train_ds.is_tarred=true model.train_ds.manifest_filepath=\(output)/tarred_audio_manifest.json "
                + "model.train_ds.tarred_audio_filepaths=\(output)/audio__OP_0..\(s.shards - 1)_CL_.tar")
        }
    }
}
