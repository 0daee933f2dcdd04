# SPDX-License-Identifier: MIT
# Thin wrapper over CMake: the two commands a new machine needs are `make run` and `make test`.
BUILD      ?= build
BUILD_REL  ?= build-release
BUILD_CLANG ?= build-clang
BUILD_TEST ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
BUILD_COV  ?= build-coverage
JOBS       ?= $(shell nproc)
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Everything the build, the tests and the benchmarks need, as Debian names them.
DEBS = build-essential cmake pkg-config clang-format \
       libsystemd-dev libssl-dev libcurl4-openssl-dev libyaml-dev \
       libcriterion-dev systemtap-sdt-dev libcurl3-gnutls python3 curl prometheus openssl \
       systemd python3-yaml python3-jwt python3-cryptography clang scdoc man-db groff-base zsh pebble libjansson-dev \
       nginx-light wrk abigail-tools \
       knot knot-dnsutils \
       $(SYSTEMD_TEST_DEBS)
# The tests that boot a real systemd (a Debian 12 root file system made by debootstrap, booted by
# systemd-nspawn) and build and run the image (podman, with its rootless helpers in uidmap).
SYSTEMD_TEST_DEBS = debootstrap systemd-container podman uidmap
# Only the benchmarks need these: load generator and the reference server.
BENCH_DEBS = wrk nginx-light liburing-dev
# Only `make coverage` needs this.
COVERAGE_DEBS = gcovr

.PHONY: all deps deps-bench deps-node install-debs build run install test test-rootfs test-release test-clang test-asan test-tsan test-fuzz fuzz-build fuzz image coverage soak bench bench-check format abi-baseline clean

all: build

# The OAuth2 tests run a real authorization server (oidc-provider, tests/oauth2/) on Node.js:
# Debian's nodejs and npm, unless a Node.js with its npm is installed already (NodeSource's
# package conflicts with Debian's npm).
NODE_DEBS = $(if $(shell command -v npm),,nodejs npm)

deps:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEBS) $(NODE_DEBS)"
	@$(MAKE) --no-print-directory deps-node

deps-bench:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEBS) $(BENCH_DEBS)"

# The versions package-lock.json pins, from the npm registry, once (again when the lock changes).
deps-node:
	@cd tests/oauth2 && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
	    npm ci --no-audit --no-fund --loglevel=error; }

