#!/usr/bin/env bash
# The release bundle on a bare machine: a root that holds the bundle, the tiny corpus and
# nothing but the C runtime it leaves to the system (the loader, glibc, libstdc++, libgcc_s),
# entered with chroot (needs root). Checks `info`, two training steps that write a checkpoint,
# and the clear refusal when a launcher starts it on a machine without Open MPI.
#
#   Tests/Bundle/bare-root.sh dist/nest-train-<version>-linux-x86_64.tar.gz Data/generated/tiny
set -euo pipefail
bundle=$1 corpus=$2
root=$(mktemp -d)
# /proc as every machine has it (the loader reads /proc/self/exe to expand the bundle's
# $ORIGIN rpath); the root is removed only once nothing is mounted in it.
cleanup() { if mountpoint -q "$root/proc"; then umount "$root/proc" || return; fi; rm -rf "$root"; }
trap cleanup EXIT
mkdir -p "$root/proc" && mount -t proc proc "$root/proc"
tar -C "$root" -xzf "$bundle"
binary=$(ls "$root"/nest-train-*/bin/nest-train)
inside=${binary#"$root"}
folder=$(dirname "$(dirname "$inside")")

# The system's part of what the binary loads: exactly what `make bundle` leaves out of lib/.
for lib in $(LD_LIBRARY_PATH="$(dirname "$binary")/../lib" ldd "$binary" | grep -oE '/[^ ]+' | grep -E '/(ld-linux[^/]*|lib(c|m|dl|pthread|rt|resolv|stdc\+\+|gcc_s)\.so[^/]*)$'); do
  mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
done
mkdir -p "$root/work" "$root/tmp" && cp -r "$corpus" "$root/work/corpus"

run() { chroot "$root" "$inside" "$@"; }
fail() { echo "bare-root: $*" >&2; exit 1; }

out=$(run info 2>&1) || fail "info failed: $out"
grep -q "machine:" <<<"$out" || fail "info printed no machine line: $out"
echo "bare-root: info ok"

log=$(run --config "$folder/Configs/tiny.yaml" exp_manager.exp_dir=/work/runs trainer.max_steps=2 \
      exp_manager.checkpoint_callback_params.every_n_train_steps=2 \
      model.train_ds.manifest_filepath=/work/corpus/train_manifest.json \
      model.validation_ds.manifest_filepath=/work/corpus/dev_manifest.json 2>&1) || fail "training failed: $log"
test -s "$root/work/runs/NEST-tiny/checkpoints/step-00000002.h5" || fail "no checkpoint after 2 steps: $log"
echo "bare-root: 2 training steps and a checkpoint ok"

if mpi=$(PMI_SIZE=2 PMI_RANK=0 run info --config "$folder/Configs/tiny.yaml" 2>&1 && PMI_SIZE=2 PMI_RANK=0 run --config "$folder/Configs/tiny.yaml" \
      exp_manager.exp_dir=/work/mpi model.train_ds.manifest_filepath=/work/corpus/train_manifest.json 2>&1); then
  fail "a launched process without Open MPI did not stop: $mpi"
fi
grep -q "Open MPI's library (libmpi.so.40) could not be loaded" <<<"$mpi" || fail "no clear refusal without Open MPI: $mpi"
echo "bare-root: the refusal under a launcher without Open MPI ok: $(grep -o "a launcher started this process.*" <<<"$mpi" | head -c 300)…"
