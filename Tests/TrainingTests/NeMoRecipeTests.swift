import Foundation
import Config
import HDF5
import Training
import XCTest
import _TestSupport

/// NeMo's six NEST recipes (`examples/asr/conf/ssl/nest/` in NVIDIA-NeMo/Speech): each is
/// counted at its real size exactly as NeMo counts it, and trains at a tiny size given only data
/// and a batch size. The configs are written here in the recipes' layout (a bare `model:`
/// section with `${…}` interpolations, `???` for the data, the recipes' encoder keys); the
/// counts are NeMo 3.0.0's, from `Tests/Interop/count_recipe_parameters.py`.
final class NeMoRecipeTests: XCTestCase {
    struct Recipe {
        let name: String
        /// The recipe's `model.encoder` keys beyond those all six share.
        let encoder: String
        let features: Int, normalize: String, padTo: Int
        let nemoCount: Int
    }

    static let recipes = [
        Recipe(name: "nest_fast-conformer.yaml", encoder: """
            _target_: nemo.collections.asr.modules.ConformerEncoder
            n_layers: 17
            d_model: 512
            use_bias: true
            xscaling: true
            att_context_size: [-1, -1]
            conv_kernel_size: 9
            conv_norm_type: batch_norm
            causal_downsampling: false
            """, features: 80, normalize: "per_feature", padTo: 16, nemoCount: 113_106_000),
        Recipe(name: "nest_fast-conformer-v2-xlarge.yaml", encoder: """
            _target_: nemo.collections.asr.modules.ConformerEncoder
            n_layers: 24
            d_model: 1024
            use_bias: false
            xscaling: false
            att_context_size: [-1, -1]
            conv_kernel_size: 9
            conv_norm_type: batch_norm
            conv_context_size: null
            causal_downsampling: false
            """, features: 128, normalize: "per_feature", padTo: 16, nemoCount: 617_424_000),
        Recipe(name: "nest_streaming_fast-conformer-v2-xlarge.yaml", encoder: """
            _target_: nemo.collections.asr.modules.ConformerEncoder
            n_layers: 24
            d_model: 1024
            use_bias: false
            xscaling: false
            att_context_size: [70, 13]
            att_context_style: chunked_limited
            conv_kernel_size: 9
            conv_norm_type: layer_norm
            conv_context_size: causal
            causal_downsampling: true
            """, features: 128, normalize: "NA", padTo: 8, nemoCount: 617_686_144),
        Recipe(name: "nest_transformer.yaml", encoder: """
            _target_: nemo.collections.asr.modules.ASRTransformerEncoder
            n_layers: 33
            d_model: 512
            use_bias: true
            xscaling: true
            att_context_size: [-1, -1]
            causal_downsampling: false
            """, features: 128, normalize: "per_feature", padTo: 8, nemoCount: 119_300_224),
        Recipe(name: "nest_transformer_xlarge.yaml", encoder: """
            _target_: nemo.collections.asr.modules.ASRTransformerEncoder
            n_layers: 44
            d_model: 1024
            use_bias: false
            post_ln: false
            xscaling: false
            att_context_size: [-1, -1]
            causal_downsampling: false
            """, features: 128, normalize: "per_feature", padTo: 8, nemoCount: 612_934_784),
        Recipe(name: "nest_streaming_transformer_xlarge.yaml", encoder: """
            _target_: nemo.collections.asr.modules.ASRTransformerEncoder
            n_layers: 44
            d_model: 1024
            use_bias: false
            xscaling: false
            att_context_size: [70, 13]
            att_context_style: chunked_limited
            causal_downsampling: true
            """, features: 128, normalize: "NA", padTo: 8, nemoCount: 613_196_928),
    ]

