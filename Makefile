# nest-train: every entry point a user or CI needs. `make demo` and `make test` are the two
# commands the README gives a new user; both install what is missing first.

SWIFT ?= swift
RELEASE = $(SWIFT) build -c release
# Debian packages the build, the tests and the demo corpus need.
APT_PACKAGES = libopenblas-dev libfftw3-dev libsndfile1-dev libhdf5-dev libsoxr-dev zlib1g-dev pkg-config \
               openmpi-bin espeak-ng flite sox
# mpirun as this project's tests and benchmarks run it: as root when we are root (containers,
# CI), over shared memory without probing for fabrics.
MPIRUN = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1 mpirun

.PHONY: setup nvrtc bundle gpu-check build test test-fast test-bundle bench bench-vs-nemo bench-bf16 bench-kernels demo data clean nemo-venv check-nemo check-nemo-tarred check-tensorboard curve-vs-nemo

## Install missing system packages (idempotent; runs apt-get only when something is missing).
setup:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: setup
	$(RELEASE)

## NVRTC from PyPI (no GPU or driver needed) for the tests that compile every CUDA kernel.
NVRTC_DIR = .build/nvrtc
nvrtc:
	@test -e $(NVRTC_DIR)/nvidia/cu13/lib/libnvrtc.so.13 || python3 -m pip install -q --disable-pip-version-check --target $(NVRTC_DIR) "nvidia-cuda-nvrtc==13.0.88"

## A release bundle for x86-64 Linux machines without Swift (glibc >= 2.36): the binary with the
## Swift runtime linked in, the Debian libraries it loads under lib/ (found through RPATH
## $ORIGIN/../lib; glibc, libstdc++ and libgcc_s are the system's), the configs, the README and docs/.
## CUDA is never bundled: the binary loads the user's driver, NVRTC and cuBLAS at run time.
VERSION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
BUNDLE = nest-train-$(VERSION)-linux-x86_64
bundle: setup
	$(SWIFT) build -c release --product nest-train --scratch-path .build-bundle --static-swift-stdlib \
	  -Xlinker -rpath -Xlinker '$$ORIGIN/../lib' -Xlinker --disable-new-dtags
	rm -rf dist/$(BUNDLE) && mkdir -p dist/$(BUNDLE)/bin dist/$(BUNDLE)/lib
	cp .build-bundle/release/nest-train dist/$(BUNDLE)/bin/ && strip dist/$(BUNDLE)/bin/nest-train
	ldd dist/$(BUNDLE)/bin/nest-train | awk '/=> \// {print $$3}' \
	  | grep -vE '/(libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s)\.so' | xargs -I{} cp -L {} dist/$(BUNDLE)/lib/
	cp -r Configs README.md docs Tests/Device/run.sh dist/$(BUNDLE)/
	tar -C dist -czf dist/$(BUNDLE).tar.gz $(BUNDLE)
	@echo "dist/$(BUNDLE).tar.gz: $$(du -h dist/$(BUNDLE).tar.gz | cut -f1)"

## The device check, on a machine with an NVIDIA GPU (no Swift needed): see Tests/Device/run.sh.
gpu-check: bundle
	Tests/Device/run.sh dist/$(BUNDLE).tar.gz

## All tests, in release mode (the parity and end-to-end tests are too slow in debug).
## OPENBLAS_NUM_THREADS=1: nest-train runs OpenBLAS single-threaded anyway (GEMM.swift), and
## without OpenBLAS's worker pool its exit-time shutdown cannot deadlock the test runner.
## OPENBLAS_CORETYPE: the test runner gets the kernel nest-train selects for this CPU (the
## executables restart themselves with it; the runner cannot), unless the caller set one.
## Every test on the CPU, then again on the checking device (Sources/Tensor/Backend/CheckingBackend.swift:
## the CPU's kernels over memory of its own, reached only through explicit copies), which proves
## the backend seam without a GPU. The second pass leaves out the CUDA tests and the GPU training
## tests (their devices are the CUDA backend's own, on the host emulation of its kernels)
## and the random-SIGKILL loop (25 kills) (its resume path is covered by the other resume tests).
TEST_ENV = NEST_TRAIN_CUDA_LIBS=$(NVRTC_DIR)/nvidia/cu13/lib OPENBLAS_NUM_THREADS=1 \
	OPENBLAS_CORETYPE="$${OPENBLAS_CORETYPE:-$$(.build/release/nest-train info --blas-kernel)}"
