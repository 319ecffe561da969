#!/usr/bin/env python3
"""Interop check with NeMo itself (optional; needs torch and nemo-toolkit, see ../shared/bench).

Restores a nest-train `.nemo` with NeMo's EncDecDenoiseMaskedTokenPredModel.restore_from
(strict), runs NeMo's preprocessor and encoder in eval mode on audio files, and compares every
layer's output with the `.npy` features `nest-train extract --layers all` wrote for them.

Usage: check_nemo_export.py MODEL.nemo FEATURES_DIR   (FEATURES_DIR holds features.json)
"""
import json, os, sys
import numpy as np
import torch
from nemo.collections.asr.parts.preprocessing.segment import AudioSegment
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
sys.exit(0 if worst < 1e-3 else 1)
