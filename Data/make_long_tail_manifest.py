#!/usr/bin/env python3
"""A long-tailed corpus from the demo corpus, for the batching benchmark (BENCHMARKS.md): every
demo training utterance as it is, plus one long file per 19 of them (5 %) made by joining 3 to 7
random utterances (about 15 to 35 s). Writes Data/generated/longtail/ and its manifest
Data/generated/longtail_manifest.json (deterministic; needs `make data` first)."""
import json
import os
import random
import wave

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated")
rows = [json.loads(line) for line in open(os.path.join(root, "train_manifest.json"))]
out_dir = os.path.join(root, "longtail")
os.makedirs(out_dir, exist_ok=True)
rng = random.Random(7)
out = [dict(r, audio_filepath=os.path.join(root, r["audio_filepath"])) for r in rows]
for k in range(len(rows) // 19):
    parts = rng.sample(rows, rng.randint(3, 7))
    path = os.path.join(out_dir, f"long_{k:03d}.wav")
    frames, params = b"", None
    for p in parts:
        with wave.open(os.path.join(root, p["audio_filepath"])) as w:
            params = params or w.getparams()
            frames += w.readframes(w.getnframes())
    with wave.open(path, "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
    out.append({"audio_filepath": path, "duration": len(frames) / (params.sampwidth * params.framerate), "text": ""})
with open(os.path.join(root, "longtail_manifest.json"), "w") as f:
    for r in out:
        f.write(json.dumps(r) + "\n")
durations = sorted(r["duration"] for r in out)
print(f"{len(out)} utterances, {sum(durations) / 60:.1f} min; median {durations[len(out) // 2]:.1f} s, "
      f"p95 {durations[int(len(out) * 0.95)]:.1f} s, max {durations[-1]:.1f} s")
