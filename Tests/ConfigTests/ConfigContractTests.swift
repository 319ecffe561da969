import Audio
import Config
import Interop
import Foundation
import Model
import NN
import Tensor
import Training
import XCTest
import _TestSupport

/// The config contract: a key a config leaves out takes the default of the NeMo class its
/// section's `_target_` names, on every path (YAML, overrides, `.nemo`), as Hydra and the class's
/// constructor give it in NeMo.
final class ConfigContractTests: XCTestCase {
    /// The table is NeMo 3.0.0's own: every class of `nemo-class-defaults.json` (read from the
    /// classes themselves) with the same arguments in the same order and the same defaults.
    func testTheTableHoldsNeMosClassDefaults() throws {
        let url = Fixtures.directory.deletingLastPathComponent().appendingPathComponent("spec/nemo-class-defaults.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        XCTAssertEqual(json["nemo"] as? String, "3.0.0")
        let classes = try XCTUnwrap(json["classes"] as? [String: [String: Any]])
        // The wrapper takes modules, not config values: nothing to fill.
        let built = classes.keys.filter { !$0.hasSuffix("ConvFeatureMaksingWrapper") }
        XCTAssertEqual(Set(ClassDefaults.nemo.map(\.target)), Set(built))
        let text = try String(contentsOf: url, encoding: .utf8)
        for contract in ClassDefaults.nemo {
            let defaults = try XCTUnwrap(classes[contract.target])
            // The file's order is the constructor's: compare it through the raw text.
            let order = try XCTUnwrap(Self.keyOrder(of: contract.target, in: text))
            XCTAssertEqual(contract.keys.map(\.name), order, contract.target)
            for argument in contract.keys {
                let expected = try XCTUnwrap(defaults[argument.name], "\(contract.target).\(argument.name)")
                XCTAssertTrue(Self.same(argument.value, expected), "\(contract.target).\(argument.name): table \(argument.value), NeMo \(expected)")
            }
        }
        // The one class from beyond NeMo 3.0.0 says so.
        XCTAssertNotNil(ClassDefaults.asrTransformerEncoder.provenance)
        XCTAssertNil(ClassDefaults.asrTransformerEncoder.default("conv_kernel_size"))
    }

    /// A config naming only what NeMo's classes require builds NeMo's model: the same state-dict
    /// keys and shapes in every section and the same front end (the reference was built by NeMo
    /// 3.0.0 from the same YAML: Tests/Interop/make_minimal_config_fixture.py). Among what the
    /// class defaults give: striding subsampling at factor 4 with d_model channels, 4 heads, a
    /// convolution kernel of 31, a decoder without bias, 64 mel bands of a 20 ms window.
    func testAConfigOfRequiredKeysBuildsNeMosModel() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/Resources/minimal-config.json")
        let fixture = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let yaml = try XCTUnwrap(fixture["yaml"] as? String)
        for overrides in [[], ["++model.encoder.n_heads=4"]] {
            let config = try RunConfig(try ConfigDocument(text: yaml, file: "minimal.yaml", overrides: overrides), requireData: false)
            let frontEnd = try XCTUnwrap(fixture["front_end"] as? [String: Int])
            XCTAssertEqual(config.frontEnd.windowSize, frontEnd["win_length"])
            XCTAssertEqual(config.frontEnd.hop, frontEnd["hop_length"])
            XCTAssertEqual(config.frontEnd.nFFT, frontEnd["n_fft"])
            XCTAssertEqual(config.frontEnd.features, frontEnd["features"])
            XCTAssertEqual(config.model.masking.allowOverlap, false)
            XCTAssertEqual(config.model.quantizer.cosineDistance, true)
            let (model, _) = ModelFactory.make(config)
            let ours = Dictionary(uniqueKeysWithValues: model.stateDict().map { ($0.key, $0.value.shape) })
            let sections = try XCTUnwrap(fixture["state_dict"] as? [String: [String: [Int]]])
            let prefixes = ["preprocessor": "preprocessor.", "masking": "mask_processor.", "quantizer": "quantizer.", "encoder": "encoder.",
                            "decoder": "decoder.", "loss": "loss."]
            for (section, tensors) in sections {
                let prefix = try XCTUnwrap(prefixes[section])
                let mine = ours.filter { $0.key.hasPrefix(prefix) && !$0.key.hasSuffix("num_batches_tracked") }
                let theirs = Dictionary(uniqueKeysWithValues: tensors.filter { !$0.key.hasSuffix("num_batches_tracked") }.map { (prefix + $0.key, $0.value) })
                XCTAssertEqual(Set(mine.keys), Set(theirs.keys), "\(section): state-dict keys")
                for (key, shape) in theirs { XCTAssertEqual(mine[key], shape, key) }
            }
        }
    }

