# The front door. `make demo` and `make test` work on a fresh Debian 12 machine:
# they install what is missing (apt-get, with sudo when not root), build and run.
PRESET ?= debug
JOBS ?= $(shell nproc)

DEBIAN_PACKAGES := cmake ninja-build g++ clang-14 libclang-rt-14-dev ccache pkg-config \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libsodium-dev libzstd-dev libsqlite3-dev libssl-dev libabsl-dev libpq-dev postgresql \
  libcli11-dev libspdlog-dev libtomlplusplus-dev libgoogle-perftools-dev \
  libgtest-dev libgmock-dev libbenchmark-dev openssl khard khal

.PHONY: deps build test demo asan asan-ci sim crash-long fuzz bench bench-compare format clean

deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: deps
	cmake --preset $(PRESET) >/dev/null
	cmake --build --preset $(PRESET) -j $(JOBS)

test: build
	ctest --preset $(PRESET) -j $(JOBS)

demo: build
	bash scripts/demo.sh build/$(PRESET)

asan:
	$(MAKE) test PRESET=asan

# CI: every test under ASan+UBSan except the 500-seed simulation shards (the
# simulation's determinism check and regression seeds still run), to stay inside CI's
# time budget.
asan-ci:
	$(MAKE) build PRESET=asan
	ctest --preset asan -j $(JOBS) -E '^sim_seeds_'

# The deterministic simulation: SEEDS seeds from SEED_START; non-zero exit and the
# failing seeds printed when any fails.
SEEDS ?= 1000
SEED_START ?= 1
sim: build
	build/$(PRESET)/sim/ferry_sim --seeds $(SEEDS) --seed-start $(SEED_START)

# kill -9 of `ferry sync` and of `ferryd`, ROUNDS rounds of each (tests/crash_test.cc;
# `make test` runs 20). CRASH_SEED, when set, starts the random choices elsewhere.
ROUNDS ?= 500
CRASH_SEED ?=
crash-long: build
	FERRY_CRASH_ROUNDS=$(ROUNDS) FERRY_CRASH_SEED=$(CRASH_SEED) build/$(PRESET)/tests/crash_test

# Runs every libFuzzer target for FUZZ_SECONDS (default 60) on its corpus.
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	bash scripts/fuzz.sh build/fuzz $(FUZZ_SECONDS)

bench:
	$(MAKE) build PRESET=release
	build/release/bench/ferry_bench

# ferry, rsync, Unison and Syncthing side by side on 127.0.0.1 (docs/performance.md);
# QUICK=1 for a short development run, OUT=FILE for the markdown table.
bench-compare:
	$(MAKE) build PRESET=release
	bash bench/bench_compare.sh build/release

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf build
