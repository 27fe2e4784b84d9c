#!/usr/bin/env bash
# The learning classifier's figures: accuracy (5-fold CV), classify and learn
# throughput, and the scan pipeline with BAYES_* active.
#
#   bench/learn.sh [CORPUS_DIR]      (default ../shared/testdata/corpus-dev)
#
# Peers (rspamd's and SpamAssassin's Bayes) are in bench/bayes-peers.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=$(realpath "${1:-$ROOT/../shared/testdata/corpus-dev}")
cargo build --release -q -p mxguard -p mxguard-learn --examples --bins --manifest-path "$ROOT/Cargo.toml"
MX="$ROOT/target/release/mxguard"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT

echo "== accuracy: mxguard eval --folds 5 --seed 1"
"$MX" eval --spam "$CORPUS/spam" --ham "$CORPUS/ham" --folds 5 --seed 1

echo "== classify and learn throughput, one thread, messages in memory"
"$ROOT/target/release/examples/throughput" "$CORPUS"

echo "== mxguard learn into a fresh store (files read from the page cache), 3 runs"
for i in 1 2 3; do
  rm -rf "$D/data"
  "$MX" --data-dir "$D/data" learn --spam "$CORPUS/spam" --ham "$CORPUS/ham" --stats 2>&1 | grep learned
done
echo "-- learning the same messages again (all already learned)"
"$MX" --data-dir "$D/data" learn --spam "$CORPUS/spam" --ham "$CORPUS/ham" --stats 2>&1 | grep learned
"$MX" --data-dir "$D/data" stats | sed -n '/^classifier/,$p'

echo "== mxguard scan -j 1 with the classifier active (model learned above), 3 runs"
for i in 1 2 3; do
  "$MX" --data-dir "$D/data" scan -j 1 --json --stats "$CORPUS/spam" "$CORPUS/ham" 2>&1 >/dev/null | grep scanned
done
echo "-- the same with the classifier disabled"
printf '[classifier]\nenabled = false\n' >"$D/off.toml"
for i in 1 2 3; do
  "$MX" -c "$D/off.toml" --data-dir "$D/data" scan -j 1 --json --stats "$CORPUS/spam" "$CORPUS/ham" 2>&1 >/dev/null | grep scanned
done
