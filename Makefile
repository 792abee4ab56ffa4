# Veneer — build, test and run on Debian 12 (as root).

SWIFT       ?= swift
PREFIX      ?= /usr/local
DESTDIR     ?=
APT_PACKAGES = libmount-dev libsystemd-dev libsqlite3-dev pkg-config
VENEERD_ARGS ?=

.PHONY: all deps build release run test bench clean

all: build

# System libraries the package links against; installed only when missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Runs the daemon in the foreground with the default root and socket.
run: release
	$$($(SWIFT) build -c release --show-bin-path)/veneerd $(VENEERD_ARGS)

# Builds everything (the end-to-end tests start the real veneerd binary) and runs the whole suite.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Throughput and latency figures; see docs/performance.md.
bench: release
	$$($(SWIFT) build -c release --show-bin-path)/veneer-bench

clean:
	rm -rf .build
