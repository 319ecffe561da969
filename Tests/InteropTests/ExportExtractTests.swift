import Config
import Interop
import Foundation
import Formats
import HDF5
import Model
import NN
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

    /// `validate` scores weights exactly as training validates: the run's last validation row
    /// from its final checkpoint, and its step-0 row from `export --config` (the config's seeded
    /// initial model) written as a .nemo, which is how NeMo's checkpoints are scored against
    /// nest-train's (Tests/Interop/curve_vs_nemo.py).
    func testValidateReproducesTheRunsValidationFromTheCheckpointAndFromTheInitialWeights() throws {
        let dir = CLI.temporaryDirectory()
        let run = ["exp_manager.exp_dir=\(dir)", "seed=5"]
        let r = try CLI.run(["--config", "Configs/tiny.yaml"] + run)
        XCTAssertEqual(r.status, 0, r.stderr)
        let ckpt = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let metrics = try String(contentsOfFile: dir + "/NEST-tiny/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }.filter { $0["val_loss"] != nil }
        let (first, last) = (metrics.first!, metrics.last!)
        XCTAssertEqual(first["step"] as? Int, 0)
        XCTAssertGreaterThan(last["step"] as! Int, 0)

        func score(_ arguments: [String]) throws -> [String: Any] {
            let v = try CLI.run(["validate", "--config", "Configs/tiny.yaml"] + arguments + run)
            XCTAssertEqual(v.status, 0, v.stderr)
            let line = v.stdout.split(separator: "\n").last.map(String.init) ?? ""
            return try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        }
        let final = try score(["--checkpoint", ckpt])
        let initial = dir + "/initial.nemo"
        let e = try CLI.run(["export", "--config", "Configs/tiny.yaml", "--format", "nemo", "--output", initial] + run)
        XCTAssertEqual(e.status, 0, e.stderr)
        let start = try score(["--nemo", initial])
        for key in ["val_loss", "val_masked_acc", "val_prior_acc", "val_target_entropy", "val_masked_tokens"] {
            XCTAssertEqual("\(final[key]!)", "\(last[key]!)", "\(key) of the final checkpoint")
            XCTAssertEqual("\(start[key]!)", "\(first[key]!)", "\(key) of the initial weights")
        }
        XCTAssertNotEqual("\(start["val_loss"]!)", "\(final["val_loss"]!)", "training moved the weights")
        // The .nemo's model must agree with the config it is scored under.
        let mismatch = try CLI.run(["validate", "--config", "Configs/tiny.yaml", "--nemo", initial, "model.encoder.n_layers=3"] + run)
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("n_layers"), mismatch.stderr)
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

    /// The .nemo archive checked structurally by Python's own tarfile, zipfile and pickle
    /// (with stand-ins for torch's classes), against the checkpoint's values.
    func testNemoArchiveIsWhatTorchLoadAndNeMoRestoreExpect() throws {
        let ckpt = try checkpoint()
        let output = CLI.temporaryDirectory() + "/model.nemo"
        let r = try CLI.run(["export", "--checkpoint", ckpt, "--output", output, "--format", "nemo"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let script = """
        import collections, io, json, pickle, struct, sys, tarfile, zipfile
        t = tarfile.open(sys.argv[1], "r:")
        assert t.getnames() == ["model_config.yaml", "model_weights.ckpt"], t.getnames()
        config = t.extractfile("model_config.yaml").read().decode()
        z = zipfile.ZipFile(io.BytesIO(t.extractfile("model_weights.ckpt").read()))
        assert z.testzip() is None
        assert z.read("archive/version") == b"3\\n" and z.read("archive/byteorder") == b"little"
        class Storage:
            def __init__(self, dtype): self.dtype = dtype
        class U(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("collections", "OrderedDict"): return collections.OrderedDict
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return lambda storage, offset, size, stride, grad, hooks: (storage, offset, size, stride, grad)
                if module == "torch" and name in ("FloatStorage", "DoubleStorage", "LongStorage"): return name
                raise AssertionError(f"unexpected global {module}.{name}")
            def persistent_load(self, pid):
                kind, dtype, key, device, numel = pid
                assert kind == "storage" and device == "cpu"
                fmt = {"FloatStorage": "f", "DoubleStorage": "d", "LongStorage": "q"}[dtype]
                data = z.read(f"archive/data/{key}")
                assert len(data) == numel * struct.calcsize(fmt)
                return (dtype, struct.unpack(f"<{numel}{fmt}", data))
        state = U(io.BytesIO(z.read("archive/data.pkl"))).load()
        out = {k: {"dtype": v[0][0], "size": list(v[2]), "stride": list(v[3]), "head": list(v[0][1][:4])} for k, v in state.items()}
        print(json.dumps({"config": config, "keys": list(state.keys()), "tensors": out}))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, output]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let result = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let keys = result["keys"] as! [String]
        let source = try HDF5File(path: ckpt, mode: .readOnly)
        XCTAssertEqual(keys.count, try source.datasetNames(in: "/weights").count, "the complete state dict")
        XCTAssertEqual(keys.first, "preprocessor.featurizer.window", "NeMo's state-dict order")
        let tensors = result["tensors"] as! [String: [String: Any]]
        for key in keys {
            let expected = try source.read("/weights/\(key)")
            let t = tensors[key]!
            XCTAssertEqual(t["size"] as? [Int], expected.shape, key)
            XCTAssertEqual(t["dtype"] as? String, ["float32": "FloatStorage", "float64": "DoubleStorage", "int64": "LongStorage"][expected.dtype.rawValue], key)   // written out, not DType.torchStorage: the test states the format
            // Compared at float32 (JSON text → Double is not always correctly rounded in Foundation);
            // float64 codebooks at their own precision.
            let head = (t["head"] as! [NSNumber]).map(\.doubleValue)
            if expected.dtype == .float64 {
                for (a, b) in zip(head, expected.doubles.prefix(4)) { XCTAssertEqual(a, b, accuracy: 1e-15, key) }
            } else {
                XCTAssertEqual(head.map { Float($0) }, Array(expected.floats.prefix(4)), key)
            }
        }
        let config = result["config"] as! String
        XCTAssertTrue(config.contains("target: nemo.collections.asr.models.ssl_models.EncDecDenoiseMaskedTokenPredModel"))
        XCTAssertTrue(config.contains("train_ds: null"))
        XCTAssertTrue(config.contains("_target_: nemo.collections.asr.modules.ConformerEncoder"))
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

    /// One way in for weights: nest-train's own files are sealed and verified before libhdf5
    /// sees them; anything else takes the foreign path and is checked key by key.
    func testWeightsFilesAreVerifiedOrTakenAsForeign() throws {
        let ckpt = try checkpoint()
        let dir = CLI.temporaryDirectory()
        XCTAssertEqual(try CLI.run(["export", "--checkpoint", ckpt, "--output", dir + "/enc.h5"]).status, 0)
        let manifest = CLI.root.appendingPathComponent("Data/generated/tiny/dev_manifest.json").path
        func extract(_ source: [String]) throws -> CLI.Result {
            try CLI.run(["extract", "--config", "Configs/tiny.yaml"] + source + ["--input", manifest, "--output", CLI.temporaryDirectory(), "--layers", "last"])
        }
        XCTAssertEqual(try extract(["--weights", dir + "/enc.h5"]).status, 0)

        // A flipped byte in our export is caught by the seal before HDF5 parses the file.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/enc.h5"))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: dir + "/flipped.h5"))
        let flipped = try extract(["--weights", dir + "/flipped.h5"])
        XCTAssertNotEqual(flipped.status, 0)
        XCTAssertTrue(flipped.stderr.contains("flipped.h5: checksum mismatch"), flipped.stderr)

        // Not HDF5 at all: refused before libhdf5 is called.
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: dir + "/junk.h5"))
        let junk = try extract(["--weights", dir + "/junk.h5"])
        XCTAssertTrue(junk.stderr.contains("junk.h5: not a weights file nest-train reads"), junk.stderr)

        // A foreign (h5py-style, unsealed) state dict: loads when complete; a missing encoder key
        // or a wrong shape is named, and the model is left untouched.
        let (model, config) = try Exporter.loadCheckpoint(ckpt)
        func foreign(_ name: String, _ edit: (inout [NamedArray]) -> Void) throws -> String {
            var arrays = model.namedArrays { $0.hasPrefix("encoder.") }
            edit(&arrays)
            let path = dir + "/" + name
            let file = try HDF5File(path: path, mode: .create)
            for (key, array) in arrays { try file.write("/\(key)", array) }
            try file.close()
            return path
        }
        let fresh = ModelFactory.make(config).0
        try WeightsFile.loadEncoder(into: fresh, checkpoint: nil, weights: try foreign("complete.h5") { _ in })
        for (a, b) in zip(model.namedArrays(), fresh.namedArrays()) where a.name.hasPrefix("encoder.") { XCTAssertEqual(a.array, b.array, a.name) }
        let key = "encoder.layers.0.self_attn.linear_q.weight"
        let untouched = ModelFactory.make(config).0
        let before = untouched.namedArrays()
        XCTAssertThrowsError(try WeightsFile.loadEncoder(into: untouched, checkpoint: nil, weights: try foreign("missing.h5") { $0.removeAll { $0.name == key } })) {
            XCTAssertTrue("\($0)".contains("foreign HDF5 file") && "\($0)".contains("missing \(key)"), "\($0)")
        }
        XCTAssertThrowsError(try WeightsFile.loadEncoder(into: untouched, checkpoint: nil, weights: try foreign("shape.h5") { arrays in
            let i = arrays.firstIndex { $0.name == key }!
            arrays[i].array = ArrayData([Float](repeating: 0, count: 6), shape: [2, 3])
        })) { XCTAssertTrue("\($0)".contains("\(key) has shape [2, 3], the model expects [32, 32]"), "\($0)") }
        XCTAssertEqual(untouched.namedArrays().map(\.array), before.map(\.array), "a refused file must not change the model")
    }
}

import Audio
import _TestSupport