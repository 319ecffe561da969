#!/usr/bin/env bash
# The device check, for a machine with an NVIDIA GPU and no Swift: unpacks the release bundle
# (`make bundle`), shows that it runs there with nothing installed, checks every CUDA kernel and
# cuBLAS against the CPU engine (`nest-train gpu-check`), times the device's SGEMM, and trains
# the tiny config on the CPU from the bundle. One JSON report and a log land in $OUT (or ./out).
#
#   Tests/Device/run.sh dist/nest-train-<version>-linux-x86_64.tar.gz [tiny-corpus-folder]
set -uo pipefail
bundle_tar=${1:?usage: run.sh BUNDLE.tar.gz [Data/generated/tiny]}
corpus=${2:-Data/generated/tiny}
out=${OUT:-$PWD/out}
mkdir -p "$out"
work=$(mktemp -d)
tar -xzf "$bundle_tar" -C "$work"
bin=$(echo "$work"/nest-train-*/bin/nest-train)
export NEST_TRAIN_KERNEL_CACHE="$work/kernel-cache"
status=0
step() { echo "== $*"; "$@" || { echo "FAILED ($?): $*"; status=1; return 1; }; }

{
  echo "== host: $(uname -srm), $(ldd --version | head -1)"
  command -v swift >/dev/null && echo "swift is installed here" || echo "no swift on this machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  echo "== libraries the binary resolves (none may be 'not found'):"
  ldd "$bin" | grep -E "not found|$work" | sed "s|$work|<bundle>|" ; ! ldd "$bin" | grep -q "not found" || status=1
  step "$bin" info
  if ! step "$bin" info --device cuda; then
    echo "python3: $(command -v python3)"; find /opt /usr/local /usr/lib -maxdepth 8 \( -name 'libnvrtc.so.1*' -o -name 'libcublas.so.1*' -o -name 'libcuda.so.1' \) 2>/dev/null | head
  fi
  step "$bin" gpu-check --device cuda --json "$out/gpu-check.json"
  # The kernel cache: a second run loads cubins instead of compiling.
  step "$bin" gpu-check --device cuda --gemm-size 2048
  if [ -d "$corpus" ]; then
    runs=$(mktemp -d)
    step "$bin" --config "$(dirname "$bin")/../Configs/tiny.yaml" "model.train_ds.manifest_filepath=$corpus/train_manifest.json" \
      "model.validation_ds.manifest_filepath=$corpus/dev_manifest.json" "exp_manager.exp_dir=$runs" trainer.max_steps=20
    tail -n 2 "$runs"/NEST-tiny/metrics.jsonl
  else
    echo "no tiny corpus at $corpus: CPU training from the bundle skipped"; status=1
  fi
  echo "== device check finished with status $status"
} 2>&1 | tee "$out/device-check.log"
exit "${PIPESTATUS[0]}"
