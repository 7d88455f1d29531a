#!/usr/bin/env bash
# Runs every check of the workspace: rustfmt, clippy, and every test: unit, integration and doc
# tests (FUSE included), the no_std build, the track-holders feature, the loom models, Miri on the
# core, and short torture runs of the core and of devfs under load.
# Installs the nightly Miri component first if it is missing. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

# Every test runner's output also goes to a log, so that the closing line can count them all.
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
run() { "$@" 2>&1 | tee -a "$LOG"; }

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    step "installing the nightly Miri component"
    rustup toolchain install nightly --profile minimal
    rustup component add --toolchain nightly miri rust-src
fi

step "formatting and lints (clippy denies unsafe blocks without a SAFETY comment)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

# FUSE over io_uring: the workspace tests (devfs included) run on it where the kernel allows it
# (root can turn the fuse module's enable_uring on), then the FUSE tests once more on /dev/fuse.
URING_PARAM=/sys/module/fuse/parameters/enable_uring
if [ -w "$URING_PARAM" ] && [ "$(cat "$URING_PARAM")" != Y ]; then
    echo Y > "$URING_PARAM" 2>/dev/null || true
fi
IO_URING_DISABLED=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)
if [ "$IO_URING_DISABLED" != 0 ]; then
    echo "FUSE transport: /dev/fuse only (kernel.io_uring_disabled=$IO_URING_DISABLED)"
    FUSE_FIRST=dev
elif [ -r "$URING_PARAM" ] && [ "$(cat "$URING_PARAM")" = Y ]; then
    echo "FUSE transport: io_uring (fuse enable_uring=Y) for the workspace tests, then /dev/fuse"
    FUSE_FIRST=uring
else
    echo "FUSE transport: /dev/fuse only (FUSE over io_uring unavailable: $URING_PARAM is $(cat "$URING_PARAM" 2>/dev/null || echo missing) and cannot be set)"
    FUSE_FIRST=dev
fi

step "workspace tests (unit, integration, doc), FUSE over $FUSE_FIRST"
REVOCABLE_FUSE_TRANSPORT=$FUSE_FIRST run cargo test --workspace

if [ "$FUSE_FIRST" = uring ]; then
    step "FUSE transport and devfs tests again, over /dev/fuse"
    REVOCABLE_FUSE_TRANSPORT=dev run cargo test -p revocable-fuse -p revocable-devfs
fi

step "core without std (no_std + rundown counter)"
run cargo test -p revocable --no-default-features --lib --tests

step "core with track-holders"
run cargo test -p revocable --features track-holders

step "loom models of the core protocol"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom run cargo test -p revocable --release --lib --test loom

step "Miri on the core tests"
MIRIFLAGS="-Zmiri-disable-isolation" CARGO_TARGET_DIR=target/miri run cargo +nightly miri test -p revocable

step "the async example: a tokio service whose backend is unplugged with requests in flight"
cargo run --release -q -p revocable --example async_service

step "short torture of the core"
cargo run --release -q -p revocable-cli -- torture --duration "${TORTURE_SECONDS:-30}"

step "devfs under load: open/close from client processes while the EC is re-plugged every 100 ms"
cargo run --release -q -p revocable-cli -- torture --devfs --duration "${DEVFS_TORTURE_SECONDS:-30}"

step "all tests passed"
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
