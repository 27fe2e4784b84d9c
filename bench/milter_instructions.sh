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
# (LOAD=path: a milter_load already built, e.g. to compare two binaries;
#  KEEP=dir: keep the callgrind files; WARMUP=N messages, default 2500;
#  AUTH=on|off: bench/auth.sh's load instead, see bench/auth_instructions.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/mxguard} CONNS=${2:-8} MESSAGES=${3:-3000}
PORT=${PORT:-11356} DNS_PORT=${DNS_PORT:-5363} WARMUP=${WARMUP:-2500} AUTH=${AUTH:-}
# AUTH=on|off: auth.sh's records, config sections and load (one client
# address, connections kept open); unset: the milter bench's own.
case "$AUTH" in
  "") ;; on) on=true ;; off) on=false ;;
  *) echo "AUTH=on or AUTH=off" >&2; exit 1 ;;
esac
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
records=/dev/null ttl=0
if [ -n "$AUTH" ]; then
  records="$work/records.conf" ttl=300
  python3 bench/auth_records.py "$CORPUS" >"$records"
fi
"$DNSMASQ" -k -C /dev/null --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --user=root --conf-file="$records" --address=/#/ \
  --local-ttl="$ttl" --log-facility=- >/dev/null 2>&1 &
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
if [ -n "$AUTH" ]; then
  for section in spf dkim arc_verify dmarc; do
    printf '[%s]\nenabled = %s\n' "$section" "$on" >>"$work/mxguard.toml"
  done
  load_args=(--client-ip 192.0.2.10)
else
  load_args=(--per-connection 1)
fi
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/cg.%p" \
  "$BIN" -c "$work/mxguard.toml" serve </dev/null >"$work/log" 2>&1 &
vg=$!
for _ in $(seq 1 240); do grep -q "milter listening" "$work/log" && break; sleep 0.5; done
run_load() { # messages
  "$LOAD" --connect 127.0.0.1:$PORT --concurrency "$CONNS" "${load_args[@]}" --messages "$1" \
    --dir "$CORPUS/ham" --dir "$CORPUS/spam" --json
}
run_load "$WARMUP" >/dev/null
callgrind_control -z $vg >/dev/null 2>&1
out=$(run_load "$MESSAGES")
callgrind_control -d $vg >/dev/null 2>&1
sleep 2
sent=$(echo "$out" | sed -E 's/.*"messages":([0-9]+).*/\1/')
# Each thread named by the outermost function of ours or tokio's it runs
# (tokio's blocking pool threads run workers too, after block_in_place).
total=0
: >"$work/threads"
for f in "$work"/cg.*.1-*; do
  n=$(grep -m1 -E '^(summary|totals):' "$f" | awk '{print $2}')
  [ -n "$n" ] && [ "$n" -gt 0 ] || continue
  total=$((total + n))
  what=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
    grep -oE 'mxguard_store::writer::run|tokio::runtime::scheduler::multi_thread::worker::run|tokio::runtime::blocking::pool::Inner::run|mxguard_net::memory::release_soon|std::rt::lang_start' |
    head -1)
  echo "$n ${what:-other} ${f##*/}" >>"$work/threads"
done
echo "${AUTH:+auth=$AUTH }messages=$sent instructions_per_message=$((total / sent))"
sort -rn "$work/threads" | awk -v m="$sent" '{printf "  %-58s %8d per message  (%s)\n", $2, $1 / m, $3}'
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP" && cp "$work"/cg.*.1-* "$KEEP"/ && echo "callgrind files kept in $KEEP"
fi
