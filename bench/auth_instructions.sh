#!/usr/bin/env bash
# Instructions per milter message with email authentication on (or off),
# counted by callgrind: bench/auth.sh's load, repeatable on a shared
# machine where CPU-seconds are not. dnsmasq serves bench/auth_records.py's
# records for corpus-dev's senders (TTL 300 s, NXDOMAIN for the rest);
# `mxguard serve` runs with auth.sh's config under valgrind; a warm-up
# fills every cache (DNS answers, parsed records), the counters are zeroed,
# MESSAGES messages go through at CONNS connections as auth.sh sends them
# (connections kept open), and the total is divided by the messages.
# Prints the total and the share by thread (callgrind --separate-threads).
# Loopback only.
# Usage: bench/auth_instructions.sh [BINARY] [CONNS] [MESSAGES]
#   AUTH=off: SPF, DKIM, ARC and DMARC off (the difference is their cost)
#   LOAD=path: a milter_load already built; KEEP=dir: keep the callgrind files
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/callgrind_threads.sh
BIN=${1:-target/release/mxguard} CONNS=${2:-8} MESSAGES=${3:-3000}
AUTH=${AUTH:-on} WARMUP=${WARMUP:-2500}
PORT=${PORT:-11357} DNS_PORT=${DNS_PORT:-5364}
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
CORPUS="$DATA/corpus-dev"
[ -d "$CORPUS/ham" ] || { echo "$CORPUS not found (set MXGUARD_TESTDATA)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || { echo "needs dnsmasq (apt-get install dnsmasq-base)" >&2; exit 1; }
case "$AUTH" in on) on=true ;; off) on=false ;; *) echo "AUTH=on or AUTH=off" >&2; exit 1 ;; esac
if [ -z "${LOAD:-}" ]; then
  cargo build --release -q -p mxguard-milter --example milter_load
  LOAD=target/release/examples/milter_load
fi
work=$(mktemp -d)
vg= dns=
trap '[ -n "$vg" ] && kill $vg 2>/dev/null; [ -n "$dns" ] && kill $dns 2>/dev/null; rm -rf "$work"' EXIT
python3 bench/auth_records.py "$CORPUS" >"$work/records.conf"
"$DNSMASQ" -k -C /dev/null --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --user=root --conf-file="$work/records.conf" --address=/#/ \
  --local-ttl=300 --log-facility=- >/dev/null 2>&1 &
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
[spf]
enabled = $on
[dkim]
enabled = $on
[arc_verify]
enabled = $on
[dmarc]
enabled = $on
EOF
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/cg.%p" \
  "$BIN" -c "$work/mxguard.toml" serve </dev/null >"$work/log" 2>&1 &
vg=$!
for _ in $(seq 1 240); do grep -q "milter listening" "$work/log" && break; sleep 0.5; done
run_load() { # messages
  "$LOAD" --connect 127.0.0.1:$PORT --concurrency "$CONNS" --messages "$1" \
    --client-ip 192.0.2.10 --dir "$CORPUS/ham" --dir "$CORPUS/spam" --json
}
run_load "$WARMUP" >/dev/null
callgrind_control -z $vg >/dev/null 2>&1
out=$(run_load "$MESSAGES")
callgrind_control -d $vg >/dev/null 2>&1
sleep 2
sent=$(echo "$out" | sed -E 's/.*"messages":([0-9]+).*/\1/')
callgrind_per_message "$work" "$sent" "auth=$AUTH "
