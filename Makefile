# Rujuk — the two commands: `make demo` runs the sample network, `make test` runs the tests.
# Each installs what is missing first (libzmq3-dev, libsqlite3-dev, pkg-config through apt-get;
# for the tests also chromium, which drives the dashboard test, and Python's jsonschema).

SWIFT ?= swift
APT_PACKAGES = libzmq3-dev libsqlite3-dev pkg-config curl
TEST_APT_PACKAGES = $(APT_PACKAGES) chromium
.PHONY: deps test-deps apt-install build demo test bench clean

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

test: test-deps
	python3 Protocols/check_examples.py
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel --num-workers 2

bench: deps
	$(SWIFT) build -c release --product rujuk
	$$($(SWIFT) build -c release --show-bin-path)/rujuk bench --config Config/rujuk.toml $(BENCH_ARGS)

clean:
	rm -rf .build
