#!/usr/bin/env bash
# Instructions per request of the load generator itself, counted by
# callgrind (all its threads): policy_load shares the machine's two cores
# with the server it measures, so what it spends per request is taken from
# the server's share. Runs `mxguard serve` natively (the bench/policy.sh
# config) and policy_load under valgrind, 16 connections, SECS seconds.
# Usage: bench/policy_load_instructions.sh [MXGUARD_BINARY] [LOAD_BINARY] [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/mxguard} SECS=${3:-5} PORT=${PORT:-10058}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
if [ -z "${2:-}" ]; then
  cargo build --release -q -p mxguard-policy --example policy_load
fi
LOAD=${2:-target/release/examples/policy_load}
work=$(mktemp -d)
trap 'kill $mxg 2>/dev/null || true; rm -rf "$work"' EXIT
. bench/policy_config.sh
policy_config "$work/mxguard.toml" $PORT "$work/mxg"
"$BIN" -c "$work/mxguard.toml" serve </dev/null >"$work/log" 2>&1 &
mxg=$!
for _ in $(seq 1 50); do grep -q "policy server listening" "$work/log" && break; sleep 0.2; done
out=$(valgrind --tool=callgrind --callgrind-out-file="$work/cg" "$LOAD" 127.0.0.1:$PORT 16 "$SECS" 1 2>/dev/null)
req=$(echo "$out" | sed -E 's/.* requests=([0-9]+).*/\1/')
callgrind_annotate "$work/cg" >"$work/annotated" 2>/dev/null
total=$(grep -m1 "PROGRAM TOTALS" "$work/annotated" | sed -E 's/^ *([0-9,]+).*/\1/' | tr -d ,)
echo "requests=$req load_generator_instructions_per_request=$((total / req))"
