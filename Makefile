# nest-train: every entry point a user or CI needs. `make demo` and `make test` are the two
# commands the README gives a new user; both install what is missing first.

SWIFT ?= swift
RELEASE = $(SWIFT) build -c release
# Debian packages the build, the tests and the demo corpus need.
APT_PACKAGES = libopenblas-dev libfftw3-dev libsndfile1-dev libhdf5-dev libsoxr-dev pkg-config \
               espeak-ng flite sox

.PHONY: setup build test bench demo data clean

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

## All tests, in release mode (the parity and end-to-end tests are too slow in debug).
test: setup
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build --disable-swift-testing

## Engine and model benchmarks (release build); figures go to BENCHMARKS.md by hand.
bench: setup
	$(RELEASE) --product nest-bench
	.build/release/nest-bench

## The demo corpus in Data/generated (deterministic; skipped when already complete).
data: setup
	python3 Data/make_demo_corpus.py

## The main job on the bundled demo data: build, make data, train, checkpoint, export.
demo: build data
	.build/release/nest-train --config Configs/demo.yaml

clean:
	rm -rf .build Data/generated
