#!/usr/bin/env python3
"""Interop check with NeMo itself (optional; needs torch and nemo-toolkit, see ../shared/bench).

Restores a nest-train `.nemo` with NeMo's EncDecDenoiseMaskedTokenPredModel.restore_from
(strict), runs NeMo's preprocessor and encoder in eval mode on audio files, and compares every
layer's output with the `.npy` features `nest-train extract --layers all` wrote for them.
Then initialises a fresh CTC ASR model from the `.nemo` with the `init_from_nemo_model` block
the README gives, and checks that every encoder tensor arrived and the decoder was left alone.

Usage: check_nemo_export.py MODEL.nemo FEATURES_DIR   (FEATURES_DIR holds features.json)
"""
import json, os, sys
import numpy as np
import torch
from nemo.collections.asr.parts.preprocessing.segment import AudioSegment
from omegaconf import OmegaConf
from nemo.collections.asr.models import EncDecCTCModel
from nemo.collections.asr.models.ssl_models import EncDecDenoiseMaskedTokenPredModel
from nemo.collections.asr.modules.ssl_modules.multi_layer_feat import ConformerMultiLayerFeatureExtractor

model_path, features_dir = sys.argv[1], sys.argv[2]
model = EncDecDenoiseMaskedTokenPredModel.restore_from(model_path, map_location="cpu", strict=True)
model.eval()
n_layers = len(model.encoder.layers)
extractor = ConformerMultiLayerFeatureExtractor(encoder=model.encoder, layer_idx_list=list(range(n_layers)))
worst = 0.0
rows = [json.loads(l) for l in open(os.path.join(features_dir, "features.json"))]
for row in rows:
    # NeMo's own loader: float samples, mono, resampled to 16 kHz (librosa → soxr HQ).
    audio = AudioSegment.from_file(row["audio_filepath"], target_sr=16000).samples
    signal = torch.tensor(audio, dtype=torch.float32)[None]
    length = torch.tensor([len(audio)])
    with torch.no_grad():
        feats, feat_len = model.preprocessor(input_signal=signal, length=length)
        layers, lengths = extractor(audio_signal=feats, length=feat_len)
    ours = np.load(row["feature_path"])
    # The extractor appends the final encoder output after the requested layers.
    theirs = np.stack([l[0, :, : lengths[0]].numpy() for l in layers[:n_layers]])
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    err = float(np.abs(ours - theirs).max())
    worst = max(worst, err)
    print(f"{os.path.basename(row['audio_filepath'])}: {ours.shape} max abs diff {err:.2e}")
print(f"restore_from(strict=True) OK; {len(rows)} files, {n_layers} layers; worst max abs diff {worst:.2e}")

# Downstream initialisation, exactly as the README's config lines.
labels = list(" abcdefghijklmnopqrstuvwxyz'")
asr = EncDecCTCModel(cfg=OmegaConf.create({
    "sample_rate": 16000, "labels": labels,
    "preprocessor": OmegaConf.to_container(model.cfg.preprocessor),
    "encoder": OmegaConf.to_container(model.cfg.encoder),
    "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": model.cfg.encoder.d_model,
                "num_classes": len(labels), "vocabulary": labels},
    "train_ds": None, "validation_ds": None, "test_ds": None, "optim": None,
}))
decoder_before = {k: v.clone() for k, v in asr.state_dict().items() if k.startswith("decoder.")}
asr.maybe_init_from_pretrained_checkpoint(
    OmegaConf.create({"init_from_nemo_model": {"model0": {"path": model_path, "include": ["encoder"]}}}), map_location="cpu")
ssl_state, asr_state = model.state_dict(), asr.state_dict()
encoder_keys = [k for k in asr_state if k.startswith("encoder.")]
arrived = sum(torch.equal(asr_state[k], ssl_state[k]) for k in encoder_keys)
decoder_changed = sum(not torch.equal(asr_state[k], v) for k, v in decoder_before.items())
print(f"init_from_nemo_model into EncDecCTCModel: {arrived}/{len(encoder_keys)} encoder tensors equal the .nemo's; "
      f"{decoder_changed} decoder tensors changed")
sys.exit(0 if worst < 1e-3 and encoder_keys and arrived == len(encoder_keys) and decoder_changed == 0 else 1)
