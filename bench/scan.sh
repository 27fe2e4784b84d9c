#!/usr/bin/env bash
# Scan throughput and memory on corpus-dev: `mxguard scan --json` over every
# message, 5 runs each on 1 thread and on all cores, median reported; then
# peak RSS with the corpus given once and 20 times, to show that memory does
# not grow with the number of messages scanned.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
C="$DATA/corpus-dev"
[ -d "$C" ] || { echo "bench/scan.sh: $C not found (set MXGUARD_TESTDATA)" >&2; exit 1; }
cargo build --release -q -p mxguard
B=target/release/mxguard
cores=$(nproc)
$B scan --json -j "$cores" "$C/ham" "$C/spam" >/dev/null   # warm the page cache

run() { # jobs, then inputs; prints messages/s
  local j=$1; shift
  $B scan --json --stats -j "$j" "$@" 2>&1 >/dev/null | sed -E 's/.*: ([0-9]+) messages\/s.*/\1/'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for j in 1 "$cores"; do
  rates=$(for i in 1 2 3 4 5; do run "$j" "$C/ham" "$C/spam"; done)
  echo "threads=$j messages/s runs: $(echo $rates) median: $(echo "$rates" | median)"
done
once=$($B scan --json --stats -j 1 "$C/ham" "$C/spam" 2>&1 >/dev/null)
many=$($B scan --json --stats -j 1 $(for i in $(seq 20); do echo "$C/ham $C/spam"; done) 2>&1 >/dev/null)
echo "1x:  $once"
echo "20x: $many"