    /// The recipe as a file: a bare model config, data left as `???`.
    static func write(_ recipe: Recipe, to dir: String) throws -> String {
        let stem = recipe.name.replacingOccurrences(of: ".yaml", with: "")
        let encoder = recipe.encoder.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        let yaml = """
            name: "\(stem)"
            model:
              sample_rate: 16000
              num_classes: 8192
              num_books: 1
              code_dim: 16
              squeeze_single: false
              mask_position: pre_conv
              train_ds:
                manifest_filepath: ???
                noise_manifest: ???
                sample_rate: ${model.sample_rate}
                batch_size: 8
                shuffle: true
                max_duration: 60.0
                min_duration: 1.0
                drop_last: true
                batch_augmentor:
                  _target_: nemo.collections.asr.modules.ssl_modules.MultiSpeakerNoiseAugmentation
                  prob: 0.5
                  noise_ratio: 0.5
                  min_r_speech: -5.0
                  max_r_speech: 5.0
                  min_r_noise: -5.0
                  max_r_noise: 20.0
                  min_mix_rate: 0.5
                  max_mix_rate: 0.5
                  min_num_segments: 1
                  max_num_segments: 1
                  min_num_speakers: 1
                  max_num_speakers: 1
              validation_ds:
                manifest_filepath: ???
                noise_manifest: null
                sample_rate: ${model.sample_rate}
                batch_size: 8
                shuffle: false
              preprocessor:
                _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
                sample_rate: ${model.sample_rate}
                normalize: "\(recipe.normalize)"
                window_size: 0.025
                window_stride: 0.01
                window: "hann"
                features: \(recipe.features)
                n_fft: 512
                log: true
                frame_splicing: 1
                dither: 0.00001
                pad_to: \(recipe.padTo)
                pad_value: 0.0
              masking:
                _target_: nemo.collections.asr.modules.RandomBlockMasking
                block_size: 40
                mask_prob: 0.01
                feat_in: ${model.preprocessor.features}
                freeze: true
                allow_overlap: true
              quantizer:
                _target_: nemo.collections.asr.modules.RandomProjectionVectorQuantizer
                feat_in: ${model.preprocessor.features}
                code_dim: ${model.code_dim}
                num_books: ${model.num_books}
                num_classes: ${model.num_classes}
                dist_fn: "l2"
                freeze: true
                squeeze_single: ${model.squeeze_single}
                combine_time_steps: ${model.encoder.subsampling_factor}
              encoder:
                feat_in: ${model.preprocessor.features}
                feat_out: -1
                subsampling: dw_striding
                subsampling_factor: 8
                subsampling_conv_channels: 256
                ff_expansion_factor: 4
                self_attention_model: rel_pos
                n_heads: 8
                untie_biases: true
                pos_emb_max_len: 5000
                dropout: 0.1
                dropout_pre_encoder: 0.1
                dropout_emb: 0.0
                dropout_att: 0.1
                stochastic_depth_drop_prob: 0.0
                stochastic_depth_mode: linear
                stochastic_depth_start_layer: 1
            \(encoder)
              decoder:
                _target_: nemo.collections.asr.modules.MultiSoftmaxDecoder
                feat_in: ${model.encoder.d_model}
                num_classes: ${model.num_classes}
                num_decoders: ${model.num_books}
                squeeze_single: ${model.squeeze_single}
                use_bias: true
              loss:
                _target_: nemo.collections.asr.losses.MultiMLMLoss
                combine_time_steps: ${model.encoder.subsampling_factor}
                mask_threshold: 0.8
                num_decoders: ${model.num_books}
                squeeze_single: ${model.squeeze_single}
              optim:
                name: adamw
                lr: 5.0
                betas: [0.9, 0.98]
                weight_decay: 1e-3
                sched:
                  name: NoamAnnealing
                  d_model: ${model.encoder.d_model}
                  warmup_steps: 25000
                  warmup_ratio: null
                  min_lr: 1e-6
            trainer:
              devices: -1
              num_nodes: 1
              max_epochs: -1
              max_steps: 500000
              val_check_interval: 2500
              accelerator: auto
              strategy: ddp
              accumulate_grad_batches: 1
              gradient_clip_val: 0.0
              precision: 32
              log_every_n_steps: 10
              sync_batchnorm: true
            exp_manager:
              exp_dir: null
              name: ${name}
            """
        let path = dir + "/" + recipe.name
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `info --config` counts every recipe at its real size as NeMo does (trainable and frozen
    /// parameters of encoder, decoder, quantizer and masking).
    func testInfoCountsEveryRecipeAsNeMo() throws {
        let dir = CLI.temporaryDirectory()
        for recipe in Self.recipes {
            let r = try CLI.run(["info", "--config", try Self.write(recipe, to: dir)])
            XCTAssertEqual(r.status, 0, "\(recipe.name): \(r.stderr)")
            let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("parameters:") } ?? ""
            let total = Int(line.dropFirst("parameters:".count).split(separator: " ").first?.replacingOccurrences(of: ",", with: "") ?? "")
            XCTAssertEqual(total, recipe.nemoCount, "\(recipe.name): \(line)")
        }
    }

    /// The memory guard's parameter count, made from the config alone before anything is
    /// allocated, is within 3 % of NeMo's count for every recipe (conformer and transformer).
    func testMemoryBudgetCountsEveryRecipeWithinThreePercent() throws {
        let dir = CLI.temporaryDirectory()
        for recipe in Self.recipes {
            let config = try RunConfig(try ConfigDocument(contentsOf: try Self.write(recipe, to: dir)), requireData: false)
            let budget = MemoryBudget(model: config.model, batch: 0, seconds: 0)
            XCTAssertEqual((budget.parameters + budget.frozen) / Double(recipe.nemoCount), 1, accuracy: 0.03, recipe.name)
        }
    }

    /// Each recipe file trains at a tiny size with only data and a batch size given (and the
    /// sizes shrunk), as a NeMo user would start it; its .nemo restores weight for weight, and
    /// extract and probe read it.
    func testEveryRecipeTrainsAtTinySizeGivenOnlyData() throws {
        try CLI.ensureTinyCorpus()
        let dir = CLI.temporaryDirectory()
        let data = CLI.root.appendingPathComponent("Data/generated/tiny")
        for recipe in Self.recipes {
            let stem = recipe.name.replacingOccurrences(of: ".yaml", with: ""), run = dir + "/" + stem
            let r = try CLI.run(["--config", try Self.write(recipe, to: dir),
                                 "model.train_ds.manifest_filepath=\(data.appendingPathComponent("train_manifest.json").path)",
                                 "model.train_ds.noise_manifest=null",
                                 "model.validation_ds.manifest_filepath=\(data.appendingPathComponent("dev_manifest.json").path)",
                                 "model.train_ds.batch_size=4", "model.train_ds.drop_last=false",
                                 "model.encoder.n_layers=2", "model.encoder.d_model=32", "model.encoder.n_heads=4",
                                 "model.encoder.subsampling_conv_channels=8", "model.num_classes=32",
                                 "trainer.max_steps=2", "trainer.log_every_n_steps=1", "exp_manager.exp_dir=\(run)", "--threads", "1"])
            XCTAssertEqual(r.status, 0, "\(recipe.name): \(r.stderr)")
            let losses = try CLI.trainingRows(run + "/" + stem).compactMap {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
            }
            XCTAssertEqual(losses.count, 2, recipe.name)
            XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(recipe.name): \(losses)")
            // Into a .nemo and back, weight for weight; features extracted from the .nemo.
            let checkpoint = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), nemo = run + "/model.nemo", back = run + "/back.h5"
            XCTAssertEqual(try CLI.run(["export", "--checkpoint", checkpoint, "--output", nemo, "--format", "nemo"]).status, 0, recipe.name)
            let e = try CLI.run(["export", "--nemo", nemo, "--output", back])
            XCTAssertEqual(e.status, 0, "\(recipe.name): \(e.stderr)")
            let original = try HDF5File(path: checkpoint, mode: .readOnly), roundTrip = try HDF5File(path: back, mode: .readOnly)
            let keys = try roundTrip.datasetNames(in: "/weights")
            XCTAssertTrue(keys.contains("encoder.layers.1.self_attn.linear_q.weight"), recipe.name)
            for k in keys { XCTAssertEqual(try roundTrip.read("/weights/\(k)"), try original.read("/weights/\(k)"), "\(recipe.name): \(k)") }
            let x = try CLI.run(["extract", "--nemo", nemo, "--input", data.appendingPathComponent("dev_manifest.json").path,
                                 "--output", run + "/features", "--layers", "last"])
            XCTAssertEqual(x.status, 0, "\(recipe.name): \(x.stderr)")
            let p = try CLI.run(["probe", "--nemo", nemo, "--train", data.appendingPathComponent("train_manifest.json").path,
                                 "--test", data.appendingPathComponent("dev_manifest.json").path, "--label", "speaker", "--pool", "mean",
                                 "--epochs", "2", "--json"])
            XCTAssertEqual(p.status, 0, "\(recipe.name): \(p.stderr)")
            let weights = (try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])?["layer_weights"] as? [Double]
            XCTAssertEqual(weights?.count, 3, "\(recipe.name): the subsampled input and both layers")
        }
    }
}