    /// The same config as a `.nemo`'s bare `model_config.yaml`, which NeMo restores with its class
    /// defaults: nest-train reads it to the same model, and a required key left out is named.
    func testABareModelConfigTakesTheSameDefaults() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Interop/Resources/minimal-config.json")
        let yaml = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])?["yaml"] as? String)
        let bare = yaml.components(separatedBy: "\n").dropFirst().map { String($0.dropFirst(2)) }.joined(separator: "\n")
        let full = try RunConfig(try ConfigDocument(text: yaml, file: "full.yaml"), requireData: false)
        let fromBare = try RunConfig(try ConfigDocument(text: bare, file: "model_config.yaml"), requireData: false)
        XCTAssertEqual(full.model.encoder, fromBare.model.encoder)
        XCTAssertEqual(fromBare.model.encoder.subsampling, .striding)
        XCTAssertEqual(fromBare.model.encoder.subsamplingFactor, 4)
        XCTAssertEqual(fromBare.model.encoder.subsamplingConvChannels, 32)
        XCTAssertEqual(fromBare.model.encoder.nHeads, 4)
        XCTAssertEqual(fromBare.model.encoder.convKernelSize, 31)
        XCTAssertEqual(fromBare.model.encoder.dropoutEmb, 0.1)
        XCTAssertEqual(fromBare.model.decoder.useBias, false)
        let noCodeDim = bare.replacingOccurrences(of: "  code_dim: 16\n", with: "")
        XCTAssertThrowsError(try RunConfig(try ConfigDocument(text: noCodeDim, file: "model_config.yaml"), requireData: false)) { error in
            XCTAssertTrue("\(error)".contains("model.quantizer.code_dim is required: NeMo's RandomProjectionVectorQuantizer has no default for it"), "\(error)")
        }
    }

    /// NeMo's own `.nemo` of that minimal config (its model_config.yaml leaves every other key
    /// out, as NeMo writes it; Tests/Interop/make_minimal_nemo_fixture.py): nest-train reads it
    /// with the class defaults, takes every tensor in NeMo's order, and extracts NeMo's eval
    /// encoder output on the same chirp (front end of 64 mels over 20 ms, striding subsampling,
    /// 4 heads, kernel 31).
    func testNeMosOwnNemoOfTheMinimalConfigExtractsNeMosEncoder() throws {
        let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Interop/Resources")
        let nemo = resources.appendingPathComponent("minimal-config.nemo").path
        let stored = try NemoFile(nemo).configYAML
        XCTAssertFalse(stored.contains("n_heads") || stored.contains("subsampling") || stored.contains("features"), "the file leaves the defaults out")
        let (model, config) = try Exporter.loadNemo(nemo)
        XCTAssertEqual(config.model.encoder.nHeads, 4)
        XCTAssertEqual(config.model.encoder.subsampling, .striding)
        XCTAssertEqual(model.namedArrays().map(\.name), try WeightsFile.open(nemo).names(), "every tensor, in NeMo's order")

        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: resources.appendingPathComponent("minimal-config-encoded.json"))) as? [String: Any])
        let frames = try XCTUnwrap(expected["frames"] as? Int), width = try XCTUnwrap(expected["d_model"] as? Int)
        let reference = try XCTUnwrap(expected["last_layer"] as? [Double]).map(Float.init)
        let dir = CLI.temporaryDirectory()
        // The chirp of the fixture script: 200 Hz → 2 kHz over one second at half scale.
        let chirp = (0..<16000).map { i -> Float in let t = Double(i) / 16000; return Float(0.5 * sin(2 * Double.pi * (200 * t + 900 * t * t))) }
        try CLI.writeWAV(chirp, to: dir + "/chirp.wav")
        try "{\"audio_filepath\": \"\(dir)/chirp.wav\", \"duration\": 1.0}\n".write(toFile: dir + "/manifest.json", atomically: true, encoding: .utf8)
        let r = try CLI.run(["extract", "--nemo", nemo, "--input", dir + "/manifest.json", "--output", dir + "/features", "--layers", "all"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let npy = try Data(contentsOf: URL(fileURLWithPath: dir + "/features/" + FeatureExtractor.featureName(dir + "/chirp.wav")))
        let headerLength = Int(npy[8]) | Int(npy[9]) << 8
        let values = npy.subdata(in: (10 + headerLength)..<npy.count).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(values.count, 2 * width * frames, "two layers of d_model × T′")
        assertClose(Array(values[(width * frames)...]), reference, atol: 1e-4, "the last layer")
    }

    /// A key the section's class does not take (NeMo's constructor would refuse it) is named in
    /// a warning rather than ignored in silence; the shipped configs have none.
    func testAKeyTheClassDoesNotTakeIsNamed() throws {
        let root = CLI.root.path
        let typo = try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/tiny.yaml", overrides: ["++model.encoder.n_head=4"]), requireData: false)
        XCTAssertTrue(typo.warnings.contains("model.encoder.n_head is not an argument of NeMo's ConformerEncoder; nest-train ignores it"), "\(typo.warnings)")
        for name in ["tiny", "demo", "large", "xl"] {
            let config = try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/\(name).yaml"), requireData: false)
            XCTAssertFalse(config.warnings.contains { $0.contains("is not an argument") }, "\(name): \(config.warnings)")
        }
    }

    /// Every value is checked against the table before anything is read: its type, the values
    /// nest-train builds (a preprocessor option it does not build is refused, not ignored), null
    /// only where the class takes it; a section NeMo's model needs cannot be left out.
    func testValuesAreCheckedAgainstTheTable() throws {
        let root = CLI.root.path
        let p = "model.preprocessor", e = "model.encoder"
        for (override, expected) in [("++\(e).n_heads=two", "\(e).n_heads must be an integer, got 'two'"),
                                     ("\(e).n_heads=null", "\(e).n_heads is null; NeMo's ConformerEncoder takes an int (its default is 4)"),
                                     ("\(e).dropout=1.0", "\(e).dropout (1.0) must be in [0, 1)"),
                                     ("++\(p).highfreq=4000", "\(p).highfreq: '4000' is not supported (supported: null)"),
                                     ("++\(p).mag_power=1.0", "\(p).mag_power: '1.0' is not supported (supported: 2)"),
                                     ("++\(p).log=false", "\(p).log: 'false' is not supported (supported: true)"),
                                     ("++model.quantizer.time_ahead=true", "model.quantizer.time_ahead: 'true' is not supported"),
                                     ("\(p).normalize=all_features", "\(p).normalize: 'all_features' is not supported (supported: per_feature, NA)"),
                                     ("++\(e).att_context_size=4", "\(e).att_context_size must be a list"),
                                     ("model.train_ds.batch_augmentor._target_=x.OtherAugmentation",
                                      "model.train_ds.batch_augmentor._target_: x.OtherAugmentation is not supported (nest-train builds MultiSpeakerNoiseAugmentation)"),
                                     ("++model.spec_augment._target_=x.SpecCutout", "model.spec_augment._target_: x.SpecCutout is not supported"),
                                     ("model.quantizer=null", "model.quantizer is missing: NeMo's NEST model builds its RandomProjectionVectorQuantizer from it "
                                      + "(give at least feat_in, code_dim, num_classes, num_books)")] {
            XCTAssertThrowsError(try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/tiny.yaml", overrides: [override]), requireData: false), override) {
                XCTAssertTrue("\($0)".contains("tiny.yaml: \(expected)"), "\(override): \($0)")
            }
        }
        // Values the table accepts: 2 is 2.0; null where the class takes it; pre-emphasis off.
        let accepted = try RunConfig(try ConfigDocument(contentsOf: "\(root)/Configs/tiny.yaml",
                                                        overrides: ["++\(p).mag_power=2", "++\(p).preemph=null", "++\(p).n_fft=null"]), requireData: false)
        XCTAssertNil(accepted.frontEnd.preemphasis)
        XCTAssertEqual(accepted.frontEnd.nFFT, 512, "the power of two holding the 400-sample window")
    }

    /// The table's "lands in" column names settings that exist: every `Type.field` it names is a
    /// stored property of that type (so a renamed field fails here, not in a reader's silence).
    func testWhereAValueLandsNamesARealSetting() throws {
        let settings: [String: Mirror] = [
            "EncoderConfig": Mirror(reflecting: EncoderConfig()), "QuantizerConfig": Mirror(reflecting: QuantizerConfig()),
            "DecoderConfig": Mirror(reflecting: DecoderConfig()), "MaskingConfig": Mirror(reflecting: MaskingConfig()),
            "LossConfig": Mirror(reflecting: LossConfig()), "FilterbankFeatures.Settings": Mirror(reflecting: FilterbankFeatures.Settings()),
            "MultiSpeakerNoiseAugmentation.Settings": Mirror(reflecting: MultiSpeakerNoiseAugmentation.Settings()),
            "FilterbankFeatures": Mirror(reflecting: FilterbankFeatures(settings: .init())),
        ]
        var named = 0
        for contract in ClassDefaults.all {
            for argument in contract.keys where !argument.lands.hasPrefix("—") {
                // "Type.field, field2 (a note)": the type is the longest known prefix.
                let text = String(argument.lands.prefix { $0 != "(" }).trimmingCharacters(in: .whitespaces)
                let type = try XCTUnwrap(settings.keys.filter { text.hasPrefix($0 + ".") }.max { $0.count < $1.count }, "\(contract.className).\(argument.name): \(text)")
                let fields = text.dropFirst(type.count + 1).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                let labels = Set(settings[type]!.children.compactMap(\.label))
                for field in fields {
                    XCTAssertTrue(labels.contains(field), "\(contract.className).\(argument.name): \(type) has no \(field)")
                    named += 1
                }
            }
        }
        XCTAssertGreaterThan(named, 80)
    }

    /// `dropout_emb` (ConformerEncoder's default 0.1) drops position-table entries in training,
    /// one mask per forward, and nothing in evaluation.
    func testPositionDropoutActsInTrainingOnly() throws {
        var config = EncoderConfig()
        (config.featIn, config.nLayers, config.dModel, config.nHeads, config.subsamplingConvChannels) = (16, 1, 16, 2, 4)
        (config.dropout, config.dropoutPreEncoder, config.dropoutAtt, config.dropoutEmb) = (0, 0, 0, 0.5)
        let encoder = makeEncoder(config, rng: RandomGenerator(seed: 1))
        var plain = config
        plain.dropoutEmb = 0
        let reference = makeEncoder(plain, rng: RandomGenerator(seed: 1))
        let x = Tensor((0..<(16 * 64)).map { Float(sin(Double($0))) }, shape: [1, 16, 64])
        encoder.eval(); reference.eval()
        XCTAssertEqual(encoder(x, lengths: [64], captureLayers: []).encoded.array, reference(x, lengths: [64], captureLayers: []).encoded.array)
        encoder.train(); reference.train()
        let dropped = withoutGrad { encoder(x, lengths: [64], captureLayers: []).encoded.array }
        XCTAssertNotEqual(dropped, withoutGrad { reference(x, lengths: [64], captureLayers: []).encoded.array })
    }

    /// docs/configuration.md is the table's own page (`nest-train info --class-defaults > docs/configuration.md`).
    func testTheConfigurationPageIsTheTable() throws {
        let page = try String(contentsOfFile: CLI.root.appendingPathComponent("docs/configuration.md").path, encoding: .utf8)
        XCTAssertEqual(page, ClassDefaults.reference, "docs/configuration.md differs from the table: regenerate it with `nest-train info --class-defaults > docs/configuration.md`")
        let printed = try CLI.run(["info", "--class-defaults"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertEqual(printed.stdout, page)
    }

    static func same(_ value: ClassDefault, _ expected: Any) -> Bool {
        switch value {
        case .required: return expected as? String == "<required>"
        case .null: return expected is NSNull
        case .value(let text):
            if text == "true" || text == "false" { return (expected as? Bool).map { String($0) } == text }
            if let n = expected as? NSNumber { return Double(text) == n.doubleValue }
            return expected as? String == text
        }
    }

    /// The argument names of `target` in the JSON text, in the file's order.
    static func keyOrder(of target: String, in text: String) -> [String]? {
        guard let start = text.range(of: "\"\(target)\": {") else { return nil }
        let body = text[start.upperBound...].prefix { $0 != "}" }
        return body.components(separatedBy: ",").compactMap { item in
            let parts = item.split(separator: "\"", omittingEmptySubsequences: false)
            return parts.count > 1 ? String(parts[1]) : nil
        }
    }
}
