#!/usr/bin/env bash
# Instructions per policy request, counted by callgrind: repeatable on a
# shared machine where requests/s are not. Runs `mxguard serve` (the
# bench/policy.sh config: default settings, sender pools on) under
# valgrind, zeroes the counters once it listens, sends first-seen triplets
# with policy_load for SECS seconds over CONNS connections, dumps the
# counters and divides by the requests answered. Prints the total and the
# store writer thread's share (the rest is the request side). Loopback only.
# Usage: bench/policy_instructions.sh [BINARY] [CONNS] [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/mxguard} CONNS=${2:-16} SECS=${3:-20} PORT=${PORT:-10057}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -q -p mxguard-policy --example policy_load
work=$(mktemp -d)
trap 'kill $vg 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/policy_config.sh
policy_config "$work/mxguard.toml" $PORT "$work/mxg"
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$BIN" -c "$work/mxguard.toml" serve \
  </dev/null >"$work/log" 2>&1 &
vg=$!
for _ in $(seq 1 120); do grep -q "policy server listening" "$work/log" && break; sleep 1; done
callgrind_control -z $vg >/dev/null 2>&1
out=$(target/release/examples/policy_load 127.0.0.1:$PORT "$CONNS" "$SECS" 7)
callgrind_control -d $vg >/dev/null 2>&1
sleep 1
req=$(echo "$out" | sed -E 's/.* requests=([0-9]+).*/\1/')
dump=$(ls -S "$work"/cg.*.1 | head -1)
callgrind_annotate --inclusive=yes "$dump" >"$work/annotated" 2>/dev/null
inclusive() { grep -m1 "$1" "$work/annotated" | sed -E 's/^ *([0-9,]+).*/\1/' | tr -d ,; }
total=$(inclusive "PROGRAM TOTALS")
writer=$(inclusive "mxguard_store::writer::run \[")
echo "requests=$req instructions_per_request=$((total / req)) store_writer=$((writer / req)) request_side=$(((total - writer) / req))"
