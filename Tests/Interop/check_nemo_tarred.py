"""NeMo's own tarred-dataset reader accepts the shards `nest-train tar` writes.

Usage: check_nemo_tarred.py SHARD_DIR NUM_SHARDS
Reads every sample with NeMo's TarredAudioToCharDataset and checks that each manifest entry
arrives once, with the audio length its duration says.
"""
import json
import sys

from nemo.collections.asr.data.audio_to_text import TarredAudioToCharDataset

folder, shards = sys.argv[1], int(sys.argv[2])
manifest = f"{folder}/tarred_audio_manifest.json"
entries = [json.loads(line) for line in open(manifest)]
dataset = TarredAudioToCharDataset(
    audio_tar_filepaths=f"{folder}/audio__OP_0..{shards - 1}_CL_.tar",
    manifest_filepath=manifest,
    labels=list(" abcdefghijklmnopqrstuvwxyz'"),
    sample_rate=16000,
    shuffle_n=0,
    return_sample_id=True,
)
seen = {}
for audio, audio_len, _, _, sample_id in dataset:
    seen[int(sample_id)] = int(audio_len)
assert len(seen) == len(entries), f"NeMo read {len(seen)} samples, the manifest has {len(entries)}"
for i, e in enumerate(dataset.manifest_processor.collection):
    expected = round(e.duration * 16000)
    assert abs(seen[i] - expected) <= 16, f"{e.audio_file}: {seen[i]} samples, duration says {expected}"
print(f"NeMo read all {len(seen)} samples from {shards} shards written by nest-train tar")
