import Foundation
import HDF5
import XCTest
import _TestSupport

/// The streaming FastConformer and the Transformer encoder train end to end from NeMo's own
/// (bare) model configs with only data given as overrides, resume bit-identically, and train
/// on 2 ranks as on one process with the global batch.
final class RecipeVariantTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func arguments(_ name: String, _ dir: String, batch: Int, steps: Int) -> [String] {
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/train_manifest.json").path
        return ["--config", Fixtures.directory.appendingPathComponent("\(name)/\(name).config.yaml").path,
                "++train_ds.manifest_filepath=\(manifest)", "++train_ds.batch_size=\(batch)", "++train_ds.drop_last=false",
                "++trainer.max_steps=\(steps)", "++trainer.log_every_n_steps=1", "++exp_manager.exp_dir=\(dir)", "--threads", "1"]
    }

    func rows(_ dir: String) throws -> [[String: Any]] {
        try CLI.trainingRows(dir + "/NEST").compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The streaming recipe with `conv_norm_type: group_norm4` trains, and its .nemo carries the
    /// norm to a model that reads the same weights back.
    func testGroupNormVariantTrainsAndRoundTripsThroughNemo() throws {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(arguments("nemo-streaming", dir, batch: 4, steps: 3) + ["model.encoder.conv_norm_type=group_norm4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let losses = try rows(dir).map { $0["loss"] as! Double }
        XCTAssertEqual(losses.count, 3)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        let ckpt = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let nemo = dir + "/model.nemo"
        XCTAssertEqual(try CLI.run(["export", "--checkpoint", ckpt, "--output", nemo, "--format", "nemo"]).status, 0)
        let back = dir + "/back.h5"
        let e = try CLI.run(["export", "--nemo", nemo, "--output", back, "--include", "batch_norm"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let original = try HDF5File(path: ckpt, mode: .readOnly), roundTrip = try HDF5File(path: back, mode: .readOnly)
        let keys = try roundTrip.datasetNames(in: "/weights")
        XCTAssertEqual(Set(keys), ["encoder.layers.0.conv.batch_norm.weight", "encoder.layers.0.conv.batch_norm.bias",
                                   "encoder.layers.1.conv.batch_norm.weight", "encoder.layers.1.conv.batch_norm.bias"])
        for k in keys { XCTAssertEqual(try roundTrip.read("/weights/\(k)"), try original.read("/weights/\(k)"), k) }
    }

    func testStreamingAndTransformerTrainResumeAndRunDataParallel() throws {
        for name in ["nemo-streaming", "nemo-transformer"] {
            let full = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory(), two = CLI.temporaryDirectory()
            let r = try CLI.run(arguments(name, full, batch: 4, steps: 6))
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            XCTAssertEqual(try CLI.run(arguments(name, stopped, batch: 4, steps: 2)).status, 0, name)
            let resumed = try CLI.run(arguments(name, stopped, batch: 4, steps: 6))
            XCTAssertEqual(resumed.status, 0, "\(name): \(resumed.stderr)")
            XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST"), try CLI.trainingRows(full + "/NEST"), "\(name): resume is bit-identical")
            let losses = try rows(full).map { $0["loss"] as! Double }
            XCTAssertEqual(losses.count, 6, name)
            XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(name): \(losses)")
            let r2 = try CLI.mpirun(ranks: 2, arguments(name, two, batch: 2, steps: 6))
            XCTAssertEqual(r2.status, 0, "\(name): \(r2.stderr)")
            for (a, b) in zip(try rows(full), try rows(two)) {
                XCTAssertEqual(a["masked_tokens"] as? Int, b["masked_tokens"] as? Int, name)
                XCTAssertEqual(a["loss"] as! Double, b["loss"] as! Double, accuracy: 1e-5 * abs(a["loss"] as! Double), "\(name) step \(a["step"]!): 2 × 2 against 1 × 4")
            }
        }
    }

    /// `mask_position: post_conv` trains, resumes bit-identically, trains on 2 ranks as on one
    /// process, never moves the subsampling (NeMo gives it no gradient), and goes into a .nemo
    /// and back with NeMo's aliased keys.
    func testPostConvMaskingTrainsResumesAndKeepsTheSubsampling() throws {
        let postConv = ["++mask_position=post_conv", "quantizer.combine_time_steps=1", "masking.mask_prob=0.05"]
        let full = CLI.temporaryDirectory(), stopped = CLI.temporaryDirectory(), two = CLI.temporaryDirectory()
        let r = try CLI.run(arguments("nemo-tiny", full, batch: 4, steps: 6) + postConv)
        XCTAssertEqual(r.status, 0, r.stderr)
        let r1 = try CLI.run(arguments("nemo-tiny", stopped, batch: 4, steps: 2) + postConv)
        XCTAssertEqual(r1.status, 0, r1.stderr)
        let earlyPath = full + "/step-2.h5"
        try FileManager.default.copyItem(atPath: r1.stdout.trimmingCharacters(in: .whitespacesAndNewlines), toPath: earlyPath)
        XCTAssertEqual(try CLI.run(arguments("nemo-tiny", stopped, batch: 4, steps: 6) + postConv).status, 0)
        XCTAssertEqual(try CLI.trainingRows(stopped + "/NEST"), try CLI.trainingRows(full + "/NEST"), "resume is bit-identical")
        let losses = try rows(full).map { $0["loss"] as! Double }
        XCTAssertEqual(losses.count, 6)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        XCTAssertTrue(try rows(full).allSatisfy { ($0["masked_tokens"] as? Int ?? 0) > 0 })
        let r2 = try CLI.mpirun(ranks: 2, arguments("nemo-tiny", two, batch: 2, steps: 6) + postConv)
        XCTAssertEqual(r2.status, 0, r2.stderr)
        for (a, b) in zip(try rows(full), try rows(two)) {
            XCTAssertEqual(a["loss"] as! Double, b["loss"] as! Double, accuracy: 1e-5 * abs(a["loss"] as! Double), "step \(a["step"]!): 2 × 2 against 1 × 4")
        }
        let last = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let early = try HDF5File(path: earlyPath, mode: .readOnly), late = try HDF5File(path: last, mode: .readOnly)
        let ranksCheckpoint = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: two + "/NEST/checkpoints").filter { $0.hasSuffix(".h5") }.max())
        let ranks = try HDF5File(path: two + "/NEST/checkpoints/" + ranksCheckpoint, mode: .readOnly)
        for key in ["encoder.pre_encode.pre_encode.conv.0.weight", "pre_encoder.pre_encode.out.weight"] {
            XCTAssertEqual(try early.read("/weights/\(key)"), try late.read("/weights/\(key)"), "\(key) is not trained")
            XCTAssertEqual(try early.read("/weights/\(key)"), try ranks.read("/weights/\(key)"), "\(key) is not trained on 2 ranks")
        }
        XCTAssertNotEqual(try early.read("/weights/decoder.decoder_layers.0.weight"), try late.read("/weights/decoder.decoder_layers.0.weight"))
        let nemo = full + "/model.nemo", back = full + "/back.h5"
        XCTAssertEqual(try CLI.run(["export", "--checkpoint", last, "--output", nemo, "--format", "nemo"]).status, 0)
        let e = try CLI.run(["export", "--nemo", nemo, "--output", back])
        XCTAssertEqual(e.status, 0, e.stderr)
        let roundTrip = try HDF5File(path: back, mode: .readOnly)
        let keys = try roundTrip.datasetNames(in: "/weights")
        XCTAssertTrue(keys.contains("pre_encoder.masking.mask_embedding"))
        for k in keys { XCTAssertEqual(try roundTrip.read("/weights/\(k)"), try late.read("/weights/\(k)"), k) }
    }
}
