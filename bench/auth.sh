#!/usr/bin/env bash
# Scan CPU with email authentication on and off (issue 13's benchmark),
# through the milter (the path where the authentication checks run: they
# need the daemon's resolver).
#
#   sudo ./bench/auth.sh          (as root; needs dnsmasq-base)
#
# 1. Builds `mxguard` and the `milter_load` example (release).
# 2. Generates DNS records for corpus-dev's senders: for every From domain
#    a DMARC record (p=none, so nothing is rejected) and an SPF record; for
#    every DKIM-Signature d=/s= a key record (the corpus' real keys are not
#    known, so signatures fail after the key lookup: the cost of a real
#    verification minus nothing but the RSA operation's outcome); SPF for
#    the load's envelope sender domain. dnsmasq serves them on
#    127.0.0.1:$DNS_PORT with a TTL of $RECORD_TTL seconds (published
#    SPF, DKIM and DMARC records carry minutes to hours; dnsmasq's own
#    default of 0, "never cache", is unlike any real zone) and answers
#    NXDOMAIN, without an SOA, for anything else: nothing leaves the
#    machine.
# 3. Starts `mxguard serve` (milter only, temp data dir) with [dns] on that
#    server, runs milter_load over the corpus ($MESSAGES messages, warm-up
#    first), and reads the daemon's CPU time (utime + stime from
#    /proc/PID/stat) before and after: messages per CPU-second. Once with
#    SPF, DKIM, ARC and DMARC on, once with all four off; $RUNS rounds,
#    interleaved, medians printed.
#
# MXGUARD=path measures another mxguard binary with the same load.
# The lead runs it on a quiet machine; results in target/bench-auth/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/auth.sh: $*" >&2; exit 1; }
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
CORPUS="$DATA/corpus-dev"
[ -d "$CORPUS/ham" ] && [ -d "$CORPUS/spam" ] || die "$CORPUS/{ham,spam} not found (set MXGUARD_TESTDATA)"
CORPUS=$(cd "$CORPUS" && pwd)
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || die "dnsmasq not found: apt-get install dnsmasq-base"
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-20000}
CONCURRENCY=${CONCURRENCY:-8}
DNS_PORT=${DNS_PORT:-5354}
RECORD_TTL=${RECORD_TTL:-300}
MILTER=127.0.0.1:${MILTER_PORT:-11346}
OUT="$ROOT/target/bench-auth"
mkdir -p "$OUT"
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

echo "== building (release)"
cargo build --release -q -p mxguard
cargo build --release -q -p mxguard-milter --example milter_load
# MXGUARD=path: measure another build (e.g. a commit before a change).
BIN="${MXGUARD:-$ROOT/target/release/mxguard}"
LOAD="$ROOT/target/release/examples/milter_load"

echo "== DNS records for the corpus' senders"
python3 "$ROOT/bench/auth_records.py" "$CORPUS" > "$W/records.conf"
echo "   $(wc -l < "$W/records.conf") records"
"$DNSMASQ" -k -C /dev/null --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --user=root --conf-file="$W/records.conf" --address=/#/ \
  --local-ttl="$RECORD_TTL" \
  --pid-file="$W/dnsmasq.pid" --log-facility=- >/dev/null 2>&1 &
PIDS+=($!)
sleep 1

config() { # $1: true|false
  cat <<EOF2
[milter]
listen = "$MILTER"
[policy]
enabled = false
[store]
data_dir = "$W/data-$1"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[spf]
enabled = $1
[dkim]
enabled = $1
[arc_verify]
enabled = $1
[dmarc]
enabled = $1
EOF2
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_once() { # $1: on|off
  local on=false; [ "$1" = on ] && on=true
  config "$on" > "$W/mxguard-$1.toml"
  "$BIN" -c "$W/mxguard-$1.toml" serve >"$W/serve-$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (echo > "/dev/tcp/${MILTER%:*}/${MILTER#*:}") 2>/dev/null && break; sleep 0.1; done
  "$LOAD" --connect "$MILTER" --dir "$CORPUS/ham" --dir "$CORPUS/spam" \
    --messages 500 --concurrency "$CONCURRENCY" >/dev/null 2>&1 || true
  local t0; t0=$(cpu_ticks "$pid")
  "$LOAD" --connect "$MILTER" --dir "$CORPUS/ham" --dir "$CORPUS/spam" --client-ip 192.0.2.10 \
    --messages "$MESSAGES" --concurrency "$CONCURRENCY" > "$OUT/load-$1.txt" 2>&1 || true
  local t1; t1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local hz; hz=$(getconf CLK_TCK)
  python3 -c "t=($t1-$t0)/$hz; print(f'{$MESSAGES/t:.0f}' if t>0 else 'nan')"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: > "$OUT/results.txt"
for r in $(seq "$RUNS"); do
  for mode in on off; do
    v=$(run_once "$mode")
    echo "$mode $v" | tee -a "$OUT/results.txt"
  done
done
echo "== messages per CPU-second of the scan daemon (median of $RUNS), $MESSAGES messages, concurrency $CONCURRENCY"
for mode in on off; do
  echo "auth $mode: $(awk -v m="$mode" '$1==m {print $2}' "$OUT/results.txt" | median)"
done
