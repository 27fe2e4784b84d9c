#!/usr/bin/env bash
# Instructions per milter message, counted by callgrind: repeatable on a
# shared machine where messages/s are not. Runs `mxguard serve` (milter
# only, bench/milter.sh's DNS: dnsmasq answering NXDOMAIN to everything,
# default checks) under valgrind, sends a warm-up with milter_load (every
# DNS answer cached after it), zeroes the counters, sends MESSAGES messages
# of corpus-dev, one connection per message as Postfix drives a milter,
# over CONNS connections, dumps the counters and divides by the messages.
# Prints the total, the store writer thread's share and the share of the
# rest by thread (callgrind --separate-threads). Loopback only.
# Usage: bench/milter_instructions.sh [BINARY] [CONNS] [MESSAGES]
# (LOAD=path: a milter_load already built, e.g. to compare two binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/callgrind_threads.sh
BIN=${1:-target/release/mxguard} CONNS=${2:-8} MESSAGES=${3:-3000}
PORT=${PORT:-11356} DNS_PORT=${DNS_PORT:-5363}
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
CORPUS="$DATA/corpus-dev"
[ -d "$CORPUS/ham" ] || { echo "$CORPUS not found (set MXGUARD_TESTDATA)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || { echo "needs dnsmasq (apt-get install dnsmasq-base)" >&2; exit 1; }
if [ -z "${LOAD:-}" ]; then
  cargo build --release -q -p mxguard-milter --example milter_load
  LOAD=target/release/examples/milter_load
fi
work=$(mktemp -d)
vg= dns=
trap '[ -n "$vg" ] && kill $vg 2>/dev/null; [ -n "$dns" ] && kill $dns 2>/dev/null; rm -rf "$work"' EXIT
"$DNSMASQ" -k -C /dev/null --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --user=root --address=/#/ --log-facility=- >/dev/null 2>&1 &
dns=$!
cat >"$work/mxguard.toml" <<EOF
[milter]
listen = "127.0.0.1:$PORT"
[policy]
enabled = false
[store]
data_dir = "$work/data"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
EOF
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/cg.%p" \
  "$BIN" -c "$work/mxguard.toml" serve </dev/null >"$work/log" 2>&1 &
vg=$!
for _ in $(seq 1 240); do grep -q "milter listening" "$work/log" && break; sleep 0.5; done
run_load() { # messages
  "$LOAD" --connect 127.0.0.1:$PORT --concurrency "$CONNS" --per-connection 1 --messages "$1" \
    --dir "$CORPUS/ham" --dir "$CORPUS/spam" --json
}
run_load 2500 >/dev/null
callgrind_control -z $vg >/dev/null 2>&1
out=$(run_load "$MESSAGES")
callgrind_control -d $vg >/dev/null 2>&1
sleep 2
sent=$(echo "$out" | sed -E 's/.*"messages":([0-9]+).*/\1/')
callgrind_per_message "$work" "$sent" ""
