import Config
import Foundation
import Model
import Training
import XCTest
import _TestSupport

final class ConfigTests: XCTestCase {
    let root = CLI.root.path

    func testProjectConfigsLoadWithInterpolationsResolved() throws {
        for name in ["large", "xl", "demo", "tiny"] {
            let doc = try ConfigDocument(contentsOf: "\(root)/Configs/\(name).yaml")
            let config = try RunConfig(doc, requireData: false)
            XCTAssertEqual(config.model.decoder.featIn, config.model.encoder.dModel, name)
            XCTAssertEqual(config.model.quantizer.combineTimeSteps, 8, name)
        }
        let xl = try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/xl.yaml"), requireData: false)
        XCTAssertFalse(xl.model.encoder.useBias)
        XCTAssertFalse(xl.model.encoder.xscaling)
        XCTAssertEqual(xl.schedule, .noam(scale: 5, dModel: 1024, warmupSteps: 25_000, minLR: 1e-6))
    }

    /// A key written twice in one mapping is refused, as OmegaConf (and so NeMo) refuses it,
    /// naming the key and both lines; equal keys in different mappings are fine.
    func testAKeyWrittenTwiceInOneMappingIsRefused() throws {
        XCTAssertThrowsError(try ConfigDocument(text: "name: x\nmodel:\n  lr: 1\n  d: 2\n  lr: 3\n", file: "twice.yaml")) { error in
            XCTAssertTrue("\(error)".contains("twice.yaml: model.lr is written twice in one mapping (lines 3 and 5)"), "\(error)")
        }
        XCTAssertNoThrow(try ConfigDocument(text: "a:\n  lr: 1\nb:\n  lr: 1\n", file: "apart.yaml"))
    }

    /// Numbers outside what a key can mean are named errors, never traps: a seed outside
    /// Lightning's 0…2³²−1, window sizes past any audio, intervals past any run, non-finite values.
    func testOutOfRangeValuesAreNamedErrors() throws {
        let yaml = try String(contentsOfFile: "\(root)/Configs/tiny.yaml", encoding: .utf8)
        for (override, expected) in [("seed=-1", "seed must be in 0…4294967295, got -1"),
                                     ("model.preprocessor.window_size=1e300", "model.preprocessor.window_size (1e300) must be in 0…10"),
                                     ("model.preprocessor.window_stride=-1e18", "model.preprocessor.window_stride (-1e18) must be in 0…10"),
                                     ("trainer.val_check_interval=9223372036854775807", "trainer.val_check_interval must be in"),
                                     ("model.train_ds.batch_augmentor.max_mix_rate=1e18", "model.train_ds.batch_augmentor.max_mix_rate (1e18) must be in 0…1"),
                                     ("model.train_ds.batch_augmentor.max_num_segments=9223372036854775807", "model.train_ds.batch_augmentor.max_num_segments (9223372036854775807) must be in 1…1000"),
                                     ("++model.optim.lr=inf", "model.optim.lr must be a finite number")] {
            XCTAssertThrowsError(try RunConfig(try ConfigDocument(text: yaml, file: "tiny.yaml", overrides: [override]), requireData: false), override) { error in
                XCTAssertTrue("\(error)".contains("tiny.yaml: \(expected)"), "\(override): \(error)")
            }
        }
    }

    func testBareModelConfigAsInANemoFile() throws {
        let path = Fixtures.directory.appendingPathComponent("nemo-tiny/nemo-tiny.config.yaml").path
        let config = try RunConfig(try ConfigDocument(contentsOf: path), requireData: false)
        XCTAssertEqual(config.model.encoder.dModel, 64)
        XCTAssertEqual(config.model.quantizer.numClasses, 256)
    }

