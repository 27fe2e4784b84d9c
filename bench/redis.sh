#!/usr/bin/env bash
# The Redis backend (issue 18), side by side in one run:
#  1. policy server with Redis ([store] url) against postgrey 1.37, first-seen
#     triplets (every request greylisted), 1 and 16 connections, RUNS runs
#     (default 3) of SECS s (default 5), median (the bar: >= 10x postgrey at
#     16 connections). Also mxguard with its embedded store, for reference.
#  2. milter with Redis against the embedded store: milter_load on
#     corpus-dev (MXGUARD_TESTDATA), concurrency 8, MESSAGES (default 2000).
#  3. memory per greylist triplet: Redis's used_memory growth per triplet
#     key against the growth of postgrey's db files per triplet, after
#     TRIPLETS (default 20000) first-seen requests to each.
# Needs root (postgrey runs as its user; packages installed if missing).
# Everything listens on 127.0.0.1 only and is stopped on exit. DNS for the
# milter's authentication checks (on by default) goes to a private dnsmasq
# answering NXDOMAIN at once, as in bench/milter.sh: with the system
# resolver unreachable every message waited out its lookups' timeouts and
# step 2 looked hung.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_PORT=10030 MXG_PORT=10041 MXE_PORT=10042 REDIS_PORT=16390 DNS_PORT=15353
MILTER_R=11346 MILTER_E=11347
SECS=${SECS:-5} RUNS=${RUNS:-3} MESSAGES=${MESSAGES:-2000} TRIPLETS=${TRIPLETS:-20000}
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
for p in postgrey redis-server dnsmasq; do
  command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgrey redis-server redis-tools dnsmasq-base </dev/null >/dev/null
done
echo "== building (release; minutes on a loaded machine)"
cargo build --release -q -p mxguard
cargo build --release -q -p mxguard-policy --example policy_load
cargo build --release -q -p mxguard-milter --example milter_load
LOAD=target/release/examples/policy_load
MLOAD=target/release/examples/milter_load
work=$(mktemp -d); chmod 755 "$work"
pids=()
cleanup() {
  kill "${pids[@]}" $(cat "$work"/pg*.pid 2>/dev/null) 2>/dev/null || true
  redis-cli -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
# Requests answered in one policy_load run; none is an error (a loop on
# zero would never end).
requests() {
  local n; n=$(echo "$1" | sed -nE 's/.* requests=([0-9]+).*/\1/p')
  [ "${n:-0}" -gt 0 ] || { echo "policy_load answered nothing: $1" >&2; exit 1; }
  echo "$n"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

dnsmasq -k --port=$DNS_PORT --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
  --user=nobody --address=/#/ --log-facility=- </dev/null >"$work/dnsmasq.log" 2>&1 &
pids+=($!)
redis-server --bind 127.0.0.1 --port $REDIS_PORT --save '' --appendonly no --daemonize yes \
  --pidfile "$work/redis.pid" --logfile "$work/redis.log" --dir "$work"
wait_port $REDIS_PORT
start_pg() { # DIR PORT
  mkdir -p "$1" && chown postgrey:postgrey "$1"
  postgrey --inet=127.0.0.1:$2 --dbdir="$1" --delay=60 --daemonize \
    --pidfile="$1.pid" --user=postgrey --group=postgrey </dev/null >/dev/null 2>&1
  wait_port $2
}
mxg() { # NAME STORE_TOML POLICY_PORT MILTER_PORT
  cat > "$work/$1.toml" <<TOML
[milter]
enabled = true
listen = "127.0.0.1:$4"
[policy]
listen = "127.0.0.1:$3"
mynetworks = []
[greylist]
delay = 60
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
[store]
data_dir = "$work/$1-data"
$2
TOML
  target/release/mxguard -c "$work/$1.toml" serve </dev/null >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_port $3
}
start_pg "$work/pg" $PG_PORT
mxg redis "url = \"redis://127.0.0.1:$REDIS_PORT/0\"" $MXG_PORT $MILTER_R
mxg embedded "" $MXE_PORT $MILTER_E

echo "== 1. policy server: first-seen triplets, median of $RUNS runs of ${SECS}s"
for name in postgrey mxguard-redis mxguard-embedded; do
  case $name in postgrey) port=$PG_PORT;; mxguard-redis) port=$MXG_PORT;; *) port=$MXE_PORT;; esac
  for c in 1 16; do
    out=$(for i in $(seq 1 "$RUNS"); do $LOAD 127.0.0.1:$port $c "$SECS" $((i + c * 10 + 1000)); done)
    rps=$(echo "$out" | sed -E 's/.* rps=([0-9]+).*/\1/' | median)
    p99=$(echo "$out" | sed -E 's/.* p99_ms=([0-9.]+).*/\1/' | median)
    echo "$name connections=$c rps_median=$rps p99_ms_median=$p99 runs_rps=$(echo "$out" | sed -E 's/.* rps=([0-9]+).*/\1/' | tr '\n' ' ')"
  done
