#!/usr/bin/env bash
# The HTTP API benchmark of issue 17: `POST /checkv2` on corpus-dev's
# messages against mxguard serve's API and rspamd 3.4's normal worker, in
# one run, at 8 and 50 concurrent connections; and the idle RSS of serve
# with the API on.
#
#   sudo ./bench/web.sh            (as root; Debian 12; about 4 minutes)
#
# 1. Builds `mxguard` and the `webload` example (release).
# 2. Installs what is missing: rspamd and dnsmasq-base (apt-get).
# 3. dnsmasq on 127.0.0.1:5353 answering NXDOMAIN to everything (both
#    scanners' DNS checks get an answer at once, no network), and a private
#    rspamd (copy of /etc/rspamd in a temp dir, fuzzy_check off, that DNS
#    server; default workers, normal worker on 127.0.0.1:11333); waits until
#    it has gone idle (hyperscan compiled).
# 4. mxguard serve: milter on 127.0.0.1:11346, API on 127.0.0.1:11337 (no
#    password: loopback), policy server off, the same DNS server, default
#    checks.
# 5. Idle RSS of serve (VmRSS) before any request.
# 6. webload (one client for both: keep-alive HTTP/1.1, reconnecting when a
#    server closes) for SECONDS at each concurrency, mxguard then rspamd,
#    after a warm-up; messages/s, p50, p99 per run.
#
# Everything listens on 127.0.0.1 only; what it starts is stopped on exit.
# Environment: MXGUARD_TESTDATA (../shared/testdata), SECONDS_PER_RUN (10),
# CONCURRENCY ("8 50").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/web.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts rspamd)"
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
CORPUS="$DATA/corpus-dev"
[ -d "$CORPUS/ham" ] && [ -d "$CORPUS/spam" ] || die "$CORPUS/{ham,spam} not found (set MXGUARD_TESTDATA)"
CORPUS=$(cd "$CORPUS" && pwd)
SECS=${SECONDS_PER_RUN:-10}
CONCURRENCY=${CONCURRENCY:-"8 50"}
DNS_PORT=5353 WEB=127.0.0.1:11337 RSPAMD=127.0.0.1:11333

echo "== building (release)"
nice -n 10 cargo build --release -q -p mxguard
nice -n 10 cargo build --release -q -p mxguard-web --example webload
MXG="$ROOT/target/release/mxguard"
LOAD="$ROOT/target/release/examples/webload"

missing=()
for p in rspamd dnsmasq-base; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
FILES=()
while IFS= read -r f; do FILES+=("$f"); done < <(find "$CORPUS/ham" "$CORPUS/spam" -maxdepth 1 -type f | sort)
echo "rspamd $(rspamd --version | awk '{print $4}'), corpus ${#FILES[@]} messages, $(nproc) cores"

W=$(mktemp -d /tmp/mxguard-bench-web.XXXXXX)
chmod 755 "$W"
mxg_pid= dns_pid=
cleanup() {
  set +e
  [ -n "$mxg_pid" ] && kill "$mxg_pid" 2>/dev/null && wait "$mxg_pid" 2>/dev/null
  [ -f "$W/rspamd/run/rspamd.pid" ] && kill "$(cat "$W/rspamd/run/rspamd.pid")" 2>/dev/null
  [ -n "$dns_pid" ] && kill "$dns_pid" 2>/dev/null
  for _ in $(seq 1 50); do
    [ -f "$W/rspamd/run/rspamd.pid" ] && kill -0 "$(cat "$W/rspamd/run/rspamd.pid")" 2>/dev/null || break
    sleep 0.2
  done
  rm -rf "$W"
}
trap cleanup EXIT
port_busy() { ss -Hltn "sport = :$1" | grep -q .; }
for p in 11333 11337 11346; do
  port_busy $p && die "port 127.0.0.1:$p is already in use (another rspamd or mxguard?); stop it first"
done