install-debs:
	@missing=$$(for p in $(PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$(echo $$missing | sed 's/^/ /')"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The embedded defaults keep keys in /var/lib/keel; without root they go to ./.local/state.
RUN_ENV := $(shell [ "$$(id -u)" = 0 ] || echo KEEL_STATE_DIR=$(CURDIR)/.local/state)

run: build
	$(RUN_ENV) $(BUILD)/keel serve

# `make install DESTDIR=/tmp/stage` (and PREFIX=/usr for a packager's layout): builds what is
# installed and installs it, every file under PREFIX (units, keel.pc and keel's RUNPATH included).
# No packages, no tests: the build needs what `make deps` installs, or its Debian build-dependencies.
# A build tree configured already keeps its configuration: the prefix is the install's (cmake
# --install --prefix), not the tree's.
PREFIX ?= /usr/local
install:
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target installed
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# Warnings are errors here (KEEL_WERROR), never in a plain cmake build. The optimised builds find
# warnings the Debug ones do not: gcc -O3 (a plain Release build, which also installs Keel and
# builds the examples out of tree against it; -O3 inlines further than -O2 and warns of more) and
# clang -O3.
test: deps test-rootfs test-release test-clang test-asan test-tsan test-fuzz

# The Debian root file system test_systemd boots (tests/integration/nspawn.py) takes debootstrap a
# minute or more on a new machine: it is made beside the builds, and the test waits on its lock.
test-rootfs:
	@mkdir -p $(BUILD_REL) && (python3 tests/integration/nspawn.py rootfs >$(BUILD_REL)/rootfs.log 2>&1 &)

test-release:
	cmake -S . -B $(BUILD_REL) -DCMAKE_BUILD_TYPE=Release -DKEEL_WERROR=ON >/dev/null
	cmake --build $(BUILD_REL) -j $(JOBS)
	cd $(BUILD_REL) && ctest --output-on-failure -L 'install|plain' -j $(JOBS) --timeout 300

test-clang:
	cmake -S . -B $(BUILD_CLANG) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DKEEL_WERROR=ON -DKEEL_BUILD_TESTS=OFF >/dev/null
	cmake --build $(BUILD_CLANG) -j $(JOBS)

# The suites that mostly wait (tests/CMakeLists.txt, KEEL_WAITING_TESTS) run beside a job a core.
WAITING_TESTS = 3
test-asan:
	cmake -S . -B $(BUILD_TEST) -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=address -DKEEL_WERROR=ON >/dev/null
	cmake --build $(BUILD_TEST) -j $(JOBS)
	cd $(BUILD_TEST) && ctest --output-on-failure -j $$(($(JOBS) + $(WAITING_TESTS))) --timeout 300

# Under TSan a suite keeps about half a core busy (measured: 100 % of the machine's 200 % at one
# suite a core), so two run a core.
TSAN_SLOTS_PER_CORE = 2
test-tsan:
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=thread -DKEEL_WERROR=ON \
	    -DKEEL_TEST_SLOTS_PER_CORE=$(TSAN_SLOTS_PER_CORE) >/dev/null
	cmake --build $(BUILD_TSAN) -j $(JOBS) --target tsan-tests
	cd $(BUILD_TSAN) && ctest --output-on-failure -L tsan -j $$(($(JOBS) * $(TSAN_SLOTS_PER_CORE))) --timeout 300

# libFuzzer (clang): the parsers that take outside input. test-fuzz is a bounded smoke run of each
# harness over its seed corpus; `make fuzz FUZZ_SECONDS=600` searches for longer.
FUZZ_SECONDS ?= 60
fuzz-build:
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DKEEL_SANITIZE=address -DKEEL_WERROR=ON \
	    -DKEEL_FUZZ=ON -DKEEL_BUILD_TESTS=OFF >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzzers

test-fuzz: fuzz-build
	cd $(BUILD_FUZZ) && ctest --output-on-failure -L fuzz --timeout 300

fuzz: deps fuzz-build
	for f in config value fault header pem claims oauth2 response-header head dns01; do \
	    $(BUILD_FUZZ)/tests/fuzz/fuzz-$$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	        $(BUILD_FUZZ)/tests/fuzz/corpus-fuzz-$$f tests/fuzz/corpus/fuzz-$$f || exit 1; done

# The container image (Containerfile), tagged keel:VERSION as conf/kubernetes/keel.yaml names it:
# podman builds it from this build's root file system, with no registry, into a store of its own
# in $(BUILD)/image (conf/container/image.sh; `conf/container/image.sh podman $(BUILD) ...` reaches it).
VERSION   := $(shell grep -o 'keel VERSION [0-9.]*' CMakeLists.txt | cut -d' ' -f3)
image: build
	@command -v podman >/dev/null || { echo "image: podman is not installed (make deps installs it)" >&2; exit 1; }
	conf/container/image.sh build $(BUILD) keel:$(VERSION)

# Line coverage of core/ and services/ by every test (unit and integration) of a gcc --coverage
# build: a summary per file on the terminal, the whole report in $(BUILD_COV)/coverage.html.
coverage: deps
	@$(MAKE) --no-print-directory install-debs PKGS="$(COVERAGE_DEBS)"
	cmake -S . -B $(BUILD_COV) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="--coverage -fprofile-update=atomic" \
	    -DCMAKE_EXE_LINKER_FLAGS=--coverage -DCMAKE_SHARED_LINKER_FLAGS=--coverage >/dev/null
	cmake --build $(BUILD_COV) -j $(JOBS)
	find $(BUILD_COV) -name '*.gcda' -delete
	# The examples and the image link or copy an uninstrumented keel: not here.
	cd $(BUILD_COV) && KEEL_TEST_STOP=term ctest -j $(JOBS) --timeout 600 -E '^fuzz/|test_examples|test_image' || \
	    echo "coverage: some tests failed (above); the report counts what ran" >&2
	gcovr -r . --object-directory $(BUILD_COV) --filter 'core/' --filter 'services/' --exclude-unreachable-branches --gcov-ignore-parse-errors \
	    --print-summary --txt $(BUILD_COV)/coverage.txt --html-details $(BUILD_COV)/coverage.html
	@cat $(BUILD_COV)/coverage.txt

# Not part of make test: 30 minutes of mixed load on every listener with a SIGHUP every second and
# a certificate rotation every minute; RSS, descriptors and threads must stay flat (tests/soak).
SOAK_SECONDS ?= 1800
soak: build
	python3 tests/soak/soak.py $(BUILD)/keel $(SOAK_SECONDS)

bench: deps-bench build
	cmake --build $(BUILD) -j $(JOBS) --target benches
	tests/bench/run-all $(BUILD)

# The gate (not part of make test: timing stays out of tests): the figures of tests/bench/targets
# in a few minutes, written into docs/performance.md's table; fails when one misses its floor.
# Run it on an idle machine.
bench-check: deps-bench build
	cmake --build $(BUILD) -j $(JOBS) --target benches
	python3 tests/bench/check.py $(BUILD) --write-doc docs/performance.md

# After a deliberate change of libkeel's ABI: writes tests/abi/libkeel.abi anew from $(BUILD) (the
# test build/abi compares against it); review the diff, and raise the SONAME for an incompatible one.
abi-baseline: build
	python3 tests/build/check_abi.py . $(BUILD)/libkeel.so --write

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_REL) $(BUILD_CLANG) $(BUILD_TEST) $(BUILD_TSAN) $(BUILD_FUZZ) $(BUILD_COV)
