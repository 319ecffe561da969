#!/usr/bin/env python3
"""Makes the deterministic demo corpus in Data/generated (git-ignored).

Speech: sentences of Lewis Carroll's "Alice's Adventures in Wonderland" (public domain; the
text ships with Debian's flite package) spoken by espeak-ng voice variants with seeded pitch
and speed, and by flite's voices. Some voices are held out for the dev set, so validation
measures generalisation to unseen speakers. espeak-ng writes 22.05 kHz and flite 8/16 kHz,
which exercises the resampler. Noise: sox's white, pink, brown and band-limited noise,
generated with -R (repeatable). Also a tiny corpus for the end-to-end tests.

Every utterance gets a white-noise floor about 66 dB below full scale: espeak's pauses are
otherwise exact digital zeros (17–27 % of its samples), whose log-mel frames all fall on the
same target code. flite's 8 kHz `kal` voice is not used (its empty upper band becomes noise
in the targets). A probe split (flite's training voices, sentences kept apart for probe-train
and probe-test) carries speaker labels and phone timings from `flite -psdur` for
`nest-train probe`.

Output: train_manifest.json, dev_manifest.json, noise_manifest.json (NeMo JSON lines with a
`speaker` label per utterance), probe_{train,test}_manifest.json (plus `phones`:
[[start_s, end_s, phone], ...]), and tiny/{train,dev}_manifest.json.
Usage: python3 Data/make_demo_corpus.py [--out Data/generated] [--tiny-only]
"""
import argparse, hashlib, json, os, random, re, subprocess, sys, wave

ALICE = "/usr/share/doc/flite/examples/alice"
ESPEAK_LANGS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp"]
TRAIN_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3"]
DEV_VARIANTS = ["m7", "f4"]            # held out: never heard in training
TRAIN_FLITE = ["awb", "kal16"]
DEV_FLITE = ["slt", "rms"]


def sentences():
    text = open(ALICE, encoding="latin-1").read()
    text = re.sub(r"[`'_*\"]", "", text)
    text = re.sub(r"\s+", " ", text)
    out = []
    for s in re.split(r"(?<=[.!?;:])\s+", text):
        words = s.split()
        while len(words) > 30:                 # keep utterances under ~12 s
            out.append(" ".join(words[:22])); words = words[22:]
        sentence = re.sub(r"^[^A-Za-z0-9]+", "", " ".join(words))   # a leading "-" reads as an option
        if len(sentence.split()) >= 5 and re.search(r"[a-z]", sentence):
            out.append(sentence)
    return out


def duration(path):
    with wave.open(path) as w:
        return w.getnframes() / w.getframerate()


