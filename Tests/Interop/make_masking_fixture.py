"""Writes Tests/Interop/Resources/masking-without-overlap.json: what NeMo 3.0.0's
RandomBlockMasking with `allow_overlap: false` (its class default) masks, for a grid of valid
lengths L, mask_prob p and block_size bs. Its `forward_without_overlap` puts ⌈L·p/bs⌉ blocks
(shrunk when they do not fit) on distinct cells of a grid with one random offset, so the number
of masked frames depends on (L, p, bs) alone; the draws only move the blocks. For each case the
file holds that count (the same over 200 seeds, which the script checks, as it checks that every
masked frame lies inside [0, L)).

Run with NeMo 3.0.0 (`make nemo-venv` installs it in .venv-nemo):
    .venv-nemo/bin/python Tests/Interop/make_masking_fixture.py
"""

import json
import pathlib

import torch

import nemo
from nemo.collections.asr.modules.ssl_modules.masking import RandomBlockMasking

OUT = pathlib.Path(__file__).resolve().parent / "Resources" / "masking-without-overlap.json"
T = 1024
cases = []
for bs in [8, 40, 48]:
    for p in [0.01, 0.3, 0.5, 0.8]:
        module = RandomBlockMasking(feat_in=2, mask_prob=p, block_size=bs, allow_overlap=False)
        for length in [0, 1, 5, 10, 49, 50, 120, 300, 400, 999, 1000, 1003]:
            counts = set()
            for seed in range(200):
                torch.manual_seed(seed)
                _, masks = module(input_feats=torch.zeros(1, 2, T), input_lengths=torch.tensor([length]))
                frames = masks[0, 0].nonzero().flatten().tolist()
                counts.add(len(frames))
                assert not frames or frames[-1] < length
            assert len(counts) == 1, (length, p, bs, counts)
            cases.append({"length": length, "mask_prob": p, "block_size": bs, "masked_frames": counts.pop()})

OUT.write_text(json.dumps({"made_with": f"NeMo {nemo.__version__}, torch {torch.__version__}", "seeds": 200, "frames": T,
                           "cases": cases}, indent=1) + "\n")
print(f"{OUT}: {len(cases)} cases")