## Then the release bundle in a root holding only the C runtime (Tests/Bundle/bare-root.sh).
test: setup nvrtc
	$(SWIFT) build -c release --build-tests
	python3 Tests/Interop/test_curve_stats.py
	$(TEST_ENV) $(SWIFT) test -c release --skip-build --disable-swift-testing
	$(TEST_ENV) NEST_TRAIN_BACKEND=checking $(SWIFT) test -c release --skip-build --disable-swift-testing \
	  --skip CUDATests --skip GPUTrainingTests --skip ReliabilityTests.testRandomSIGKILLsThenResumeEqualsUninterrupted
	$(MAKE) test-bundle

## The inner loop's tier, about a minute after the build on 2 cores: every test on the CPU but
## the long end-to-end suites (GPU training on the emulation, the recipes at full size, the
## fuzzers, mpirun, the kill loops, NeMo imports, hostile inputs), which `make test` runs.
FAST_SKIP = GPUTrainingTests NeMoRecipeTests ReaderFuzzTests DataParallelTests ReliabilityTests NemoImportTests HostileInputTests
test-fast: setup nvrtc
	$(SWIFT) build -c release --build-tests
	$(TEST_ENV) $(SWIFT) test -c release --skip-build --disable-swift-testing $(addprefix --skip ,$(FAST_SKIP))

## The bundle on a bare machine: info, 2 training steps and a checkpoint, and the refusal under a
## launcher without Open MPI, in a chroot holding only the loader, glibc, libstdc++ and libgcc_s.
test-bundle: bundle
	python3 Data/make_demo_corpus.py --tiny-only
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) Tests/Bundle/bare-root.sh dist/$(BUNDLE).tar.gz Data/generated/tiny

## Engine micro-benchmarks, whole training steps (large 4 × 10 s, XL 1 × 10 s) and the data
## loader on the demo corpus (release build); figures go to BENCHMARKS.md by hand.
bench: build data
	$(RELEASE) --product nest-bench
	.build/release/nest-bench
	.build/release/nest-train bench --config Configs/large.yaml --mode train --batch 4 --seconds 10 --steps 3
	.build/release/nest-train bench --config Configs/xl.yaml --mode train --batch 1 --seconds 10 --steps 3
	.build/release/nest-train bench --config Configs/demo.yaml --mode loader --steps 20
	$(MPIRUN) -np 2 --bind-to core .build/release/nest-train bench --config Configs/large.yaml --mode allreduce --batch 2 --seconds 10 --steps 3 --threads 1

## A bf16 GEMM (oneDNN) against f32 on this CPU, 1 and 2 threads (installs libdnnl-dev; optional).
bench-bf16:
	@dpkg-query -W -f='$${Status}' libdnnl-dev 2>/dev/null | grep -q "ok installed" || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libdnnl-dev >/dev/null; }
	@mkdir -p .build && cc -O2 Tests/Interop/bf16_gemm.c -o .build/bf16_gemm -ldnnl
	@for t in 1 2; do echo "threads $$t"; OMP_NUM_THREADS=$$t .build/bf16_gemm; done

## One core's sgemm rate with each OpenBLAS kernel forced (and OpenBLAS's own choice).
bench-kernels: setup
	@mkdir -p .build && cc -O2 Tests/Interop/sgemm_kernels.c -o .build/sgemm_kernels -lopenblas
	@env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .build/sgemm_kernels
	@for k in Prescott Haswell Zen SkylakeX Cooperlake; do OPENBLAS_CORETYPE=$$k .build/sgemm_kernels; done

## NeMo and nest-train alternately on the same configs (installs NeMo in $(NEMO_VENV) first).
bench-vs-nemo: build nemo-venv
	NEMO_PYTHON=$(NEMO_VENV)/bin/python Tests/Interop/bench_vs_nemo.sh

## The demo corpus in Data/generated (deterministic; skipped when already complete).
data: setup
	python3 Data/make_demo_corpus.py

