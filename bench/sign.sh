#!/usr/bin/env bash
# DKIM signing and ARC sealing throughput, one thread: RSA-2048, Ed25519,
# both at once, and RSA plus an ARC seal, over every message of a corpus
# (line ends made CRLF, as the milter passes them).
#
#   bench/sign.sh [CORPUS_DIR] [ROUNDS]
#
# CORPUS_DIR defaults to ../shared/testdata/corpus-dev (MXGUARD_TESTDATA).
# One thread is busy for the whole run, so messages/s is messages per
# CPU-second. Run on a quiet machine; the figures go to docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
DIR=${1:-$DATA/corpus-dev}
ROUNDS=${2:-3}
[ -d "$DIR" ] || { echo "sign.sh: no corpus at $DIR (set MXGUARD_TESTDATA or give a directory)" >&2; exit 1; }
cargo build --release --locked -p mxguard-auth --example sign_bench
exec target/release/examples/sign_bench "$DIR" "$ROUNDS"
