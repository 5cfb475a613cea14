# tenement: build, test, demo. `make help` lists the targets.

CARGO ?= cargo
MUSL  := x86_64-unknown-linux-musl
PORT  ?= 8080

.PHONY: help build test demo bench static lint clean

help:
	@echo "make demo    build, run the notes example on port $(PORT), Ctrl-C to stop"
	@echo "make test    run the unit and integration tests"
	@echo "make build   release build: target/release/ten"
	@echo "make bench   ten vs nginx vs HAProxy, HTTP and HTTPS; wake and isolation cost vs bwrap; 10,000 instances (installs them if missing)"
	@echo "make static  static musl binary: target/$(MUSL)/release/ten"
	@echo "make lint    cargo fmt --check and clippy -D warnings"
	@echo "make clean   remove build output"

build:
	$(CARGO) build --release

# cargo test builds the `ten` binary itself (debug profile) and hands its
# path to the integration tests as CARGO_BIN_EXE_ten.
test:
	$(CARGO) test --no-fail-fast

demo: build
	PORT=$(PORT) TEN=$(CURDIR)/target/release/ten ./examples/demo.sh

# Proxy throughput, CPU per request, latency and memory per connection of
# both builds (glibc and static musl), against nginx and HAProxy in the same
# run; then HTTPS through the same three (ECDSA and RSA, keep-alive and a
# handshake per request). Installs nginx, haproxy, wrk and openssl if missing.
# Then wake latency, upgrades in place under load, spawn and wake per
# isolation level next to bubblewrap (as root; installs bubblewrap), and
# `ten move` of 10 MB and 1 GB under load. Last, scale: 10,000 sleeping and
# 1,000 running instances of a tiny static C app (start, ps, RSS, idle CPU,
# a wake storm of 200).
bench: build static
	./tests/bench/run.sh
	./tests/bench/https.sh
	./tests/bench/wake.sh
	./tests/bench/upgrade.sh
	./tests/bench/isolation.sh
	./tests/bench/move.sh
	./tests/bench/scale.sh

# ring (rustls' crypto) compiles C and assembly for the target: musl-gcc
# from Debian's musl-tools, installed here when missing.
static:
	@rustup target list --installed | grep -qx '$(MUSL)' || rustup target add $(MUSL)
	@command -v musl-gcc >/dev/null || apt-get install -y --no-install-recommends musl-tools \
		|| { echo "make static needs musl-gcc: apt-get install musl-tools" >&2; exit 1; }
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --release --target $(MUSL)
	@ls -l target/$(MUSL)/release/ten | awk '{ printf "%s  %d bytes\n", $$NF, $$5 }'
	@file target/$(MUSL)/release/ten 2>/dev/null || true

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
