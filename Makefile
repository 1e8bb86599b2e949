# Rujuk — the two commands: `make demo` runs the sample network, `make test` runs the tests.
# Each installs what is missing first (libzmq3-dev, libsqlite3-dev, pkg-config through apt-get;
# for the tests also chromium, which drives the dashboard test, and Python's jsonschema).

SWIFT ?= swift
APT_PACKAGES = libzmq3-dev libsqlite3-dev pkg-config curl
TEST_APT_PACKAGES = $(APT_PACKAGES) chromium
.PHONY: deps test-deps apt-install build demo test bench profile faults fuzz clean

deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

test-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_APT_PACKAGES)"
	@python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q 'jsonschema>=4.18'

apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

build: deps
	$(SWIFT) build

demo: deps
	$(SWIFT) build --product rujuk
	$$($(SWIFT) build --show-bin-path)/rujuk demo --config Config/rujuk.toml $(DEMO_ARGS)

# Tests run one at a time: many start real processes and brokers and wait on them with time
# limits, and two at once on two cores made some of those waits flaky. The attack tests that
# open thousands of connections or flood a broker run after the rest.
HEAVY_TESTS = ExhaustionTests|HTTPHardeningTests

test: test-deps
	python3 Protocols/check_examples.py
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel --skip '$(HEAVY_TESTS)'
	$(SWIFT) test --skip-build --no-parallel --filter '$(HEAVY_TESTS)'

BENCH_ARGS ?= --stored 1000000

bench: deps
	$(SWIFT) build -c release --product rujuk
	$$($(SWIFT) build -c release --show-bin-path)/rujuk bench --config Config/rujuk.toml $(BENCH_ARGS)

# Instructions per referral on the benchmark's path, by party and by function, counted by
# valgrind's callgrind (Profile/callgrind.sh; docs/performance.md): deterministic where time on
# these shared machines is not. About a minute; PROFILE_DIR keeps the raw callgrind files.
profile: deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="valgrind binutils"
	$(SWIFT) build -c release --product rujuk
	Profile/callgrind.sh $$($(SWIFT) build -c release --show-bin-path)/rujuk

# The fault suite (Sources/RujukFaults, docs/fault-suite.md): real processes under load, killed,
# stopped, cut off, starved of disk; a checker counts lost, duplicated, unexpected and recovered
# referrals. FAULTS_SCALE=full runs the issue's counts (20,000 referrals, 20 broker kills, a
# backlog of 100,000; about 15 minutes), ci a reduced count. The disk-full scenario mounts a
# tmpfs and needs root; it is skipped, and says so, without. FAULTS_ARGS e.g. --scenario disk-full.
FAULTS_SCALE ?= full
FAULTS_CONFIG ?= release

faults: deps
	$(SWIFT) build -c $(FAULTS_CONFIG) --product rujuk
	$(SWIFT) build -c $(FAULTS_CONFIG) --product rujuk-faults
	$$($(SWIFT) build -c $(FAULTS_CONFIG) --show-bin-path)/rujuk-faults --binary $$($(SWIFT) build -c $(FAULTS_CONFIG) --show-bin-path)/rujuk \
		--scale $(FAULTS_SCALE) $(FAULTS_ARGS)

# The RRP decoder under libFuzzer (Sources/RujukFuzz, Fuzz/README.md); a long run, not part of
# `make test`. Starts from Fuzz/corpus, stops after FUZZ_RUNS inputs or FUZZ_TIME seconds
# (0: no limit), whichever comes first. New inputs and any crash-*, timeout-* or oom-* file go
# to FUZZ_DIR. FUZZ_SANITIZE=fuzzer drops AddressSanitizer: about 3 times faster, but without
# the per-allocation limit. Extra libFuzzer flags in FUZZ_ARGS (e.g. -jobs=2).
FUZZ_RUNS ?= 5000000
FUZZ_TIME ?= 0
FUZZ_SANITIZE ?= fuzzer,address
FUZZ_BUILD ?= .build/fuzz
FUZZ_DIR ?= $(FUZZ_BUILD)/run
FUZZ_FLAGS = -c release --scratch-path $(FUZZ_BUILD) -Xswiftc -sanitize=$(FUZZ_SANITIZE) -Xswiftc -DRUJUK_LIBFUZZER \
	-Xswiftc -enable-experimental-feature -Xswiftc Extern

fuzz:
	$(SWIFT) build $(FUZZ_FLAGS) --product RujukFuzz
	mkdir -p $(FUZZ_DIR)/corpus
	$$($(SWIFT) build $(FUZZ_FLAGS) --show-bin-path)/RujukFuzz $(FUZZ_DIR)/corpus Fuzz/corpus -dict=Fuzz/rrp.dict \
		-runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_TIME) -max_len=16384 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 \
		-artifact_prefix=$(FUZZ_DIR)/ -print_final_stats=1 $(FUZZ_ARGS)

clean:
	rm -rf .build
