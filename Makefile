# Veneer — build, test and run on Debian 12 (as root).

SWIFT       ?= swift
PREFIX      ?= /usr/local
DESTDIR     ?=
APT_PACKAGES = libmount-dev libsystemd-dev libsqlite3-dev libarchive-dev libzstd-dev pkg-config \
               debootstrap python3 python3-venv socat sqlite3 containerd runc busybox-static zstd
VENEERD_ARGS ?=

# The fuzz test (Tests/EndToEndTests/FuzzTests.swift) runs this schemathesis from a
# virtual environment of Debian's Python; the stamp names the version installed.
SCHEMATHESIS_VERSION = 4.32.5
FUZZ_VENV   = .build-venv
FUZZ_STAMP  = $(FUZZ_VENV)/.schemathesis-$(SCHEMATHESIS_VERSION)

UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR  ?= /etc

.PHONY: all deps venv build release run test soak fuzz bench install clean proto proto-check

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

# The virtual environment with schemathesis, made again only when missing or when
# SCHEMATHESIS_VERSION changes.
venv: $(FUZZ_STAMP)

$(FUZZ_STAMP): | deps
	rm -rf $(FUZZ_VENV)
	/usr/bin/python3 -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check 'schemathesis==$(SCHEMATHESIS_VERSION)'
	touch $@

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Runs the daemon in the foreground with the default root and socket.
run: release
	$$($(SWIFT) build -c release --show-bin-path)/veneerd $(VENEERD_ARGS)

# Builds everything (the end-to-end tests start the real veneerd binary) and runs the whole
# suite. Tests run one at a time: many start processes, and a process started while another
# test holds a file open inside one of its mounts would inherit that descriptor and keep
# the mount busy.
test: deps venv proto-check
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

# containerd's snapshots API: the .proto files in api/ (our text, wire-compatible) and the
# Swift generated from them in api/generated, which is committed. `make proto` builds the
# pinned protoc plugins (api/protoc-plugins) and generates again; it needs protoc
# (Debian's protobuf-compiler, installed when missing). `make proto-check`, part of
# `make test`, fails when a .proto file, the plugins' pins or a generated file changed
# since the last generation.
PROTO_FILES  = api/containerd/types/mount.proto api/containerd/services/snapshots/v1/snapshots.proto
PROTO_OUT    = api/generated
PROTO_STAMP  = $(PROTO_OUT)/SOURCES.sha256
PROTO_BUILD  = .build-protoc
PROTO_PLUGINS = $(PROTO_BUILD)/release

proto:
	@command -v protoc > /dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends protobuf-compiler; }
	$(SWIFT) build -c release --package-path api/protoc-plugins --scratch-path $(PROTO_BUILD) --product protoc-gen-swift
	$(SWIFT) build -c release --package-path api/protoc-plugins --scratch-path $(PROTO_BUILD) --product protoc-gen-grpc-swift-2
	rm -f $(PROTO_OUT)/*.swift
	protoc -I api -I $(PROTO_BUILD)/checkouts/swift-protobuf/Sources/protobuf/include \
	    --plugin=protoc-gen-swift=$(PROTO_PLUGINS)/protoc-gen-swift \
	    --swift_out=$(PROTO_OUT) --swift_opt=Visibility=Public,FileNaming=DropPath $(PROTO_FILES)
	protoc -I api -I $(PROTO_BUILD)/checkouts/swift-protobuf/Sources/protobuf/include \
	    --plugin=protoc-gen-grpc-swift=$(PROTO_PLUGINS)/protoc-gen-grpc-swift-2 \
	    --grpc-swift_out=$(PROTO_OUT) --grpc-swift_opt=Visibility=Public,Server=true,Client=true,FileNaming=DropPath \
	    api/containerd/services/snapshots/v1/snapshots.proto
	sha256sum $(PROTO_FILES) api/protoc-plugins/Package.swift $(PROTO_OUT)/*.swift > $(PROTO_STAMP)

proto-check:
	@sha256sum --quiet -c $(PROTO_STAMP) || { echo "api/generated is not what the .proto files give: run make proto and commit the result"; exit 1; }
	@for p in $(PROTO_FILES); do grep -q " $$p$$" $(PROTO_STAMP) || { echo "$$p is not in $(PROTO_STAMP): run make proto"; exit 1; }; done
	@n=$$(ls $(PROTO_OUT)/*.swift | wc -l); m=$$(grep -c ' $(PROTO_OUT)/.*\.swift$$' $(PROTO_STAMP)); [ "$$n" = "$$m" ] || { echo "api/generated holds files that make proto did not write: run make proto"; exit 1; }

# The crash soak alone, with SOAK rounds of kill -9 (the suite runs 100).
SOAK ?= 1000
soak: deps
	$(SWIFT) build --build-tests
	VENEER_SOAK_ROUNDS=$(SOAK) $(SWIFT) test --skip-build --no-parallel --filter CrashSoakTests

# The schemathesis run alone, for FUZZ seconds (the suite runs 120); FUZZ_SEED repeats a run.
FUZZ ?= 900
FUZZ_SEED ?=
fuzz: deps venv
	$(SWIFT) build --build-tests
	VENEER_FUZZ_SECONDS=$(FUZZ) VENEER_FUZZ_SEED=$(FUZZ_SEED) $(SWIFT) test --skip-build --no-parallel --filter FuzzTests

# Throughput and latency figures; see docs/performance.md.
bench: release
	$$($(SWIFT) build -c release --show-bin-path)/veneer-bench

# Installs the binaries, the systemd units and, unless one exists, the example
# configuration. Honours DESTDIR, PREFIX, UNITDIR and SYSCONFDIR.
install: release
	bin="$$($(SWIFT) build -c release --show-bin-path)"; \
	install -d "$(DESTDIR)$(PREFIX)/bin" "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(SYSCONFDIR)/veneer" && \
	install -m 0755 "$$bin/veneerd" "$$bin/veneer" "$(DESTDIR)$(PREFIX)/bin/" && \
	sed 's|/usr/local/bin/veneerd|$(PREFIX)/bin/veneerd|' systemd/veneerd.service > "$(DESTDIR)$(UNITDIR)/veneerd.service" && \
	install -m 0644 systemd/veneerd.socket systemd/veneerd-grpc.socket "$(DESTDIR)$(UNITDIR)/" && \
	chmod 0644 "$(DESTDIR)$(UNITDIR)/veneerd.service" && \
	if [ -e "$(DESTDIR)$(SYSCONFDIR)/veneer/veneerd.toml" ]; then \
	    echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/veneer/veneerd.toml"; \
	else \
	    install -m 0644 systemd/veneerd.toml.example "$(DESTDIR)$(SYSCONFDIR)/veneer/veneerd.toml"; \
	fi
	@echo "installed; enable with: systemctl daemon-reload && systemctl enable --now veneerd.socket veneerd-grpc.socket"

clean:
	rm -rf .build $(FUZZ_VENV) $(PROTO_BUILD)
