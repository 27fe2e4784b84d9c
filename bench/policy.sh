#!/usr/bin/env bash
# Policy server throughput and latency, side by side with postgrey 1.37 in
# one run: first-seen triplets (every request is greylisted), 1 and 16
# connections, RUNS runs (default 3) of SECS s (default 5) each, median.
# Plus resident memory after load. mxguard runs its default configuration
# (sender pools on, max_pending_writes 1024); only the listen address, the
# data directory, the delay (postgrey's 60 s) and mynetworks (empty, as
# postgrey has no such thing) are set.
# Needs root for postgrey (installed with apt-get if missing). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_PORT=10030 MXG_PORT=10040 SECS=${SECS:-5} RUNS=${RUNS:-3}
if ! command -v postgrey >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgrey </dev/null >/dev/null
fi
cargo build --release -q -p mxguard
cargo build --release -q -p mxguard-policy --example policy_load
LOAD=target/release/examples/policy_load
work=$(mktemp -d); chmod 755 "$work"
trap 'kill $(cat $work/pg.pid 2>/dev/null) $mxg_pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/pg" && chown postgrey:postgrey "$work/pg"
postgrey --inet=127.0.0.1:$PG_PORT --dbdir="$work/pg" --delay=60 --daemonize \
  --pidfile="$work/pg.pid" --user=postgrey --group=postgrey </dev/null >/dev/null 2>&1
. bench/policy_config.sh
policy_config "$work/mxguard.toml" $MXG_PORT "$work/mxg"
target/release/mxguard -c "$work/mxguard.toml" serve </dev/null >"$work/mxg.log" 2>&1 &
mxg_pid=$!
sleep 2
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for name in postgrey mxguard; do
  port=$PG_PORT; [ $name = mxguard ] && port=$MXG_PORT
  for c in 1 16; do
    out=$(for i in $(seq 1 "$RUNS"); do $LOAD 127.0.0.1:$port $c "$SECS" $((i + c * 10)); done)
    rps=$(echo "$out" | sed -E 's/.* rps=([0-9]+).*/\1/' | median)
    p99=$(echo "$out" | sed -E 's/.* p99_ms=([0-9.]+).*/\1/' | median)
    echo "$name connections=$c rps_median=$rps p99_ms_median=$p99 runs_rps=$(echo "$out" | sed -E 's/.* rps=([0-9]+).*/\1/' | tr '\n' ' ')"
  done
done
echo "RSS after load: postgrey $(ps -o rss= -p "$(cat "$work/pg.pid")") KiB, mxguard $(ps -o rss= -p $mxg_pid) KiB"