def speak(path, text, voice, rng):
    """Speaks `text` into `path`; returns flite's phone segments [[start, end, phone], ...]
    (None for espeak)."""
    kind, name = voice
    if kind == "espeak":
        pitch, speed = rng.randint(30, 70), rng.randint(135, 185)
        cmd = ["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(speed), "-w", path, text]
    else:
        cmd = ["flite", "-voice", name, "-psdur", "-t", text, "-o", path]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    add_noise_floor(path)
    if kind == "espeak":
        return None
    segments, start = [], 0.0
    for token in out.split():
        phone, _, end = token.rpartition(":")
        segments.append([round(start, 3), float(end), phone])
        start = float(end)
    return segments


def add_noise_floor(path):
    """Mixes white noise about 66 dB below full scale into `path` (sox, repeatable with -R)."""
    with wave.open(path) as w:
        rate, seconds = w.getframerate(), w.getnframes() / w.getframerate()
    noise, mixed = path + ".noise.wav", path + ".mixed.wav"
    subprocess.run(["sox", "-R", "-n", "-r", str(rate), "-b", "16", "-c", "1", noise, "synth", f"{seconds:.6f}", "whitenoise", "vol", "0.0005"], check=True)
    subprocess.run(["sox", "-R", "-D", "-m", "-v", "1", path, "-v", "1", noise, mixed], check=True)
    os.replace(mixed, path)
    os.remove(noise)


def voices(langs, variants, flites):
    return [("espeak", f"{l}+{v}") for l in langs for v in variants] + [("flite", f) for f in flites]


def make_split(out_dir, name, texts, voice_list, seed, min_dur=1.0, max_dur=12.0, phones=False):
    rng = random.Random(seed)
    audio_dir = os.path.join(out_dir, name)
    os.makedirs(audio_dir, exist_ok=True)
    lines = []
    for i, text in enumerate(texts):
        voice = voice_list[rng.randrange(len(voice_list))]
        rel = f"{name}/{i:05d}.wav"
        path = os.path.join(out_dir, rel)
        segments = speak(path, text, voice, rng)
        d = duration(path)
        if not (min_dur <= d <= max_dur):
            os.remove(path); continue
        line = {"audio_filepath": rel, "duration": round(d, 4), "text": text, "speaker": voice[1]}
        if phones:
            line["phones"] = segments
        lines.append(line)
    with open(os.path.join(out_dir, f"{name}_manifest.json"), "w") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")
    return sum(l["duration"] for l in lines), len(lines)


def make_noise(out_dir):
    os.makedirs(os.path.join(out_dir, "noise"), exist_ok=True)
    kinds = [("white", ["whitenoise"]), ("pink", ["pinknoise"]), ("brown", ["brownnoise"]),
             ("band-300-3000", ["whitenoise", "sinc", "300-3000"]), ("band-2000-6000", ["pinknoise", "sinc", "2000-6000"])]
    lines = []
    for name, effect in kinds:
        for k in range(2):
            rel = f"noise/{name}-{k}.wav"
            synth = effect[:1]
            rest = effect[1:]
            # -R: repeatable random numbers; -D: no dither when writing 16-bit samples.
            subprocess.run(["sox", "-R", "-D", "-n", "-r", "16000", "-b", "16", os.path.join(out_dir, rel),
                            "synth", "8", *synth, *rest, "vol", str(0.2 + 0.1 * k)], check=True)
            lines.append({"audio_filepath": rel, "duration": 8.0})
    with open(os.path.join(out_dir, "noise_manifest.json"), "w") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))
    ap.add_argument("--tiny-only", action="store_true")
    args = ap.parse_args()
    stamp_value = hashlib.sha256(open(__file__, "rb").read()).hexdigest() + ("-tiny" if args.tiny_only else "")
    stamp = os.path.join(args.out, ".complete" + ("-tiny" if args.tiny_only else ""))
    if os.path.exists(stamp) and open(stamp).read() == stamp_value:
        print(f"demo corpus already complete in {args.out}")
        return
    os.makedirs(args.out, exist_ok=True)
    texts = sentences()
    tiny = os.path.join(args.out, "tiny")
    short = [t for t in texts if 5 <= len(t.split()) <= 9]
    make_split(tiny, "train", short[:8], voices(ESPEAK_LANGS[:2], TRAIN_VARIANTS[:3], []), 11, max_dur=4.0)
    make_split(tiny, "dev", short[8:12], voices(ESPEAK_LANGS[:1], DEV_VARIANTS, []), 12, max_dur=4.0)
    if not args.tiny_only:
        rng = random.Random(7)
        dev_texts = rng.sample(texts, 90)
        # Every sentence once, and every other one again in another voice: about 30 minutes.
        train_s, train_n = make_split(args.out, "train", texts + texts[::2], voices(ESPEAK_LANGS, TRAIN_VARIANTS, TRAIN_FLITE), 1)
        dev_s, dev_n = make_split(args.out, "dev", dev_texts, voices(ESPEAK_LANGS, DEV_VARIANTS, DEV_FLITE), 2)
        # Probe split: training voices with phone timings, disjoint sentences for train and test.
        probe_texts = random.Random(9).sample(texts, 240)
        make_split(args.out, "probe_train", probe_texts[:160], voices([], [], TRAIN_FLITE), 3, phones=True)
        make_split(args.out, "probe_test", probe_texts[160:], voices([], [], TRAIN_FLITE), 4, phones=True)
        make_noise(args.out)
        print(f"train: {train_n} utterances, {train_s / 60:.1f} min; dev: {dev_n} utterances, {dev_s / 60:.1f} min "
              f"(held-out voices); noise: 10 clips")
    open(stamp, "w").write(stamp_value)
    print(f"demo corpus in {args.out}")


if __name__ == "__main__":
    sys.exit(main())
