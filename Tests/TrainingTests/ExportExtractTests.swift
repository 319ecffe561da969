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
}

import Audio
