import Basics
import Formats
import DataLoading
import Audio
import Config
import Foundation
import Model
import Tensor
import Training
import XCTest
import _TestSupport

/// NeMo's tarred audio datasets: brace expansion, shard strategies, training from shards with
/// exact resume, every kind of bad input, damaged tars.
final class TarredDatasetTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    let tinyManifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path

    /// Shards of the tiny corpus (7 utterances → 3 shards of 2, one dropped as NeMo drops it).
    func shards() throws -> String {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["tar", "--manifest", tinyManifest, "--output", dir, "--shards", "3", "--workers", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("6 entries in 3 shards") && r.stderr.contains("1 entries beyond an equal split dropped"), r.stderr)
        return dir
    }

    func tarredOverrides(_ dir: String) -> [String] {
        ["model.train_ds.manifest_filepath=\(dir)/tarred_audio_manifest.json", "++model.train_ds.is_tarred=true",
         "++model.train_ds.tarred_audio_filepaths=\(dir)/audio__OP_0..2_CL_.tar", "++model.train_ds.shuffle_n=4"]
    }

    func testBraceExpansionFollowsNeMo() {
        XCTAssertEqual(TarredShards.expand("a/audio_{0..3}.tar"), ["a/audio_0.tar", "a/audio_1.tar", "a/audio_2.tar", "a/audio_3.tar"])
        XCTAssertEqual(TarredShards.expand("audio__OP_1..2_CL_.tar"), ["audio_1.tar", "audio_2.tar"])
        XCTAssertEqual(TarredShards.expand("audio_(0..1).tar"), ["audio_0.tar", "audio_1.tar"])
        XCTAssertEqual(TarredShards.expand("audio_[0..1].tar"), ["audio_0.tar", "audio_1.tar"])
        XCTAssertEqual(TarredShards.expand("audio_<0..1>.tar"), ["audio_0.tar", "audio_1.tar"])
        XCTAssertEqual(TarredShards.expand("s_{08..10}.tar"), ["s_08.tar", "s_09.tar", "s_10.tar"], "zero padding kept")
        XCTAssertEqual(TarredShards.expand("{a,b}_{1..2}"), ["a_1", "a_2", "b_1", "b_2"])
        XCTAssertEqual(TarredShards.expand("x{a,{b,c}}y"), ["xay", "xby", "xcy"])
        XCTAssertEqual(TarredShards.expand("plain.tar"), ["plain.tar"])
        XCTAssertEqual(TarredShards.expand("{2..0}"), ["2", "1", "0"])
        XCTAssertEqual(TarredShards.expand("odd{1"), ["odd{1"], "an unbalanced brace stays literal")
    }

    func testShardStrategiesCoverEveryUtteranceAsNeMoSplitsShards() throws {
        XCTAssertEqual(try TarredShards.assign(shards: 5, strategy: .scatter, world: 2, rank: 0), [0, 1])
        XCTAssertEqual(try TarredShards.assign(shards: 5, strategy: .scatter, world: 2, rank: 1), [2, 3], "NeMo leaves the remainder shard unread")
        XCTAssertEqual(try TarredShards.assign(shards: 5, strategy: .replicate, world: 2, rank: 1), [0, 1, 2, 3, 4])
        XCTAssertThrowsError(try TarredShards.assign(shards: 1, strategy: .scatter, world: 2, rank: 0)) {
            XCTAssertTrue("\($0)".contains("1 shards for 2 ranks"), "\($0)")
        }
        // Four shards of three entries, two ranks: scatter gives disjoint halves that together
        // hold every utterance exactly once per epoch; replicate gives each rank all of them in
        // its own order.
        let entries = (0..<12).map { i in
            ManifestEntry(audioPath: "u\(i).wav", duration: 1, offset: 0, shardID: i / 3, origin: "m:\(i + 1)")
        }
        let settings = TarredShards.Settings(filepaths: ["s_{0..3}.tar"], strategy: .scatter, shuffleN: 4)
        var seen: [Int] = []
        for rank in 0..<2 {
            let t = try TarredShards(settings: settings, world: 2, rank: rank) { _ in }
            let batches = t.batches(entries: entries, batchSize: 2, shuffle: true, dropLast: false, seed: 7, epoch: 3)
            let mine = batches.flatMap { $0 }
            XCTAssertTrue(mine.allSatisfy { t.assigned.contains(entries[$0].shardID!) }, "rank \(rank) read another rank's shard")
            seen += mine
            XCTAssertEqual(t.batches(entries: entries, batchSize: 2, shuffle: true, dropLast: false, seed: 7, epoch: 3), batches, "deterministic")
        }
        XCTAssertEqual(seen.sorted(), Array(0..<12))
        var replicate = settings
        replicate.strategy = .replicate
        let orders = try (0..<2).map { rank in
            try TarredShards(settings: replicate, world: 2, rank: rank) { _ in }
                .batches(entries: entries, batchSize: 2, shuffle: true, dropLast: false, seed: 7, epoch: 0).flatMap { $0 }
        }
        XCTAssertEqual(orders[0].sorted(), Array(0..<12))
        XCTAssertEqual(orders[1].sorted(), Array(0..<12))
        XCTAssertNotEqual(orders[0], orders[1], "each rank its own order")
    }

    /// The tiny config trains from shards; killed by SIGKILL inside a checkpoint write and
    /// resumed, it ends bit-identical to the uninterrupted tarred run.
    func testTrainingFromShardsResumesBitIdenticallyAfterSIGKILL() throws {
        let dir = try shards()
        let full = CLI.temporaryDirectory()
        let reference = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(full)"] + tarredOverrides(dir))
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let run = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(run)", "trainer.max_steps=5"] + tarredOverrides(dir)).status, 0)
        let killed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(run)"] + tarredOverrides(dir), environment: ["NEST_FAILPOINT": "checkpoint-mid-write"])
        XCTAssertEqual(killed.status, 9, "expected death by SIGKILL inside the step-8 checkpoint write")
        let resumed = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(run)"] + tarredOverrides(dir))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from") && resumed.stderr.contains("step 5"), resumed.stderr)
        XCTAssertEqual(try CLI.trainingRows(run + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"))
        let a = try CLI.tensors(reference.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let b = try CLI.tensors(resumed.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        for (k, v) in a { XCTAssertEqual(v, b[k], "\(k) differs after the kill") }
    }

    /// Two ranks under mpirun, each reading its own shards (`scatter`): a SIGKILL of one rank
    /// and a rerun end bit-identical to the uninterrupted 2-rank run; `replicate` trains too;
    /// more ranks than shards under `scatter` stops the job with both counts named.
    func testShardsPerRankUnderMPI() throws {
        let dir = try shards()
        let common = ["--config", "Configs/tiny.yaml", "--threads", "1", "model.train_ds.batch_size=1"] + tarredOverrides(dir)
        let full = CLI.temporaryDirectory()
        let reference = try CLI.mpirun(ranks: 2, common + ["exp_manager.exp_dir=\(full)"])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let run = CLI.temporaryDirectory()
        let killed = try CLI.mpirun(ranks: 2, common + ["exp_manager.exp_dir=\(run)"], environment: ["NEST_FAILPOINT": "rank-1-after-step-6"])
        XCTAssertNotEqual(killed.status, 0)
        let resumed = try CLI.mpirun(ranks: 2, common + ["exp_manager.exp_dir=\(run)"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from"), resumed.stderr)
        XCTAssertEqual(try CLI.trainingRows(run + "/NEST-tiny"), try CLI.trainingRows(full + "/NEST-tiny"))
        let a = try CLI.tensors(full + "/NEST-tiny/checkpoints/step-00000008.h5"), b = try CLI.tensors(run + "/NEST-tiny/checkpoints/step-00000008.h5")
        for (k, v) in a { XCTAssertEqual(v, b[k], "\(k) differs after the kill") }

        let replicate = try CLI.mpirun(ranks: 2, common + ["exp_manager.exp_dir=\(CLI.temporaryDirectory())", "++model.train_ds.shard_strategy=replicate"])
        XCTAssertEqual(replicate.status, 0, replicate.stderr)
        let tooMany = try CLI.mpirun(ranks: 4, common + ["exp_manager.exp_dir=\(CLI.temporaryDirectory())"])
        XCTAssertNotEqual(tooMany.status, 0)
        XCTAssertTrue(tooMany.stderr.contains("3 shards for 4 ranks"), tooMany.stderr)
    }

    /// Each bad input is reported with shard and member, skipped or fatal per skip_bad_audio.
    func testBadShardsAndMembersAreReportedSkippedOrFatal() throws {
        let dir = try shards()
        let manifest = dir + "/tarred_audio_manifest.json"
        var lines = try String(contentsOfFile: manifest, encoding: .utf8).split(separator: "\n").map(String.init)
        let shard0Line = lines.first { $0.contains("\"shard_id\":0") }!
        // A member named in the manifest but absent from its shard, and an undecodable member.
        lines.append(shard0Line.replacingOccurrences(of: ".wav\"", with: "_ghost.wav\""))
        lines.append(shard0Line.replacingOccurrences(of: #""audio_filepath":"[^"]*""#, with: #""audio_filepath":"junk.wav""#, options: .regularExpression))
        try lines.joined(separator: "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        // Shard 1 missing, shard 2 truncated mid-member; shard 0 gains the undecodable member and
        // a member no manifest line names.
        try FileManager.default.removeItem(atPath: dir + "/audio_1.tar")
        let shard2 = try Data(contentsOf: URL(fileURLWithPath: dir + "/audio_2.tar"))
        try shard2.prefix(shard2.count / 2).write(to: URL(fileURLWithPath: dir + "/audio_2.tar"))
        var shard0 = try Data(contentsOf: URL(fileURLWithPath: dir + "/audio_0.tar"))
        shard0 = shard0.prefix(shard0.count - 1024) + TarWriter.member("junk.wav", Data(repeating: 7, count: 300))
            + TarWriter.member("stray.wav", Data(repeating: 1, count: 100)) + TarWriter.end
        try shard0.write(to: URL(fileURLWithPath: dir + "/audio_0.tar"))

        func loader(skip: Bool, reports: @escaping (String) -> Void = { _ in }) throws -> BatchLoader {
            let yaml = try String(contentsOfFile: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, encoding: .utf8)
            let doc = try ConfigDocument(text: yaml, file: "tiny.yaml", overrides: tarredOverrides(dir) + ["++model.train_ds.skip_bad_audio=\(skip)", "model.train_ds.min_duration=0.1"])
            let config = try RunConfig(doc)
            return try BatchLoader(settings: config.train, frontEnd: FilterbankFeatures(settings: config.frontEnd),
                                   masks: BlockMaskSampler(model: config.model), sampleRate: 16000, seed: 1, training: true, report: reports)
        }
        var reports: [String] = []
        let skipping = try loader(skip: true) { reports.append($0) }
        XCTAssertTrue(reports.contains { $0.contains("audio_0.tar: member stray has no line in the tarred manifest") }, "\(reports)")
        var skipped: [String] = []
        for index in 0..<skipping.batchesPerEpoch { skipped += try skipping.batch(at: DataPosition(epoch: 0, index: index)).skipped }
        let all = skipped.joined(separator: "\n")
        XCTAssertTrue(all.contains("audio_1.tar: no such file"), all)
        // The truncated shard is named, by the tar reader or by the bounds check of its last member.
        XCTAssertTrue(all.contains("audio_2.tar") && (all.contains("truncated tar") || all.contains("needs bytes")), all)
        XCTAssertTrue(all.contains("audio_0.tar: no member") && all.contains("_ghost.wav"), all)
        XCTAssertTrue(all.contains("audio_0.tar:junk.wav: not a readable audio file"), all)
        XCTAssertThrowsError(try loader(skip: false)) { XCTAssertTrue("\($0)".contains("member stray has no line"), "\($0)") }
    }

    /// A manifest line whose shard_id names no shard is an error naming the line, not an
    /// utterance silently never trained.
    func testAShardIdBeyondTheShardsIsNamed() throws {
        let dir = try shards()
        let manifest = dir + "/tarred_audio_manifest.json"
        var lines = try String(contentsOfFile: manifest, encoding: .utf8).split(separator: "\n").map(String.init)
        lines.append(lines[0].replacingOccurrences(of: #""shard_id":\d+"#, with: #""shard_id":3"#, options: .regularExpression))
        try lines.joined(separator: "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
        let yaml = try String(contentsOfFile: CLI.root.appendingPathComponent("Configs/tiny.yaml").path, encoding: .utf8)
        let config = try RunConfig(try ConfigDocument(text: yaml, file: "tiny.yaml", overrides: tarredOverrides(dir)))
        XCTAssertThrowsError(try BatchLoader(settings: config.train, frontEnd: FilterbankFeatures(settings: config.frontEnd),
                                             masks: BlockMaskSampler(model: config.model), sampleRate: 16000, seed: 1, training: true)) { error in
            XCTAssertTrue("\(error)".contains("\(manifest):\(lines.count): shard_id 3 is not among the 3 shards"), "\(error)")
        }
    }

    /// Hundreds of damaged shards: each member is decoded or refused, never a crash or hang.
    func testFuzzedShardsNeverCrash() throws {
        let dir = try shards()
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/audio_0.tar")))
        let rng = RandomGenerator(seed: 5)
        var decoded = 0, refused = 0
        for _ in 0..<400 {
            var b = original
            switch rng.int(in: 0...2) {
            case 0: b = Array(b.prefix(rng.int(in: 0...(b.count - 1))))
            case 1: for _ in 0..<rng.int(in: 1...16) { b[rng.int(in: 0...(b.count - 1))] ^= UInt8(1 << rng.int(in: 0...7)) }
            default: let i = rng.int(in: 0...(b.count - 12)); for k in 0..<12 { b[i + k] = UInt8(rng.int(in: 0...255)) }
            }
            do {
                let tar = try TarReader(Bytes(Data(b), origin: "fuzz.tar"))
                for (name, body) in tar.members {
                    _ = try body.withUnsafeBytes { try AudioFile.read(.memory($0, name: name)) }
                    decoded += 1
                }
            } catch { refused += 1 }
        }
        print("tar fuzz: 400 damaged shards, \(refused) refused, \(decoded) members decoded")
        XCTAssertGreaterThan(refused, 100)
    }
}
