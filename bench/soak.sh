#!/usr/bin/env bash
# Soak benchmark (not a CI test): `mxguard serve` on its default config
# (milter and policy server on their own loopback ports) under 200
# concurrent milter sessions — one connection per message, as Postfix
# drives it — and 16 policy connections, for SOAK_SECONDS (default 600),
# with corpus-dev and the hostile messages of bench/hostile.py mixed in.
# Samples the daemon's RSS every second and reports: messages and requests
# answered, errors, RSS after warm-up and at the end, and whether the daemon
# is still alive.
#
#   bench/soak.sh                         10 minutes
#   SOAK_SECONDS=60 bench/soak.sh         a quick look
#
# mxguard resolves through a dnsmasq on 127.0.0.1:$SOAK_DNS_PORT (5354)
# answering NXDOMAIN at once (needs dnsmasq-base).
#
# Hostile messages larger than SOAK_MAX_MESSAGE (default 10240000, Postfix's
# default message_size_limit) are left out: Postfix never passes them to a
# milter, and sent one header packet at a time they outlast the soak (the
# memory benchmark, bench/milter-hostile.sh, sends every shape).
#
# Needs $MXGUARD_TESTDATA (default ../shared/testdata) for corpus-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TESTDATA=${MXGUARD_TESTDATA:-$ROOT/../shared/testdata}
SECONDS_TOTAL=${SOAK_SECONDS:-600}
WARMUP=${SOAK_WARMUP:-60}
SESSIONS=${SOAK_SESSIONS:-200}
POLICY_CONNS=${SOAK_POLICY:-16}
MILTER_PORT=${SOAK_MILTER_PORT:-21336}
POLICY_PORT=${SOAK_POLICY_PORT:-20023}
MAX_MESSAGE=${SOAK_MAX_MESSAGE:-10240000}

[ -d "$TESTDATA/corpus-dev/ham" ] || { echo "soak: needs $TESTDATA/corpus-dev (set MXGUARD_TESTDATA)" >&2; exit 1; }
cargo build --release --locked -q -p mxguard -p mxguard-milter --example milter_load -p mxguard-policy --example policy_load
BIN=$ROOT/target/release

WORK=$(mktemp -d /tmp/mxguard-soak.XXXXXX)
trap 'kill ${SERVE_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
python3 bench/hostile.py "$WORK/hostile" > "$WORK/hostile.txt"
find "$WORK/hostile" -type f -size +"${MAX_MESSAGE}"c -printf 'left out (over '"$MAX_MESSAGE"' bytes): %f, %s bytes\n' -delete >> "$WORK/hostile.txt"
# A DNS server on loopback answering NXDOMAIN at once, as a working
# resolver would for corpus-dev's long-gone domains: the authentication
# checks (on by default) wait on DNS, and the machine's own resolver may
# be slow or drop queries (a sandbox's does).
DNS_PORT=${SOAK_DNS_PORT:-5354}
printf 'port=%s\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nuser=nobody\naddress=/#/\n' "$DNS_PORT" > "$WORK/dnsmasq.conf"
dnsmasq -k -C "$WORK/dnsmasq.conf" --log-facility=- </dev/null >"$WORK/dnsmasq.log" 2>&1 &
DNS_PID=$!
trap 'kill ${SERVE_PID:-} ${DNS_PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
# The default config, but on ports of its own so it does not clash with a
# running mxguard, and that DNS server.
cat > "$WORK/mxguard.toml" <<TOML
[milter]
listen = "127.0.0.1:$MILTER_PORT"
[policy]
listen = "127.0.0.1:$POLICY_PORT"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
TOML
"$BIN/mxguard" -c "$WORK/mxguard.toml" --data-dir "$WORK/data" serve 2> "$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$MILTER_PORT) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$POLICY_PORT) 2>/dev/null && break
  sleep 0.1
done

rss() { awk '/^VmRSS/ {print int($2/1024)}' /proc/$SERVE_PID/status 2>/dev/null || echo 0; }
( while kill -0 $SERVE_PID 2>/dev/null; do echo "$(date +%s) $(rss)"; sleep 1; done ) > "$WORK/rss.txt" &
SAMPLER=$!
START=$(date +%s)

"$BIN/examples/milter_load" --connect 127.0.0.1:$MILTER_PORT --concurrency "$SESSIONS" --per-connection 1 \
  --seconds "$SECONDS_TOTAL" --dir "$TESTDATA/corpus-dev/ham" --dir "$TESTDATA/corpus-dev/spam" \
  --dir "$WORK/hostile" --json > "$WORK/milter.json" 2> "$WORK/milter.err" &
MILTER=$!
"$BIN/examples/policy_load" 127.0.0.1:$POLICY_PORT "$POLICY_CONNS" "$SECONDS_TOTAL" > "$WORK/policy.txt" 2> "$WORK/policy.err" &
POLICY=$!
milter_rc=0 policy_rc=0
wait $MILTER || milter_rc=$?
wait $POLICY || policy_rc=$?
sleep 2
alive=no; kill -0 $SERVE_PID 2>/dev/null && alive=yes
kill $SAMPLER 2>/dev/null || true

echo "== soak: ${SECONDS_TOTAL}s, $SESSIONS milter sessions (one connection per message), $POLICY_CONNS policy connections"
echo "hostile messages mixed in:"; sed 's/^/  /' "$WORK/hostile.txt"
echo "milter (exit $milter_rc): $(cat "$WORK/milter.json")"
[ -s "$WORK/milter.err" ] && sed 's/^/  milter_load: /' "$WORK/milter.err"
echo "policy (exit $policy_rc): $(cat "$WORK/policy.txt")"
[ -s "$WORK/policy.err" ] && sed 's/^/  policy_load: /' "$WORK/policy.err" | head -5
python3 - "$WORK/rss.txt" "$START" "$WARMUP" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
start, warm = int(sys.argv[2]), int(sys.argv[3])
after = [r for t, r in rows if t - start >= warm]
if not after:
    print("rss: too short to read"); sys.exit()
end = after[-10:]
print(f"rss MiB: at warm-up ({warm}s) {after[0]}, max after warm-up {max(after)}, "
      f"median of the last 10 s {sorted(end)[len(end)//2]}, peak overall {max(r for _, r in rows)}")
# Flatness: the median and the range of each minute.
minutes = {}
for t, r in rows:
    minutes.setdefault((t - start) // 60, []).append(r)
print("rss MiB per minute (median [min-max]): " + ", ".join(
    f"{m}:{sorted(v)[len(v)//2]} [{min(v)}-{max(v)}]" for m, v in sorted(minutes.items())))
PY
echo "daemon alive at the end: $alive"
echo "daemon log: $(grep -c ' ERROR ' "$WORK/serve.log" || true) ERROR lines, $(grep -c ' WARN ' "$WORK/serve.log" || true) WARN lines"
{ grep -E ' (ERROR|WARN) ' "$WORK/serve.log" || true; } | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -10
[ "$alive" = yes ]
