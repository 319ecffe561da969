#!/usr/bin/env bash
# The device check, for a machine with an NVIDIA GPU and no Swift (about 5 minutes on one H200):
# unpacks the release bundle (`make bundle`) and, from it,
#   1. shows that it runs with nothing installed and names the GPU and libraries it finds;
#   2. `gpu-check`: every op of the engine on the GPU against the CPU engine at large random
#      shapes (forward and input gradients), and the device's SGEMM rate;
#   3. 50 steps of Configs/tiny.yaml and of the demo model on the GPU and on the CPU: per-step
#      loss within 1e-4 (relative);
#   4. a run killed inside its first checkpoint write on the GPU, resumed: bit-identical rows;
#   5. the GPU's last checkpoint scored on the CPU (`validate`) against the GPU's own row;
#   6. step benchmarks (large and XL at 4 × 10 s, XL at 16 and 64 × 10 s) with the efficiency
#      against the device's SGEMM, the data loader's audio-s/s on the host cores, and where an
#      XL step's GPU time goes, kernel by kernel (NEST_TRAIN_GPU_PROFILE).
# One JSON report (gpu-check.json), the benchmark lines (bench.jsonl) and a log land in $OUT (or ./out).
#
#   Tests/Device/run.sh dist/nest-train-<version>-linux-x86_64.tar.gz [tiny-corpus-folder]
#
# STEPS (50) shortens the training comparisons and BENCH=0 leaves out the step benchmarks: how the
# script itself is tried without a GPU (NEST_TRAIN_CUDA_RUNTIME=host-emulation, where gpu-check
# and info --device fail for want of a driver and everything else runs on the kernels' emulation).
set -uo pipefail
steps=${STEPS:-50}
bundle_tar=${1:?usage: run.sh BUNDLE.tar.gz [Data/generated/tiny]}
corpus=$(cd "${2:-Data/generated/tiny}" 2>/dev/null && pwd)
out=${OUT:-$PWD/out}
mkdir -p "$out"
work=$(mktemp -d)
tar -xzf "$bundle_tar" -C "$work"
bin=$(echo "$work"/nest-train-*/bin/nest-train)
configs=$(dirname "$bin")/../Configs
export NEST_TRAIN_KERNEL_CACHE="$work/kernel-cache"
status=0
step() { echo "== $*"; "$@" || { echo "FAILED ($?): $*"; status=1; return 1; }; }

# Per-step losses of two runs (metrics.jsonl) within a relative tolerance, or equal rows.
compare_runs() {
  python3 - "$@" <<'PY'
import json, re, sys
a, b, how = sys.argv[1], sys.argv[2], sys.argv[3]
def rows(path):
    out = []
    for line in open(path):
        row = json.loads(line)
        for key in ("step_seconds", "data_wait_seconds", "comm_seconds", "exposed_comm_seconds", "time", "audio_seconds_per_second"):
            row.pop(key, None)
        out.append(row)
    return out
ra, rb = rows(a), rows(b)
if how == "equal":
    same = ra == rb
    print(f"rows equal: {same} ({len(ra)} and {len(rb)} rows)")
    sys.exit(0 if same else 1)
tolerance = float(how)
la = [r["loss"] for r in ra if "loss" in r and "val_loss" not in r]
lb = [r["loss"] for r in rb if "loss" in r and "val_loss" not in r]
worst = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(la, lb)) if la else float("inf")
print(f"{len(la)} and {len(lb)} steps; worst relative loss difference {worst:.2e} (tolerance {tolerance:.0e})")
sys.exit(0 if len(la) == len(lb) and la and worst <= tolerance else 1)
PY
}