done

echo "== 2. milter: corpus-dev, concurrency 8, $MESSAGES messages"
if [ -d "$DATA/corpus-dev/ham" ]; then
  for name in redis embedded; do
    port=$MILTER_R; [ $name = embedded ] && port=$MILTER_E
    $MLOAD --connect 127.0.0.1:$port --dir "$DATA/corpus-dev/ham" --dir "$DATA/corpus-dev/spam" \
      --concurrency 8 --messages "$MESSAGES" --warmup 200 --per-connection 1 --json >"$work/m-$name.json"
    echo "milter-$name $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(f"{k}={d[k]}" for k in d if k in ("messages_per_second","p50_ms","p99_ms","errors")))' "$work/m-$name.json")"
  done
  echo "history rows in Redis: $(redis-cli -p $REDIS_PORT llen history)"
else
  echo "SKIPPED: $DATA/corpus-dev not found (set MXGUARD_TESTDATA)"
fi

echo "== 3. memory per greylist triplet ($TRIPLETS first-seen triplets each)"
start_pg "$work/pg2" $((PG_PORT + 1))
redis-cli -p $REDIS_PORT flushall >/dev/null
mxg triplets "url = \"redis://127.0.0.1:$REDIS_PORT/1\"" $((MXG_PORT + 10)) $((MILTER_R + 10))
mem0=$(redis-cli -p $REDIS_PORT info memory | sed -nE 's/^used_memory:([0-9]+).*/\1/p')
pg0=$(du -sb "$work/pg2" | cut -f1)
# 16 connections of first-seen triplets (unique per request), until TRIPLETS
# requests were answered by each.
msent=0
while [ $msent -lt "$TRIPLETS" ]; do
  out=$($LOAD 127.0.0.1:$((MXG_PORT + 10)) 16 1 $RANDOM); n=$(requests "$out"); msent=$((msent + n))
done
sleep 2 # relaxed greylist writes land within a second
keys=$(redis-cli -p $REDIS_PORT -n 1 dbsize)
mem1=$(redis-cli -p $REDIS_PORT info memory | sed -nE 's/^used_memory:([0-9]+).*/\1/p')
sent=0
while [ $sent -lt "$TRIPLETS" ]; do
  out=$($LOAD 127.0.0.1:$((PG_PORT + 1)) 16 1 $RANDOM); n=$(requests "$out"); sent=$((sent + n))
done
kill "$(cat "$work/pg2.pid")"; sleep 1
pg1=$(du -sb "$work/pg2" | cut -f1)
echo "redis: $msent requests, $keys keys, used_memory +$((mem1 - mem0)) B, $(( (mem1 - mem0) / msent )) B per triplet"
echo "postgrey: $sent requests, db dir +$((pg1 - pg0)) B, $(( (pg1 - pg0) / sent )) B per triplet"