if ! ss -Hlun "sport = :$DNS_PORT" | grep -q .; then
  cat >"$W/dnsmasq.conf" <<EOF
port=$DNS_PORT
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
user=nobody
address=/#/
EOF
  dnsmasq -k -C "$W/dnsmasq.conf" --log-facility=- </dev/null >>"$W/dnsmasq.log" 2>&1 &
  dns_pid=$!
fi

R="$W/rspamd"
mkdir -p "$R"/{run,db,log}
cp -r /etc/rspamd "$R/etc"
sed -i -e 's/bind_socket = "localhost:\(1133[2-5]\)";/bind_socket = "127.0.0.1:\1";/' "$R/etc/rspamd.conf"
printf 'enabled = false;\n' >"$R/etc/local.d/fuzzy_check.conf"
printf 'dns {\n nameserver = ["127.0.0.1:%s"];\n timeout = 0.5s;\n retransmits = 1;\n}\n' $DNS_PORT \
  >"$R/etc/local.d/options.inc"
chown -R _rspamd:_rspamd "$R/run" "$R/db" "$R/log"
rspamd -c "$R/etc/rspamd.conf" -u _rspamd -g _rspamd --var CONFDIR="$R/etc" --var LOCAL_CONFDIR="$R/etc" \
  --var RUNDIR="$R/run" --var DBDIR="$R/db" --var LOGDIR="$R/log" -p "$R/run/rspamd.pid" \
  </dev/null >>"$W/rspamd-start.log" 2>&1 || die "rspamd did not start"

cat >"$W/mxguard.toml" <<EOF
[milter]
listen = "127.0.0.1:11346"
[policy]
enabled = false
[store]
data_dir = "$W/mxguard-data"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[web]
listen = "$WEB"
EOF
"$MXG" -c "$W/mxguard.toml" config check >/dev/null || die "mxguard config check failed"
"$MXG" -c "$W/mxguard.toml" serve </dev/null >>"$W/mxguard.log" 2>&1 &
mxg_pid=$!

wait_tcp() { # port seconds
  local i
  for i in $(seq 1 $(($2 * 5))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
wait_tcp 11337 30 || { cat "$W/mxguard.log" >&2; die "mxguard serve does not listen on $WEB"; }
wait_tcp 11333 120 || die "rspamd does not listen on $RSPAMD"
cpu_ticks() {
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
rspamd_pids() { local m; m=$(cat "$R/run/rspamd.pid"); echo "$m" $(pgrep -P "$m"); }
echo "== waiting for rspamd to go idle"
idle=0 prev=$(cpu_ticks $(rspamd_pids))
for _ in $(seq 1 120); do
  sleep 2
  now=$(cpu_ticks $(rspamd_pids))
  if [ $((now - prev)) -le 4 ]; then idle=$((idle + 1)); else idle=0; fi
  prev=$now
  [ $idle -ge 2 ] && break
done
sleep 1
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$mxg_pid/status")
echo "idle RSS of mxguard serve (milter + API on): $((rss / 1024)) MiB ($rss KiB)"

echo "== warm-up"
"$LOAD" "$WEB" /checkv2 8 3 "${FILES[@]}" >/dev/null
"$LOAD" "$RSPAMD" /checkv2 8 3 "${FILES[@]}" >/dev/null
for c in $CONCURRENCY; do
  m=$("$LOAD" "$WEB" /checkv2 "$c" "$SECS" "${FILES[@]}")
  r=$("$LOAD" "$RSPAMD" /checkv2 "$c" "$SECS" "${FILES[@]}")
  echo "mxguard $m"
  echo "rspamd  $r"
  mr=$(echo "$m" | sed -E 's/.*msgs_per_s=([0-9]+).*/\1/')
  rr=$(echo "$r" | sed -E 's/.*msgs_per_s=([0-9]+).*/\1/')
  [ "$rr" -gt 0 ] && echo "concurrency $c: mxguard/rspamd = $(awk "BEGIN {printf \"%.1f\", $mr / $rr}")x"
done
