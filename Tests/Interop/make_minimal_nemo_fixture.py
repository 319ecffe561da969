"""Writes Tests/Interop/Resources/minimal-config.nemo and minimal-config-encoded.json: NeMo 3.0.0's
own `.nemo` of a NEST model whose config names only what each class requires (the YAML of
make_minimal_config_fixture.py, plus the `spec_augment` section NeMo's SSL model cannot be built
without), so its model_config.yaml leaves every other key out as NeMo writes it; and the eval
encoder's last layer on a fixed chirp (`chirp` below, one second at 16 kHz). nest-train must read
the file with the class defaults, take every tensor, and extract the same layer
(ConfigContractTests).

Run with NeMo 3.0.0 (`make nemo-venv` installs it in .venv-nemo):
    .venv-nemo/bin/python Tests/Interop/make_minimal_nemo_fixture.py
"""

import json
import math
import pathlib

import torch
from omegaconf import OmegaConf

import nemo
from nemo.collections.asr.models.ssl_models import EncDecDenoiseMaskedTokenPredModel

from make_minimal_config_fixture import YAML

RESOURCES = pathlib.Path(__file__).resolve().parent / "Resources"


def chirp(n=16000, rate=16000):
    """A 200 Hz → 2 kHz sweep at half scale, computed in double as the Swift test does."""
    return [0.5 * math.sin(2 * math.pi * (200 * t + 900 * t * t)) for t in (i / rate for i in range(n))]


torch.manual_seed(0)
cfg = OmegaConf.create(YAML).model
OmegaConf.set_struct(cfg, False)
cfg.spec_augment = {"_target_": "nemo.collections.asr.modules.SpectrogramAugmentation"}
model = EncDecDenoiseMaskedTokenPredModel(cfg=cfg).eval()
model.save_to(str(RESOURCES / "minimal-config.nemo"))

with torch.no_grad():
    audio = torch.tensor([chirp()], dtype=torch.float32)
    features, length = model.preprocessor(input_signal=audio, length=torch.tensor([audio.shape[1]]))
    encoded, encoded_length = model.encoder(audio_signal=features, length=length)   # [1, d, T']
t = int(encoded_length[0])
(RESOURCES / "minimal-config-encoded.json").write_text(json.dumps({
    "made_with": f"NeMo {nemo.__version__}, torch {torch.__version__}",
    "frames": t, "d_model": encoded.shape[1],
    "last_layer": [round(float(v), 7) for v in encoded[0, :, :t].reshape(-1)],   # d-major, as extract writes it
}) + "\n")
print(f"minimal-config.nemo: {sum(p.numel() for p in model.parameters())} parameters; encoded {encoded.shape[1]} × {t}")
