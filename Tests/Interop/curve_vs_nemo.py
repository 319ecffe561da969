"""Same recipe, same data: nest-train's validation curve against NeMo's own, over several seeds.

Run with the NeMo venv's Python from the repository root after `make demo` made the corpus
(`make curve-vs-nemo` does both). Per seed s:

1. nest-train trains `--config` (Configs/demo.yaml by default) with seed s for --steps steps,
   validating every --val-every steps (metrics.jsonl).
2. `nest-train export --config … seed=s --format nemo` writes that run's step-0 weights, and
   NeMo 3.0.0 restores them (`EncDecDenoiseMaskedTokenPredModel.restore_from`) and trains with
   Lightning's Trainer on the CPU: the same yaml (optimizer, Noam schedule, clipping, batch
   size), the same train manifest, the same number of steps, torch's generators seeded with s
   (`seed_everything`), saving a .nemo every --val-every steps.
3. Every NeMo .nemo is scored by `nest-train validate`, the function nest-train's own trainer
   validates with: the same validation batches, the same fixed masks (mask_draws per
   utterance, from seed s), eval mode, and the same baselines (prior accuracy, target entropy)
   from the same frozen quantizer. nest-train's forward is NeMo's to float tolerance (the
   parity tests), so this is NeMo's model evaluated as nest-train evaluates its own.

Both systems get `noise_manifest: null`: with a noise manifest and no batch augmentor NeMo adds
the raw noise clip to every utterance (spec section 3.2), which nest-train deliberately does
not (spec 3.5's quirks); the demo recipe has no augmentation, so neither does this comparison.

Then the final encoders of both systems are probed (`nest-train probe`, phones and speaker,
beside random-init and log-mel), and the results go to OUT/curve.json, OUT/curve.svg and
OUT/curve.md (the tables for BENCHMARKS.md).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import curve_stats  # noqa: E402

NEST_ONLY_DATA_KEYS = ("skip_bad_audio", "mask_draws")


def run(cmd, log):
    """Runs a command, its output appended to `log`; returns stdout; raises with the log's tail on failure."""
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True)
        f.write(p.stdout)
    if p.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{tail}")
    return p.stdout


def overrides(args, seed):
    return [f"seed={seed}", "model.train_ds.noise_manifest=null", "model.validation_ds.noise_manifest=null"] + args.override


def nest_train_run(args, seed, out, log):
    folder = os.path.join(out, "nest-train", f"seed-{seed}")
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [args.nest_train, "--config", args.config, "--fresh", f"exp_manager.exp_dir={folder}", f"trainer.max_steps={args.steps}",
           f"trainer.val_check_interval={args.val_every}", f"exp_manager.checkpoint_callback_params.every_n_train_steps={args.steps}",
           "--threads", str(args.threads)] + overrides(args, seed)
    checkpoint = run(cmd, log).strip().splitlines()[-1]
    metrics = [json.loads(line) for line in open(os.path.join(os.path.dirname(os.path.dirname(checkpoint)), "metrics.jsonl"))]
    return checkpoint, {m["step"]: m for m in metrics if "val_loss" in m}


def nemo_train_run(args, seed, out, log):
    folder = os.path.join(out, "nemo", f"seed-{seed}")
    os.makedirs(folder, exist_ok=True)
    init = os.path.join(folder, "step-0.nemo")
    saved = [os.path.join(folder, f"step-{step}.nemo") for step in range(0, args.steps + 1, args.val_every)]
    if args.reuse_nemo and all(os.path.exists(p) for p in saved):
        print(f"seed {seed}: NeMo's checkpoints of an earlier run reused (--reuse-nemo)", flush=True)
    else:
        run([args.nest_train, "export", "--config", args.config, "--format", "nemo", "--output", init] + overrides(args, seed), log)
        run([sys.executable, os.path.abspath(__file__), "--nemo-train", "--seed", str(seed), "--init", init, "--out", folder,
             "--config", args.config, "--steps", str(args.steps), "--val-every", str(args.val_every), "--threads", str(args.threads)]
            + sum((["--override", o] for o in args.override), []), log)
    scores = {}
    for step in range(0, args.steps + 1, args.val_every):
        nemo = os.path.join(folder, f"step-{step}.nemo")
        line = run([args.nest_train, "validate", "--config", args.config, "--nemo", nemo] + overrides(args, seed), log).strip().splitlines()[-1]
        scores[step] = json.loads(line)
    return os.path.join(folder, f"step-{args.steps}.nemo"), scores