## The main job on the bundled demo data: build, make data, train (resuming if interrupted),
## checkpoint, export the encoder, extract features for a few dev utterances, probe the
## trained encoder against the same architecture at random initialisation and log-mel.
RUN = Checkpoints/NEST-demo
demo: build data
	@set -e; \
	ckpt=$$(.build/release/nest-train --config Configs/demo.yaml | tail -n 1); \
	.build/release/nest-train export --checkpoint "$$ckpt" --output $(RUN)/encoder.h5; \
	.build/release/nest-train export --checkpoint "$$ckpt" --output $(RUN)/encoder.safetensors --format safetensors; \
	head -n 5 Data/generated/dev_manifest.json > $(RUN)/extract_manifest.json; \
	sed -i 's|"audio_filepath": "|"audio_filepath": "'"$$PWD"'/Data/generated/|' $(RUN)/extract_manifest.json; \
	.build/release/nest-train extract --config Configs/demo.yaml --checkpoint "$$ckpt" --input $(RUN)/extract_manifest.json \
	  --output $(RUN)/features --layers last; \
	for enc in "--checkpoint $$ckpt" --random-init --log-mel; do \
	  for task in "--label phones --pool none" "--label speaker --pool mean"; do \
	    .build/release/nest-train probe --config Configs/demo.yaml $$enc --train Data/generated/probe_train_manifest.json \
	      --test Data/generated/probe_test_manifest.json $$task --json; \
	  done; \
	done > $(RUN)/probe.json; \
	echo; echo "demo finished:"; \
	echo "  checkpoint         $$ckpt"; \
	echo "  metrics            $(RUN)/metrics.jsonl"; \
	echo "  encoder (h5)       $(RUN)/encoder.h5"; \
	echo "  encoder (st)       $(RUN)/encoder.safetensors"; \
	echo "  features           $(RUN)/features (features.json lists them)"; \
	echo "  curves             $(RUN)/curves.svg (TensorBoard: tensorboard --logdir $(RUN))"; \
	python3 Data/validation_summary.py $(RUN)/metrics.jsonl; \
	echo "  probes             $(RUN)/probe.json (frozen encoder, linear classifier on the probe split's test half):"; \
	python3 -c 'import json,sys; [print("    %-11s %-8s accuracy %.3f (majority %.3f, %d test items)" % (r["encoder"], r["label"], r["accuracy"], r["majority_accuracy"], r["test_items"])) for r in map(json.loads, open(sys.argv[1]))]' $(RUN)/probe.json

## NeMo itself in a private venv (../shared/bench/README.md), for the interop check only.
NEMO_VENV ?= .venv-nemo
nemo-venv:
	@test -x $(NEMO_VENV)/bin/python || { python3 -m venv $(NEMO_VENV) && \
	  $(NEMO_VENV)/bin/pip install -q "torch==2.13.0+cpu" && echo "torch==2.13.0+cpu" > $(NEMO_VENV)/constraints.txt && \
	  $(NEMO_VENV)/bin/pip install -q -c $(NEMO_VENV)/constraints.txt "nemo-toolkit[asr]==3.0.0"; }

## Same recipe, same data, same initial weights: 3 seeds each of nest-train and of NeMo 3.0.0
## (Lightning on the CPU) training Configs/demo.yaml for 600 steps, every checkpoint of both
## scored on the same validation batches and masks; writes Checkpoints/curve-vs-nemo/curve.{json,svg,md}.
## About 30 minutes on 2 cores without other load (Tests/Interop/curve_vs_nemo.py says how it works).
curve-vs-nemo: build data nemo-venv
	$(NEMO_VENV)/bin/python Tests/Interop/curve_vs_nemo.py

## After `make demo`: NeMo restores the exported .nemo strictly and its encoder must reproduce
## nest-train's extracted features (all layers) on five dev utterances.
check-nemo: build nemo-venv
	@set -e; ckpt=$$(ls -t $(RUN)/checkpoints/*.h5 | head -n 1); \
	.build/release/nest-train export --checkpoint "$$ckpt" --output $(RUN)/model.nemo --format nemo; \
	.build/release/nest-train extract --config Configs/demo.yaml --checkpoint "$$ckpt" --input $(RUN)/extract_manifest.json \
	  --output $(RUN)/features-all --layers all; \
	$(NEMO_VENV)/bin/python Tests/Interop/check_nemo_export.py $(RUN)/model.nemo $(RUN)/features-all

## NeMo's own tarred reader accepts the shards `nest-train tar` makes from the demo corpus.
check-nemo-tarred: build data nemo-venv
	@set -e; dir=$$(mktemp -d); \
	.build/release/nest-train tar --manifest Data/generated/dev_manifest.json --output $$dir --shards 4; \
	$(NEMO_VENV)/bin/python Tests/Interop/check_nemo_tarred.py $$dir 4

## After `make demo`: TensorBoard's own reader loads the demo run's event file.
check-tensorboard: nemo-venv
	$(NEMO_VENV)/bin/python Tests/Interop/check_tensorboard.py $(RUN)

clean:
	rm -rf .build Data/generated
