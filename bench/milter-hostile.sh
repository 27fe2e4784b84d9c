#!/usr/bin/env bash
# The memory benchmark of issue 11: peak RSS of `mxguard serve` on the
# default config while 50 milter sessions send hostile messages at once, and
# whether every ordinary session got its answers meanwhile.
#
#   ./bench/milter-hostile.sh                 (about 1 to 3 minutes)
#
# 1. Builds `mxguard` and the `milter_hostile` example (release), unless MXG
#    names an mxguard binary to measure instead.
# 2. Starts `mxguard serve` on the default config (milter on 127.0.0.1:11336,
#    policy server on 127.0.0.1:10023), with only the data dir moved to a
#    temp dir.
# 3. Samples the daemon's VmRSS from /proc every 50 ms while milter_hostile
#    runs: SESSIONS (50) hostile sessions at once, the shapes SHAPES
#    round-robin (default: tiny10,tiny45,parts500k,nested100k,rfc822,macros;
#    see the example), and NORMAL (4) sessions sending corpus-dev ham
#    meanwhile.
# 4. Prints the peak sampled RSS, the kernel's high-water mark (VmHWM), the
#    example's report, and whether the daemon was still alive.
#
# Everything listens on 127.0.0.1; the daemon is stopped on exit. Logs:
# target/bench-hostile/. Environment: MXG, HOSTILE (a milter_hostile
# binary to use instead of building it), SESSIONS, SHAPES, NORMAL,
# MACRO_MB (50), RSS_LIMIT_MB (12288: the daemon is killed past it),
# MXGUARD_TESTDATA (../shared/testdata).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/milter-hostile.sh: $*" >&2; exit 1; }
SESSIONS=${SESSIONS:-50}
SHAPES=${SHAPES:-tiny10,tiny45,parts500k,nested100k,rfc822,macros}
NORMAL=${NORMAL:-4}
MACRO_MB=${MACRO_MB:-50}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-12288}
export MXGUARD_TESTDATA=${MXGUARD_TESTDATA:-../shared/testdata}
OUT="$ROOT/target/bench-hostile"
mkdir -p "$OUT"

if [ -z "${MXG:-}" ]; then
  echo "== building (release)"
  cargo build --release -q -p mxguard
  MXG="$ROOT/target/release/mxguard"
fi
if [ -z "${HOSTILE:-}" ]; then
  cargo build --release -q -p mxguard-milter --example milter_hostile
  HOSTILE="$ROOT/target/release/examples/milter_hostile"
fi

port_busy() { ss -Hltn "sport = :$1" | grep -q .; }
for p in 11336 10023; do
  port_busy $p && die "port 127.0.0.1:$p is already in use (another mxguard?); stop it first"
done

W=$(mktemp -d /tmp/mxguard-bench-hostile.XXXXXX)
pid= sampler=
cleanup() {
  set +e
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  cp "$W/mxguard.log" "$W/rss.txt" "$OUT/" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

# The default config; only the store moves to the temp dir.
printf '[store]\ndata_dir = "%s/data"\n' "$W" >"$W/mxguard.toml"
"$MXG" -c "$W/mxguard.toml" serve </dev/null >"$W/mxguard.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
  (exec 3<>/dev/tcp/127.0.0.1/11336) 2>/dev/null && break
  kill -0 $pid 2>/dev/null || die "mxguard serve exited at start (see $OUT/mxguard.log)"
  sleep 0.2
done
(exec 3<>/dev/tcp/127.0.0.1/11336) 2>/dev/null || die "mxguard serve does not listen on 127.0.0.1:11336"
idle=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)

# VmRSS every 50 ms, in KiB, one per line. Past RSS_LIMIT_MB the daemon is
# killed, so an unbounded one cannot take the machine down with it.
limit_kib=$((RSS_LIMIT_MB * 1024))
(
  while [ -r /proc/$pid/status ]; do
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || true)
    [ -n "$rss" ] && echo "$rss"
    if [ -n "$rss" ] && [ "$rss" -gt "$limit_kib" ]; then
      echo "over RSS_LIMIT_MB ($RSS_LIMIT_MB MiB): killing the daemon" >&2
      kill -9 $pid
      break
    fi
    sleep 0.05
  done
) >"$W/rss.txt" &
sampler=$!

echo "== $SESSIONS hostile sessions ($SHAPES), $NORMAL ordinary sessions"
set +e
"$HOSTILE" --connect 127.0.0.1:11336 --sessions "$SESSIONS" --shapes "$SHAPES" \
  --normal-sessions "$NORMAL" --macro-mb "$MACRO_MB" --json | tee "$OUT/result.json"
status=${PIPESTATUS[0]}
set -e
alive=yes
if [ -r /proc/$pid/status ]; then
  hwm=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
  after=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
else
  alive=no hwm=0 after=0
fi
kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null || true
sampler=
peak=$(sort -n "$W/rss.txt" | tail -1)
echo
echo "daemon alive after the run: $alive"
echo "RSS idle before: $((idle / 1024)) MiB; peak sampled every 50 ms: $((${peak:-0} / 1024)) MiB; VmHWM: $((hwm / 1024)) MiB; after: $((after / 1024)) MiB"
echo "every ordinary message answered: $([ "$status" = 0 ] && echo yes || echo NO)"
[ "$alive" = yes ] || echo "the daemon died: see $OUT/mxguard.log"