{
  echo "== host: $(uname -srm), $(ldd --version | head -1), $(nproc) cores"
  command -v swift >/dev/null && echo "swift is installed here" || echo "no swift on this machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  echo "== libraries the binary resolves (none may be 'not found'):"
  ldd "$bin" | grep -E "not found|$work" | sed "s|$work|<bundle>|" ; ! ldd "$bin" | grep -q "not found" || status=1
  step "$bin" info
  if ! step "$bin" info --device cuda; then
    echo "python3: $(command -v python3)"; find /opt /usr/local /usr/lib -maxdepth 8 \( -name 'libnvrtc.so.1*' -o -name 'libcublas.so.1*' -o -name 'libcuda.so.1' \) 2>/dev/null | head
  fi
  step timeout 300 "$bin" gpu-check --device cuda --json "$out/gpu-check.json"
  # The kernel cache: a second run loads cubins instead of compiling.
  step timeout 120 "$bin" gpu-check --device cuda --gemm-size 2048 >/dev/null

  if [ -d "$corpus" ]; then
    runs=$(mktemp -d)
    # The tiny corpus (7 utterances: batches of 4) for every config; the demo config's noise manifest is not in the bundle.
    data=("model.train_ds.manifest_filepath=$corpus/train_manifest.json" "model.validation_ds.manifest_filepath=$corpus/dev_manifest.json"
          "model.train_ds.noise_manifest=null" "model.validation_ds.noise_manifest=null" "model.train_ds.batch_size=4"
          "++trainer.log_every_n_steps=1")
    for config in tiny demo; do
      for device in cpu gpu; do
        step timeout 300 "$bin" --config "$configs/$config.yaml" "${data[@]}" "exp_manager.exp_dir=$runs/$device" trainer.max_steps=$steps \
          ++trainer.accelerator=$device trainer.val_check_interval=$((steps / 2)) > "$runs/$config-$device.log" 2>&1
        grep -E "device:|step $steps/|peak device|error" "$runs/$config-$device.log"
      done
      run=$(basename "$(ls -d "$runs"/cpu/*/ | grep -i "$config" | head -1)")
      step compare_runs "$runs/cpu/$run/metrics.jsonl" "$runs/gpu/$run/metrics.jsonl" 1e-4
    done
    # Killed inside the first checkpoint write on the GPU (step 4), resumed: the uninterrupted GPU run.
    NEST_FAILPOINT=checkpoint-mid-write "$bin" --config "$configs/tiny.yaml" "${data[@]}" "exp_manager.exp_dir=$runs/killed" \
      trainer.max_steps=$steps ++trainer.accelerator=gpu trainer.val_check_interval=$((steps / 2)) >/dev/null 2>&1
    echo "== killed run exited with $? (137 or 9: SIGKILL)"
    step "$bin" --config "$configs/tiny.yaml" "${data[@]}" "exp_manager.exp_dir=$runs/killed" trainer.max_steps=$steps \
      ++trainer.accelerator=gpu trainer.val_check_interval=$((steps / 2)) > "$runs/resumed.log" 2>&1
    grep -E "resumed|error" "$runs/resumed.log"
    step compare_runs "$runs/gpu/NEST-tiny/metrics.jsonl" "$runs/killed/NEST-tiny/metrics.jsonl" equal
    # The GPU's checkpoint scored on the CPU: its validation row as the GPU computed it.
    echo "== GPU checkpoint on the CPU"
    "$bin" validate --config "$configs/tiny.yaml" --checkpoint "$runs/gpu/NEST-tiny/checkpoints/step-$(printf %08d "$steps").h5" "${data[@]}" \
      > "$out/validate-on-cpu.json"; cat "$out/validate-on-cpu.json"
    grep val_loss "$runs/gpu/NEST-tiny/metrics.jsonl" | tail -1 | tee "$out/validate-on-gpu.json"
    step python3 -c "
import json, sys
a, b = json.load(open('$out/validate-on-cpu.json')), json.load(open('$out/validate-on-gpu.json'))
d = abs(a['val_loss'] - b['val_loss']) / abs(b['val_loss'])
print(f'val_loss CPU {a[\"val_loss\"]:.6f} GPU {b[\"val_loss\"]:.6f}: relative difference {d:.2e}'); sys.exit(0 if d <= 1e-4 else 1)"
    echo "== data loader on the host cores"
    for threads in 4 8 16; do
      "$bin" bench --config "$configs/demo.yaml" --mode loader --steps 20 --threads $threads "${data[@]}" | tee -a "$out/bench.jsonl"
    done
  else
    echo "no tiny corpus at $corpus: training checks skipped"; status=1
  fi

  [ "${BENCH:-1}" = 0 ] || echo "== step benchmarks on the GPU"
  [ "${BENCH:-1}" = 0 ] || for run in "large.yaml --batch 4" "xl.yaml --batch 4" "xl.yaml --batch 16" "xl.yaml --batch 64"; do
    set -- $run
    timeout 240 "$bin" bench --config "$configs/$1" --mode train "${@:2}" --seconds 10 --steps 3 --warmup 1 --device cuda \
      | tee -a "$out/bench.jsonl" || echo "bench $run did not finish"
  done
  if [ "${BENCH:-1}" != 0 ]; then
    echo "== where an XL step's GPU time goes (each kernel timed alone)"
    NEST_TRAIN_GPU_PROFILE=1 timeout 240 "$bin" bench --config "$configs/xl.yaml" --mode train --batch 16 --seconds 10 --steps 1 --warmup 1 \
      --device cuda > "$out/xl-profile.json" 2> "$out/xl-profile.log" || echo "profiled bench did not finish"
    grep -A26 "time by kernel" "$out/xl-profile.log"
  fi
  echo "== device check finished with status $status"
  exit $status
} 2>&1 | tee "$out/device-check.log"
exit "${PIPESTATUS[0]}"
