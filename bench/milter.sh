#!/usr/bin/env bash
# The milter benchmark of issue 3: mxguard's milter side by side with
# rspamd 3.4's milter proxy, in one run, on corpus-dev's messages.
#
#   sudo ./bench/milter.sh            (as root; Debian 12; about 8 minutes)
#
# 1. Builds `mxguard` and the `milter_load` example (release).
# 2. Installs what is missing: rspamd and dnsmasq-base (apt-get), Postfix
#    (scripts/peers.sh install).
# 3. Starts dnsmasq on 127.0.0.1:5353 answering NXDOMAIN to everything, and a
#    private rspamd (copy of /etc/rspamd in a temp dir; local.d: that DNS
#    server, fuzzy_check disabled; default workers; proxy in milter mode on
#    127.0.0.1:11332); waits until its milter answers and it has gone idle
#    (hyperscan compiled).
# 4. Starts `mxguard serve` (milter on 127.0.0.1:11336, policy server off,
#    temp data dir) with the default checks plus the rules and multimap list
#    written below.
# 5. Idle RSS of both, before any message (rspamd: all its processes).
# 6. milter_load (milter protocol, no Postfix) against both, same messages,
#    concurrency 1, 8 and 50, runs interleaved; median of the runs.
# 7. End to end through Postfix (bench/milter-postfix.sh, under the tests'
#    lock /tmp/mxguard-postfix-tests.lock): the corpus replayed over SMTP with
#    no milter, with mxguard (TCP, and a second instance on a unix socket in
#    Postfix's queue directory), with rspamd; Postfix's config put back after.
# 8. Prints the summary tables (bench/milter_tools.py report).
#
# Everything listens on 127.0.0.1 only; what it starts is stopped on exit.
# Results and logs: target/bench-milter/ (results.jsonl, *.log).
# Environment: MXGUARD_TESTDATA (../shared/testdata), RUNS (3),
# CONCURRENCY ("1 8 50"), PER_CONNECTION (1: as Postfix drives a milter), MXG_REPEAT (5: mxguard runs send the corpus this
# many times, rspamd runs once), POSTFIX (1; 0 skips step 7), E2E_* (see
# bench/milter-postfix.sh), RECORDS (0; 1: the DNS server also answers
# bench/auth_records.py's SPF, DKIM and DMARC records for the corpus'
# senders with a TTL of 300 s, as bench/auth.sh serves them, so both
# filters' authentication checks find records to parse and evaluate
# instead of NXDOMAIN: issue 13's "milter bar with authentication on").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/milter.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages, starts rspamd and uses Postfix)"
command -v cargo >/dev/null || die "cargo not found: install Rust 1.95 or newer (https://rustup.rs)"

DATA=${MXGUARD_TESTDATA:-../shared/testdata}
CORPUS="$DATA/corpus-dev"
[ -d "$CORPUS/ham" ] && [ -d "$CORPUS/spam" ] || die "$CORPUS/{ham,spam} not found (set MXGUARD_TESTDATA)"
CORPUS=$(cd "$CORPUS" && pwd)
DIRS=("$CORPUS/ham" "$CORPUS/spam")
N=$(find "${DIRS[@]}" -maxdepth 1 -type f | wc -l)
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-"1 8 50"}
# Messages per milter connection: 1 is how Postfix drives a milter (one
# connection per SMTP session, most sessions carry one message); 0 = one
# connection per load session for the whole run.
PER_CONNECTION=${PER_CONNECTION:-1}
MXG_REPEAT=${MXG_REPEAT:-5}
WARMUP=200
MXG_ADDR=127.0.0.1:11336 RSPAMD_ADDR=127.0.0.1:11332 DNS_PORT=5353
OUT="$ROOT/target/bench-milter"
PY=/usr/bin/python3
TOOLS="$ROOT/bench/milter_tools.py"

echo "== building (release)"
cargo build --release -q -p mxguard
cargo build --release -q -p mxguard-milter --example milter_load
MXG="$ROOT/target/release/mxguard"
LOAD="$ROOT/target/release/examples/milter_load"

