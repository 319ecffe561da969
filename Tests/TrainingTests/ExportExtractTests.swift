import Foundation
import HDF5
import Model
import Tensor
import Training
import XCTest

final class ExportExtractTests: XCTestCase {
    override func setUpWithError() throws { try CLI.ensureTinyCorpus() }

    func checkpoint() throws -> String {
        let dir = CLI.temporaryDirectory()
        let r = try CLI.run(["--config", "Configs/tiny.yaml", "exp_manager.exp_dir=\(dir)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testExportH5AndSafetensorsHoldTheEncoderUnderNeMoKeys() throws {
        let ckpt = try checkpoint()
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["export", "--checkpoint", ckpt, "--output", dir + "/enc.h5"]).status, 0)
        XCTAssertEqual(try CLI.run(["export", "--checkpoint", ckpt, "--output", dir + "/enc.safetensors", "--format", "safetensors"]).status, 0)
        let source = try HDF5File(path: ckpt, mode: .readOnly)
        let exported = try HDF5File(path: dir + "/enc.h5", mode: .readOnly)
        let keys = try exported.datasetNames(in: "/weights")
        XCTAssertEqual(Set(keys), Set(try source.datasetNames(in: "/weights").filter { $0.contains("encoder") }))
        for k in keys { XCTAssertEqual(try exported.read("/weights/\(k)"), try source.read("/weights/\(k)"), k) }

        // safetensors: header length, JSON header, then data at the stated offsets.
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/enc.safetensors"))
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        XCTAssertEqual(Set(header.keys.filter { $0 != "__metadata__" }), Set(keys))
        let key = "encoder.layers.1.self_attn.linear_q.weight"
        let info = header[key] as! [String: Any]
        XCTAssertEqual(info["dtype"] as? String, "F32")
        let offsets = info["data_offsets"] as! [Int]
        let floats = data.subdata(in: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1])).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(floats, try source.read("/weights/\(key)").floats)
        // The batch-norm counter keeps its int64 dtype.
        XCTAssertEqual((header["encoder.layers.0.conv.batch_norm.num_batches_tracked"] as! [String: Any])["dtype"] as? String, "I64")
    }

    func testExtractMatchesTheInProcessForward() throws {
        let ckpt = try checkpoint()
        let out = CLI.temporaryDirectory()
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/dev_manifest.json").path
        let r = try CLI.run(["extract", "--config", "Configs/tiny.yaml", "--checkpoint", ckpt, "--input", manifest, "--output", out,
                             "--layers", "0,1", "--batch-size", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try String(contentsOfFile: out + "/features.json", encoding: .utf8).split(separator: "\n")
        let audioPaths = try Audio.Manifest(paths: [manifest]).entries.map(\.audioPath)
        XCTAssertEqual(rows.count, audioPaths.count)

        // In-process: one utterance at a time (no batch padding), eval mode.
        let (model, config) = try Exporter.loadCheckpoint(ckpt)
        let (_, frontEnd) = ModelFactory.make(config)
        let extractor = FeatureExtractor(model: model, frontEnd: frontEnd, sampleRate: 16000)
        for (row, path) in zip(rows, audioPaths) {
            let obj = try JSONSerialization.jsonObject(with: Data(row.utf8)) as! [String: Any]
            XCTAssertEqual(obj["audio_filepath"] as? String, path)
            let npy = try Data(contentsOf: URL(fileURLWithPath: obj["feature_path"] as! String))
            let headerLength = Int(npy[8]) | Int(npy[9]) << 8
            let header = String(decoding: npy[10..<(10 + headerLength)], as: UTF8.self)
            let values = npy.subdata(in: (10 + headerLength)..<npy.count).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let expected = try extractor.features([path], layers: [0, 1])[0]
            XCTAssertTrue(header.contains("'shape': (2, 32, \(expected.count / 64))"), header)
            XCTAssertEqual(values.count, expected.count)
            // Batched with padding vs alone: BatchNorm and masks make them equal up to rounding.
            let worst = zip(values, expected).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-4, path)
        }
    }
}

import Audio
