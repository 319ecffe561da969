#!/usr/bin/env bash
# Side-by-side timing with NeMo itself (needs the venv of `make nemo-venv`): for each case,
# alternates NeMo's reference script and `nest-train bench` (same config, overrides, batch,
# seconds, steps, threads), `ROUNDS` times, and prints both JSON lines plus the median ratios.
# Usage: Tests/Interop/bench_vs_nemo.sh [case ...]   cases: small large xl
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${NEMO_PYTHON:-.venv-nemo/bin/python}
REF=../shared/bench/nemo_reference.py
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
cases=${*:-small large xl}
# Both sides as a user without any OpenBLAS variable gets them (this workplace sets
# OPENBLAS_CORETYPE on some machines); nest-train selects its kernel itself.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
for c in $cases; do
  case $c in
    small) cfg=Configs/large.yaml; set_nemo="encoder.d_model=176 encoder.n_layers=4 encoder.n_heads=4"; batch=4; steps=5 ;;
    large) cfg=Configs/large.yaml; set_nemo=""; batch=4; steps=3 ;;
    xl)    cfg=Configs/xl.yaml;    set_nemo=""; batch=1; steps=3 ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
  ours=$(for kv in $set_nemo; do printf 'model.%s ' "$kv"; done)
  for r in $(seq "$ROUNDS"); do
    $PY $REF --config $cfg ${set_nemo:+--set $set_nemo} --mode train --batch $batch --seconds 10 --steps $steps --warmup 1 --threads $THREADS \
      2>/dev/null > /tmp/nemo-$c-$r.json
    .build/release/nest-train bench --config $cfg --mode train --batch $batch --seconds 10 --steps $steps --warmup 1 --threads $THREADS $ours \
      2>/dev/null > /tmp/ours-$c-$r.json
  done
  python3 - "$c" "$ROUNDS" <<'PY'
import json, statistics, sys
c, rounds = sys.argv[1], int(sys.argv[2])
n = [json.load(open(f"/tmp/nemo-{c}-{r}.json")) for r in range(1, rounds + 1)]
o = [json.load(open(f"/tmp/ours-{c}-{r}.json")) for r in range(1, rounds + 1)]
ns = statistics.median(x["step_s"]["median"] for x in n); os_ = statistics.median(x["step_s"]["median"] for x in o)
nm = max(x["peak_rss_mib"] for x in n); om = max(x["peak_rss_mib"] for x in o)
print(f"{c}: params {o[0]['params']['total']:,} (NeMo {n[0]['params']['total']:,}); step NeMo {ns:.3f} s, nest-train {os_:.3f} s, "
      f"ratio {os_ / ns:.2f}; peak RSS NeMo {nm:.0f} MiB, nest-train {om:.0f} MiB, ratio {om / nm:.2f}; "
      f"nest-train GEMM {o[-1]['gemm_gflops_per_second']} GFLOP/s ({o[-1]['blas_kernel']} kernel), efficiency vs "
      f"{o[-1]['threads']}-thread sgemm {statistics.median(x['efficiency_vs_threads_sgemm'] for x in o)}; losses NeMo {n[-1]['losses'][:2]}, ours {o[-1]['losses'][:2]}")
PY
done