echo "== peers"
missing=()
for p in rspamd dnsmasq-base python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
./scripts/peers.sh install
echo "rspamd $(rspamd --version | awk '{print $4}'), $(postconf -h mail_version | sed 's/^/Postfix /'), corpus $N messages"

rm -rf "$OUT"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
W=$(mktemp -d /tmp/mxguard-bench-milter.XXXXXX)
chmod 755 "$W"
mxg_pid= mxgu_pid= dns_pid= sockdir=
cleanup() {
  set +e
  [ -n "$mxg_pid" ] && kill "$mxg_pid" 2>/dev/null && wait "$mxg_pid" 2>/dev/null
  [ -n "$mxgu_pid" ] && kill "$mxgu_pid" 2>/dev/null && wait "$mxgu_pid" 2>/dev/null
  [ -n "$sockdir" ] && rm -rf "$sockdir"
  [ -f "$W/rspamd/run/rspamd.pid" ] && kill "$(cat "$W/rspamd/run/rspamd.pid")" 2>/dev/null
  [ -n "$dns_pid" ] && kill "$dns_pid" 2>/dev/null
  for _ in $(seq 1 50); do
    [ -f "$W/rspamd/run/rspamd.pid" ] && kill -0 "$(cat "$W/rspamd/run/rspamd.pid")" 2>/dev/null || break
    sleep 0.2
  done
  cp "$W"/*.log "$W/rspamd/log/rspamd.log" "$W/mxguard.toml" "$OUT/" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

port_busy() { ss -Hltn "sport = :$1" | grep -q . || ss -Hlun "sport = :$1" | grep -q .; }
for p in 11332 11333 11334 11336; do
  port_busy $p && die "port 127.0.0.1:$p is already in use (another rspamd or mxguard?); stop it first"
done

# --- DNS: everything NXDOMAIN, at once --------------------------------------
if port_busy $DNS_PORT; then
  echo "note: a DNS server already listens on port $DNS_PORT; rspamd will use it"
else
  cat >"$W/dnsmasq.conf" <<EOF
port=$DNS_PORT
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
user=nobody
address=/#/
EOF
  if [ "${RECORDS:-0}" = 1 ]; then
    python3 "$ROOT/bench/auth_records.py" "$CORPUS" >"$W/records.conf"
    printf 'conf-file=%s\nlocal-ttl=300\n' "$W/records.conf" >>"$W/dnsmasq.conf"
    echo "== DNS: $(wc -l <"$W/records.conf") SPF/DKIM/DMARC records for the corpus' senders (RECORDS=1)"
  fi
  dnsmasq -k -C "$W/dnsmasq.conf" --log-facility=- </dev/null >>"$W/dnsmasq.log" 2>&1 &
  dns_pid=$!
fi

# --- rspamd: a private copy of the packaged config, offline -----------------
R="$W/rspamd"
mkdir -p "$R"/{run,db,log}
cp -r /etc/rspamd "$R/etc"
sed -i -e 's/bind_socket = "localhost:\(1133[2-5]\)";/bind_socket = "127.0.0.1:\1";/' "$R/etc/rspamd.conf"
sed -i -e 's/hosts = "localhost";/hosts = "127.0.0.1:11333";/' "$R/etc/worker-proxy.inc"
printf 'enabled = false;\n' >"$R/etc/local.d/fuzzy_check.conf"
printf 'dns {\n nameserver = ["127.0.0.1:%s"];\n timeout = 0.5s;\n retransmits = 1;\n}\n' $DNS_PORT \
  >"$R/etc/local.d/options.inc"
chown -R _rspamd:_rspamd "$R/run" "$R/db" "$R/log"
rspamd -c "$R/etc/rspamd.conf" -u _rspamd -g _rspamd --var CONFDIR="$R/etc" --var LOCAL_CONFDIR="$R/etc" \
  --var RUNDIR="$R/run" --var DBDIR="$R/db" --var LOGDIR="$R/log" -p "$R/run/rspamd.pid" \
  </dev/null >>"$W/rspamd-start.log" 2>&1 || die "rspamd did not start (see $OUT/rspamd-start.log)"

# --- mxguard serve ------------------------------------------------------------
# Default checks (GTUBE, header sanity) plus six [[rules]] of the usual kinds
# (subject, decoded body, raw body, one header, attachment names) and one
# [[multimap]] list: the domains of the header From checked against a map of
# 1,000 domains (subdomain match).
{
  for i in $(seq 1 1000); do echo "spam-sender-$i.example"; done
  printf '%s\n' "# a few real-looking entries" bulkmail.example.net cheap-meds.example.org
} >"$W/from_domains.map"
cat >"$W/mxguard.toml" <<EOF
[milter]
listen = "$MXG_ADDR"

[policy]
enabled = false

[store]
data_dir = "$W/mxguard-data"

# The same DNS server as rspamd's (NXDOMAIN at once), for the
# authentication checks that are on by default.
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]

[[rules]]
name = "SUBJ_LOTTERY"
target = "subject"
pattern = "/you (have )?won/i"
score = 4.0

[[rules]]
name = "SUBJ_PHARMA"
target = "subject"
pattern = '/\\b(viagra|cialis|levitra|pharmacy|replica|rolex)\\b/i'
score = 3.0

[[rules]]
name = "BODY_PHARMA"
target = "body"
pattern = '/\\b(viagra|cialis|levitra|online pharmacy)\\b/i'
score = 2.5

[[rules]]
name = "RAW_URL_SHORTENER"
target = "rawbody"
pattern = '/https?:\\/\\/(bit\\.ly|tinyurl\\.com|goo\\.gl|ow\\.ly)\\//i'
score = 2.0

[[rules]]
name = "XMAILER_BULK"
target = "header"
header = "X-Mailer"
pattern = "/(mass|bulk) ?mail/i"
score = 2.5

[[rules]]
name = "BAD_ATTACHMENT"
target = "filename"
pattern = '/\\.(exe|scr|js|vbs|bat|pif)\$/i'
action = "REJECT Executable attachments are not accepted"

[[multimap]]
name = "FROM_DOMAIN_BLOCKLIST"
type = "from"
source = "header"
match = "subdomain"
map = "$W/from_domains.map"
score = 5.0
EOF
"$MXG" config check "$W/mxguard.toml" >/dev/null || die "mxguard config check failed"
"$MXG" -c "$W/mxguard.toml" serve </dev/null >>"$W/mxguard.log" 2>&1 &
mxg_pid=$!

# --- wait until both answer, and rspamd has finished starting ------------------
wait_tcp() { # port seconds
  local i
  for i in $(seq 1 $(($2 * 5))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
wait_tcp 11336 30 || die "mxguard serve does not listen on $MXG_ADDR (see $OUT/mxguard.log)"
wait_tcp 11332 120 || die "rspamd's milter proxy does not listen on $RSPAMD_ADDR (see $OUT/rspamd.log)"
rspamd_pids() {
  local main
  main=$(cat "$R/run/rspamd.pid")
  echo "$main" $(pgrep -P "$main")
}
cpu_ticks() { # total utime+stime of the given pids
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
echo "== waiting for rspamd to go idle (workers started, regexps compiled)"
idle=0 prev=$(cpu_ticks $(rspamd_pids))
for _ in $(seq 1 120); do
  sleep 2
  now=$(cpu_ticks $(rspamd_pids))
  if [ $((now - prev)) -le 4 ]; then idle=$((idle + 1)); else idle=0; fi
  prev=$now
  [ $idle -ge 2 ] && break
done
[ $idle -ge 2 ] || echo "note: rspamd still busy after 240 s; measuring anyway"
sleep 1

rss_line() { # server when pids...
  local server=$1 when=$2
  shift 2
  read -r rss pss < <($PY "$TOOLS" rss "$@")
  echo "{\"phase\":\"rss\",\"server\":\"$server\",\"when\":\"$when\",\"rss_kib\":$rss,\"pss_kib\":$pss,\"processes\":$#}" >>"$RESULTS"
  echo "RSS $server ($when): $((rss / 1024)) MiB (PSS $((pss / 1024)) MiB, $# processes)"
}
rss_line mxguard "idle, after start" $mxg_pid
rss_line rspamd "idle, after start" $(rspamd_pids)
echo "rspamd processes (RSS KiB, role):"
ps -o rss=,args= -p "$(rspamd_pids | tr ' ' ,)" | sed 's/rspamd: //; s/^/  /'


for name in mxguard rspamd; do
  addr=$MXG_ADDR
  [ $name = rspamd ] && addr=$RSPAMD_ADDR
  probe=$("$LOAD" --connect "$addr" --concurrency 1 --messages 1 --json --dir "$CORPUS/ham" 2>&1) || true
  echo "$probe" | grep -q '"errors":0' || die "$name's milter does not answer properly: $probe"
done

# --- milter protocol, no Postfix -----------------------------------------------
echo "== milter protocol direct: $N messages, concurrency $CONCURRENCY, $RUNS runs (mxguard: corpus x$MXG_REPEAT), $PER_CONNECTION message(s) per connection (0: unlimited)"
for c in $CONCURRENCY; do
  runs=$RUNS
  [ "$c" = 1 ] && runs=${RUNS_C1:-1}
  for run in $(seq 1 "$runs"); do
    for name in rspamd mxguard; do
      if [ $name = rspamd ]; then addr=$RSPAMD_ADDR total=$N; else addr=$MXG_ADDR total=$((N * MXG_REPEAT)); fi
      out=$("$LOAD" --connect "$addr" --concurrency "$c" --per-connection "$PER_CONNECTION" --messages "$total" --warmup $WARMUP --json \
        --dir "$CORPUS/ham" --dir "$CORPUS/spam" 2>>"$W/milter_load.log") || true
      echo "$out" | sed "s/^{/{\"phase\":\"milter\",\"server\":\"$name\",\"run\":$run,/" >>"$RESULTS"
      echo "  $name c=$c run $run: $out"
      echo "$out" | grep -q "\"messages\":$total," || echo "  WARNING: $name answered $(echo "$out" | sed -E 's/.*"messages":([0-9]+).*/\1/') of $total messages"
    done
  done
done
rss_line mxguard "after the milter runs" $mxg_pid
rss_line rspamd "after the milter runs" $(rspamd_pids)

# --- end to end through Postfix ------------------------------------------------
# A second mxguard, same config, on a unix socket inside Postfix's queue
# directory (smtpd is chrooted there on Debian), to compare with TCP (before
# the milter acknowledged packets that get no reply at once, TCP had a 40 ms
# delayed-ACK stall per message that a unix socket does not have; see
# docs/BENCHMARKS.md).
if [ "${POSTFIX:-1}" = 1 ]; then
  sockdir="$(postconf -h queue_directory)/mxguard-bench"
  mkdir -p "$sockdir"
  sed -e "s|^listen = .*|listen = \"$sockdir/milter.sock\"\nsocket_mode = \"0666\"|" \
    -e "s|^data_dir = .*|data_dir = \"$W/mxguard-unix-data\"|" "$W/mxguard.toml" >"$W/mxguard-unix.toml"
  "$MXG" -c "$W/mxguard-unix.toml" serve </dev/null >>"$W/mxguard-unix.log" 2>&1 &
  mxgu_pid=$!
  unix_milter="unix:$sockdir/milter.sock"
  [ "$(postconf -F smtp/inet/chroot)" = n ] || unix_milter="unix:/mxguard-bench/milter.sock"
  for _ in $(seq 1 50); do [ -S "$sockdir/milter.sock" ] && break; sleep 0.2; done
  echo "== Postfix end to end (waiting for /tmp/mxguard-postfix-tests.lock)"
  flock -w 1800 /tmp/mxguard-postfix-tests.lock bench/milter-postfix.sh "$RESULTS" \
    "none=none mxguard=inet:$MXG_ADDR mxguard-unix=$unix_milter rspamd=inet:$RSPAMD_ADDR" "${DIRS[@]}" ||
    echo "WARNING: the Postfix part failed (see above); the direct figures stand"
fi

echo
echo "== summary (corpus-dev, $N messages; $(nproc) cores; load generator on the same machine; $SECONDS s in all)"
$PY "$TOOLS" report "$RESULTS" | tee "$OUT/summary.md"
