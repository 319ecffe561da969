"""Writes Tests/Interop/Resources/minimal-config.json: what NeMo 3.0.0 builds from a NEST config
that names only what each class requires (Hydra instantiates each section's `_target_`; the
constructor's defaults fill every other argument). For each section: the state-dict keys with
their shapes; for the preprocessor also its window, hop, FFT size and mel bands. nest-train must
build the same from the same YAML (ConfigContractTests).

Run with NeMo 3.0.0 (`make nemo-venv` installs it in .venv-nemo):
    .venv-nemo/bin/python Tests/Interop/make_minimal_config_fixture.py
"""

import json
import pathlib

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import nemo

OUT = pathlib.Path(__file__).resolve().parent / "Resources" / "minimal-config.json"

# Only the required arguments, plus the two combine_time_steps a NEST model cannot train
# without (NeMo builds the modules with their default of 1, then its loss fails on the shapes).
YAML = """model:
  preprocessor:
    _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
  masking:
    _target_: nemo.collections.asr.modules.RandomBlockMasking
    feat_in: 64
  quantizer:
    _target_: nemo.collections.asr.modules.RandomProjectionVectorQuantizer
    feat_in: 64
    code_dim: 16
    num_classes: 32
    num_books: 1
    combine_time_steps: 4
  encoder:
    _target_: nemo.collections.asr.modules.ConformerEncoder
    feat_in: 64
    n_layers: 2
    d_model: 32
  decoder:
    _target_: nemo.collections.asr.modules.MultiSoftmaxDecoder
    feat_in: 32
    num_classes: 32
  loss:
    _target_: nemo.collections.asr.losses.MultiMLMLoss
    combine_time_steps: 4
"""

def main():
    torch.manual_seed(0)
    cfg = OmegaConf.create(YAML).model
    sections = {}
    for name in ["preprocessor", "masking", "quantizer", "encoder", "decoder", "loss"]:
        module = instantiate(cfg[name])
        sections[name] = {k: list(v.shape) for k, v in module.state_dict().items()}
        if name == "preprocessor":
            f = module.featurizer
            front_end = {"win_length": f.win_length, "hop_length": f.hop_length, "n_fft": f.n_fft, "features": f.nfilt}
    OUT.write_text(json.dumps({"made_with": f"NeMo {nemo.__version__}, torch {torch.__version__}", "yaml": YAML,
                               "front_end": front_end, "state_dict": sections}, indent=1) + "\n")
    print(f"{OUT}: {sum(len(v) for v in sections.values())} tensors, front end {front_end}")


if __name__ == "__main__":
    main()
