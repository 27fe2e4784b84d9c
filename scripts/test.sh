#!/usr/bin/env bash
# Runs every test of mxguard. On a fresh Debian 12 machine (as root) it first
# installs the real peers the tests talk to; then it checks formatting and
# lints, and runs the whole test suite.
#
# Third-party test data is read from $MXGUARD_TESTDATA (default
# ../shared/testdata beside the repository); tests that need it say so
# plainly and pass without running when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo not found. Install Rust 1.95 or newer (https://rustup.rs), then run this again." >&2
  exit 1
fi

./scripts/peers.sh install

echo "== cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== fuzz targets, short repeatable run (docs/FUZZING.md)"
./scripts/fuzz.sh ci