def nemo_train(args):
    """One NeMo training run (a process of its own, so that every seed starts clean)."""
    import lightning.pytorch as pl
    import torch
    from omegaconf import OmegaConf, open_dict
    from nemo.collections.asr.models.ssl_models import EncDecDenoiseMaskedTokenPredModel

    torch.set_num_threads(args.threads)
    pl.seed_everything(args.seed, workers=True)
    cfg = OmegaConf.load(args.config)
    cfg.merge_with_dotlist([o for o in overrides(args, args.seed) if not o.startswith("seed=")])
    OmegaConf.resolve(cfg)
    model = EncDecDenoiseMaskedTokenPredModel.restore_from(args.init, map_location="cpu")
    train_ds = cfg.model.train_ds
    with open_dict(train_ds):
        for key in NEST_ONLY_DATA_KEYS:
            train_ds.pop(key, None)
        # NeMo 3.0.0 tests for the key, not its value: `batch_augmentor: null` fails in
        # Serialization.from_config_dict(None). Absent means none, as null means to nest-train.
        if train_ds.get("batch_augmentor", None) is None:
            train_ds.pop("batch_augmentor", None)
        train_ds.num_workers = 0

    class SaveEvery(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            step = trainer.global_step
            if step % args.val_every == 0 and not os.path.exists(os.path.join(args.out, f"step-{step}.nemo")):
                module.save_to(os.path.join(args.out, f"step-{step}.nemo"))

    trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", devices=1, precision=32, logger=False, enable_checkpointing=False,
                         gradient_clip_val=cfg.trainer.gradient_clip_val, accumulate_grad_batches=cfg.trainer.accumulate_grad_batches,
                         limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[SaveEvery()])
    model.set_trainer(trainer)
    model.setup_training_data(train_ds)
    model.setup_optimization(cfg.model.optim)
    started = time.time()
    trainer.fit(model)
    print(json.dumps({"seed": args.seed, "steps": trainer.global_step, "seconds": round(time.time() - started, 1)}))


def probe(args, encoder, log):
    results = []
    for task in (["--label", "phones", "--pool", "none"], ["--label", "speaker", "--pool", "mean"]):
        line = run([args.nest_train, "probe", *encoder, "--train", "Data/generated/probe_train_manifest.json",
                    "--test", "Data/generated/probe_test_manifest.json", *task, "--json"], log).strip().splitlines()[-1]
        results.append(json.loads(line))
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="Configs/demo.yaml")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="Checkpoints/curve-vs-nemo")
    p.add_argument("--nest-train", default=".build/release/nest-train")
    p.add_argument("--override", action="append", default=[], help="an override for both systems (repeatable)")
    p.add_argument("--reuse-nemo", action="store_true", help="score NeMo's checkpoints of an earlier run in --out instead of training again "
                   "(after a change to nest-train only)")
    p.add_argument("--nemo-train", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--init", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.nemo_train:
        return nemo_train(args)

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "log.txt")
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {"config": args.config, "steps": args.steps, "val_every": args.val_every, "seeds": seeds, "runs": {}}
    started = time.time()
    for seed in seeds:
        t = time.time()
        nest_checkpoint, nest_scores = nest_train_run(args, seed, out, log)
        t_nest = time.time() - t
        t = time.time()
        nemo_final, nemo_scores = nemo_train_run(args, seed, out, log)
        t_nemo = time.time() - t
        results["runs"][seed] = {"nest-train": nest_scores, "nemo": nemo_scores, "nest_checkpoint": nest_checkpoint,
                                 "nemo_final": nemo_final, "seconds": {"nest-train": round(t_nest), "nemo": round(t_nemo)}}
        print(f"seed {seed}: nest-train {t_nest:.0f} s, NeMo {t_nemo:.0f} s (with scoring)", flush=True)
    last = seeds[-1]
    results["probes"] = {
        "nest-train": probe(args, ["--checkpoint", results["runs"][last]["nest_checkpoint"], "--config", args.config], log),
        "nemo": probe(args, ["--nemo", results["runs"][last]["nemo_final"]], log),
        "random-init": probe(args, ["--config", args.config, "--random-init"], log),
        "log-mel": probe(args, ["--config", args.config, "--log-mel"], log),
    }
    results["seconds"] = round(time.time() - started)
    json.dump(results, open(os.path.join(out, "curve.json"), "w"), indent=1)
    report(results, out)


def curves(results, system, key):
    return {seed: {int(step): row[key] for step, row in run[system].items()} for seed, run in results["runs"].items()}


def report(results, out):
    loss = (curves(results, "nest-train", "val_loss"), curves(results, "nemo", "val_loss"))
    acc = (curves(results, "nest-train", "val_masked_acc"), curves(results, "nemo", "val_masked_acc"))
    # The baselines depend on each seed's targets (its quantizer and masks): their mean over seeds.
    def mean_over_seeds(key):
        runs = curves(results, "nest-train", key)
        return {step: sum(run[step] for run in runs.values()) / len(runs) for step in curve_stats.common_steps(runs)}
    entropy, prior = mean_over_seeds("val_target_entropy"), mean_over_seeds("val_prior_acc")
    panels = [
        {"title": "validation loss (masked tokens)", "systems": [("nest-train", "#1f77b4", loss[0]), ("NeMo 3.0.0", "#d62728", loss[1])],
         "baseline": ("target entropy (mean of the seeds)", entropy)},
        {"title": "validation masked accuracy", "systems": [("nest-train", "#1f77b4", acc[0]), ("NeMo 3.0.0", "#d62728", acc[1])],
         "baseline": ("prior accuracy (mean of the seeds)", prior)},
    ]
    open(os.path.join(out, "curve.svg"), "w").write(
        curve_stats.svg(panels, f"{results['config']}, {len(results['seeds'])} seeds each, same initial weights, data and validation masks"))
    md = ["### validation loss", curve_stats.markdown_table(curve_stats.compare(*loss), "val_loss"), "",
          "### validation masked accuracy", curve_stats.markdown_table(curve_stats.compare(*acc), "val_masked_acc"), "",
          "### probes (final encoders of the last seed)", "| encoder | task | accuracy | majority |", "| --- | --- | --- | --- |"]
    for name, rows in results["probes"].items():
        for r in rows:
            md.append(f"| {name} | {r['label']} | {r['accuracy']:.3f} | {r['majority_accuracy']:.3f} |")
    open(os.path.join(out, "curve.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
