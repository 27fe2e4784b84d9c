#!/usr/bin/env bash
# CPU cost of `mxguard scan` on corpus-dev: messages per CPU-second (user +
# system time of the whole process, from /usr/bin/time; the corpus given
# REPEAT=10 times per process), 5 runs, median.
# Give binaries to compare them side by side in one run (same machine
# state), e.g. `bench/scan_cpu.sh /tmp/mxguard-before target/release/mxguard`;
# without arguments it builds and measures this tree's release binary.
# TRAINED=1: scan with a classifier model learned from corpus-dev (the
# issue's second bar), instead of an empty data directory (a new install).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
C="$DATA/corpus-dev"
[ -d "$C" ] || { echo "bench/scan_cpu.sh: $C not found (set MXGUARD_TESTDATA)" >&2; exit 1; }
if [ $# -eq 0 ]; then
  cargo build --release -q -p mxguard
  set -- target/release/mxguard
fi
EMPTY=$(mktemp -d)
trap 'rm -rf "$EMPTY"' EXIT
if [ "${TRAINED:-0}" = 1 ]; then
  "$1" learn --data-dir "$EMPTY" --spam "$C/spam" --ham "$C/ham" >/dev/null
fi
# The corpus REPEAT times per process, so /usr/bin/time's 10 ms steps stay small.
REPEAT=${REPEAT:-10}
J=${J:-$(nproc)}   # threads
INPUTS=()
for _ in $(seq "$REPEAT"); do INPUTS+=("$C/ham" "$C/spam"); done
n=$(( $(find "$C/ham" "$C/spam" -type f | wc -l) * REPEAT ))
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for B in "$@"; do
  # Without TRAINED=1, a data directory without a store: no model, as a new install scans.
  "$B" scan --data-dir "$EMPTY" --json -j "$(nproc)" "$C/ham" "$C/spam" >/dev/null # warm the page cache
done
for round in 1 2 3 4 5; do
  for B in "$@"; do
    cpu=$( { /usr/bin/time -f "%U %S" "$B" scan --data-dir "$EMPTY" --json -j "$J" "${INPUTS[@]}" >/dev/null; } 2>&1 | tail -1 | awk '{print $1 + $2}')
    echo "$B $(awk -v n="$n" -v c="$cpu" 'BEGIN {printf "%.0f", n / c}')"
  done
done | awk '{r[$1] = r[$1] " " $2} END {for (b in r) print b ":" r[b]}' | while IFS=: read -r b runs; do
  echo "$b: $n messages; messages per CPU-second, runs:$runs; median: $(echo $runs | tr ' ' '\n' | median)"
done