    func testParameterCountsEqualNeMo() throws {
        for (name, total, encoder, entries) in [("large", 113_106_000, 108_762_112, 699), ("xl", 615_844_944, 607_306_752, 715)] {
            let config = try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/\(name).yaml"), requireData: false)
            let (model, _) = ModelFactory.make(config)
            let summary = ModelSummary(model: model, config: config.model, batch: 1, seconds: 10)
            XCTAssertEqual(summary.total, total, name)
            XCTAssertEqual(summary.encoder, encoder, name)
            XCTAssertEqual(summary.frozen, 141_392, name)
            XCTAssertEqual(summary.entries, entries, "\(name): state-dict entries (spec §9)")
        }
    }

    func testOverridesFollowHydraRulesAndNameTheKey() throws {
        let path = "\(root)/Configs/tiny.yaml"
        let doc = try ConfigDocument(contentsOf: path, overrides: ["model.optim.lr=2.0", "++trainer.new_key=3", "model.encoder.d_model=48"])
        XCTAssertEqual(try doc.double("model.optim.lr"), 2.0)
        XCTAssertEqual(try doc.int("trainer.new_key"), 3)
        XCTAssertEqual(try doc.int("model.decoder.feat_in"), 48, "interpolations see overrides")
        func message(_ overrides: [String]) -> String {
            do { _ = try RunConfig(try ConfigDocument(contentsOf: path, overrides: overrides)); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message(["model.encoder.d_modle=48"]).contains("model.encoder.d_modle"), message(["model.encoder.d_modle=48"]))
        XCTAssertTrue(message(["model.encoder.d_model=[1,2]"]).contains("model.encoder.d_model"))
        XCTAssertTrue(message(["model.encoder.n_heads=5"]).contains("model.encoder.n_heads"))
        XCTAssertTrue(message(["model.encoder.xscaling=maybe"]).contains("model.encoder.xscaling"))
        XCTAssertTrue(message(["model.masking.block_size=900", "model.train_ds.max_duration=2"]).contains("block_size"))
    }

    func testUnusedDataAndExperimentKeysAreWarnedOnce() throws {
        let yaml = try String(contentsOfFile: "\(root)/Configs/tiny.yaml", encoding: .utf8)
            .replacingOccurrences(of: "  train_ds:\n", with: "  train_ds:\n    pin_memory: true\n    num_workers: 8\n")
            .replacingOccurrences(of: "exp_manager:\n", with: "exp_manager:\n  create_wandb_logger: false\n")
        let config = try RunConfig(try ConfigDocument(text: yaml, file: "x.yaml"), requireData: false)
        for key in ["model.train_ds.pin_memory", "model.train_ds.num_workers", "exp_manager.create_wandb_logger"] {
            XCTAssertEqual(config.warnings.filter { $0.hasPrefix(key + " ") }.count, 1, key)
        }
        for name in ["tiny", "demo", "large", "xl"] {
            let clean = try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/\(name).yaml"), requireData: false)
            XCTAssertEqual(clean.warnings, [], "the project's own configs use every key and warn about nothing (\(name))")
        }
        let bf16 = try String(contentsOfFile: "\(root)/Configs/tiny.yaml", encoding: .utf8).replacingOccurrences(of: "precision: 32", with: "precision: bf16-mixed")
        XCTAssertThrowsError(try RunConfig(try ConfigDocument(text: bf16, file: "x.yaml"), requireData: false)) { error in
            XCTAssertTrue("\(error)".contains("x.yaml: trainer.precision"), "\(error)")
        }
    }

    func testMandatoryManifestIsReported() {
        XCTAssertThrowsError(try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/large.yaml"))) { error in
            XCTAssertTrue("\(error)".contains("model.train_ds.manifest_filepath must be set"), "\(error)")
        }
    }

    func testUnknownKeysInNeMosTrainerSectionAreWarnings() throws {
        // The shipped trainer section without its accelerator and devices, which each case sets.
        let yaml = try String(contentsOfFile: "\(root)/Configs/tiny.yaml", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("  devices:") && !$0.hasPrefix("  accelerator:") }.joined(separator: "\n") + "\n"
        let doc = try ConfigDocument(text: yaml.replacingOccurrences(of: "trainer:\n", with: "trainer:\n  devices: -1\n  strategy: ddp\n"), file: "x.yaml")
        let config = try RunConfig(doc, requireData: false)
        XCTAssertEqual(config.devices, .auto)
        XCTAssertTrue(config.warnings.contains { $0.contains("trainer.strategy") })
        // Lightning's accelerator and devices, read for the executable to pick the device.
        func read(_ lines: String) throws -> RunConfig {
            try RunConfig(try ConfigDocument(text: yaml.replacingOccurrences(of: "trainer:\n", with: "trainer:\n" + lines), file: "x.yaml"), requireData: false)
        }
        XCTAssertEqual(try read("  accelerator: cuda\n  devices: 4\n").accelerator, .gpu)
        XCTAssertEqual(try read("  accelerator: gpu\n  devices: 4\n").devices, .count(4))
        XCTAssertEqual(try read("  devices: [0, 3]\n").devices, .list([0, 3]))
        XCTAssertEqual(try read("  devices: '1,2'\n").devices, .list([1, 2]))
        XCTAssertEqual(try read("  devices: auto\n").accelerator, .auto, "Lightning's default accelerator")
        XCTAssertEqual(try read("  accelerator: cpu\n").accelerator, .cpu)
        for (lines, message) in [("  accelerator: tpu\n", "x.yaml: trainer.accelerator: tpu is not one nest-train has"),
                                 ("  devices: 0\n", "x.yaml: trainer.devices must be auto, -1, a count ≥ 1"),
                                 ("  devices: [-1]\n", "x.yaml: trainer.devices must be auto, -1, a count or a list")] {
            XCTAssertThrowsError(try read(lines), lines) { error in XCTAssertTrue("\(error)".contains(message), "\(error)") }
        }
    }

    /// An encoder (or any section) of another class is refused by name instead of being built
    /// as a Conformer (NeMo's `nest_transformer.yaml` was once counted at 214,897,792 parameters,
    /// the Conformer's, where NeMo counts 119,300,224).
    func testSectionsOfOtherClassesAreRefusedByName() throws {
        let yaml = try String(contentsOfFile: "\(root)/Configs/tiny.yaml", encoding: .utf8)
        for (from, to, key) in [("nemo.collections.asr.modules.ConformerEncoder", "nemo.collections.asr.modules.SqueezeformerEncoder", "model.encoder._target_"),
                                ("nemo.collections.asr.modules.MultiSoftmaxDecoder", "nemo.collections.asr.modules.ConvASRDecoder", "model.decoder._target_")] {
            XCTAssertThrowsError(try RunConfig(try ConfigDocument(text: yaml.replacingOccurrences(of: from, with: to), file: "x.yaml"), requireData: false)) { error in
                XCTAssertTrue("\(error)".contains("x.yaml: \(key): \(to) is not supported"), "\(error)")
            }
        }
        // NeMo's two Transformer encoders are built, but a convolution-module argument under
        // either is refused as its constructor would refuse it.
        for target in ["TransformerEncoder", "ASRTransformerEncoder"] {
            let transformer = yaml.replacingOccurrences(of: "nemo.collections.asr.modules.ConformerEncoder", with: "nemo.collections.asr.modules.\(target)")
            XCTAssertThrowsError(try RunConfig(try ConfigDocument(text: transformer, file: "x.yaml"), requireData: false)) { error in
                XCTAssertTrue("\(error)".contains("x.yaml: model.encoder.") && "\(error)".contains(" is a ConformerEncoder argument; \(target) does not take it"), "\(error)")
            }
        }
        let qualified = yaml.replacingOccurrences(of: "nemo.collections.asr.modules.ConformerEncoder", with: "nemo.collections.asr.modules.conformer_encoder.ConformerEncoder")
        XCTAssertNoThrow(try RunConfig(try ConfigDocument(text: qualified, file: "x.yaml"), requireData: false))
    }
}
