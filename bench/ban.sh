#!/usr/bin/env bash
# The ban engine against fail2ban (issue 15's benchmark), side by side in
# one run:
#
#   ./bench/ban.sh              (root not needed; needs fail2ban installed:
#                                scripts/peers.sh install)
#
# 1. Filters: ≥ 1M lines built from the test logs (sshd: loghub's
#    OpenSSH_2k.log and fail2ban's annotated sshd log; postfix: fail2ban's
#    annotated postfix log and the postfix-logs samples), repeated to
#    $LINES lines. `mxguard ban test sshd|postfix FILE` against
#    `fail2ban-regex FILE /etc/fail2ban/filter.d/sshd|postfix.conf`, wall
#    time of each, lines per second, and the ratio.
# 2. Follow mode: `mxguard serve` with one sshd jail on a file that a
#    writer grows by $RATE lines a second for $FOLLOW_SECONDS seconds;
#    serve's CPU time (utime + stime from /proc/PID/stat) over the run,
#    as a share of one core, and whether it kept up (the ban of the
#    address of the run's last line is in place within 2 s of the end).
# 3. Idle RSS: `mxguard serve` with four jails (sshd, postfix, dovecot,
#    postfix-flood) on empty log files, and fail2ban-server with the
#    same four jails (backend polling, action dummy: no firewall is
#    touched), VmRSS after $IDLE_SECONDS seconds.
#
# Results in target/bench-ban/; the lines printed are what
# docs/BENCHMARKS.md quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/ban.sh: $*" >&2; exit 1; }
DATA=${MXGUARD_TESTDATA:-../shared/testdata}
LINES=${LINES:-1000000}
RATE=${RATE:-50000}
FOLLOW_SECONDS=${FOLLOW_SECONDS:-20}
IDLE_SECONDS=${IDLE_SECONDS:-10}
[ -x /usr/bin/time ] || die "/usr/bin/time not found: apt-get install time"
command -v fail2ban-regex >/dev/null || die "fail2ban-regex not found: scripts/peers.sh install (apt-get install fail2ban)"
[ -f "$DATA/fail2ban-logs/sshd" ] || die "$DATA/fail2ban-logs not found (set MXGUARD_TESTDATA)"
OUT=$ROOT/target/bench-ban
rm -rf "$OUT"; mkdir -p "$OUT"
cargo build --release -p mxguard -q
MX=$ROOT/target/release/mxguard
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# --- 1. filters -------------------------------------------------------------
build() { # name, files…: non-comment lines repeated to $LINES
  local name=$1; shift
  grep -hv '^#' "$@" | grep -v '^$' > "$OUT/$name.seed"
  local n; n=$(wc -l < "$OUT/$name.seed")
  local reps=$(( (LINES + n - 1) / n ))
  for _ in $(seq "$reps"); do cat "$OUT/$name.seed"; done > "$OUT/$name.all"
  head -n "$LINES" "$OUT/$name.all" > "$OUT/$name.log"; rm "$OUT/$name.all"
}
build sshd "$DATA/loghub-openssh/OpenSSH_2k.log" "$DATA/fail2ban-logs/sshd"
build postfix "$DATA/fail2ban-logs/postfix" "$DATA/postfix-logs/digineo-postfix-exporter/mail.log" "$DATA/postfix-logs/pflogsumm-go/sample.log"

# Wall time and CPU time (user + sys) of a command: on a shared machine the
# CPU time is the fair measure; both are printed.
measure() { /usr/bin/time -f '%e %U %S' -o "$OUT/time.txt" "$@" > "$OUT/cmd.out" 2>&1 || true
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$OUT/time.txt"; }
for f in sshd postfix; do
  read -r ours_wall ours_cpu < <(measure "$MX" ban test "$f" "$OUT/$f.log"); cp "$OUT/cmd.out" "$OUT/$f.mxguard.txt"
  read -r f2b_wall f2b_cpu < <(measure fail2ban-regex "$OUT/$f.log" "/etc/fail2ban/filter.d/$f.conf"); cp "$OUT/cmd.out" "$OUT/$f.fail2ban.txt"
  printf 'filter %-8s %d lines: mxguard %.2f s CPU / %.2f s wall (%.0f lines per CPU-s, %s) | fail2ban-regex %.2f s CPU / %.2f s wall (%.0f lines per CPU-s, %s) | %.0fx by CPU, %.0fx by wall\n' \
    "$f" "$LINES" "$ours_cpu" "$ours_wall" "$(echo "$LINES / $ours_cpu" | bc -l)" "$(grep -o '[0-9]* matched' "$OUT/$f.mxguard.txt" | head -1)" \
    "$f2b_cpu" "$f2b_wall" "$(echo "$LINES / $f2b_cpu" | bc -l)" "$(grep -o '[0-9]* matched' "$OUT/$f.fail2ban.txt" | head -1)" \
    "$(echo "$f2b_cpu / $ours_cpu" | bc -l)" "$(echo "$f2b_wall / $ours_wall" | bc -l)" | tee -a "$OUT/results.txt"
done

# --- 2. follow mode ---------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; die "nothing listens on $1"; }
FOLLOW=$OUT/follow; mkdir -p "$FOLLOW/data"; : > "$FOLLOW/auth.log"
cat > "$FOLLOW/mxguard.toml" <<EOF
[milter]
enabled = false
[policy]
listen = "127.0.0.1:47711"
[store]
data_dir = "$FOLLOW/data"
[ban]
enabled = true
ignoreself = false
[ban.jails.sshd]
logpath = ["$FOLLOW/auth.log"]
maxretry = 3
EOF
"$MX" -c "$FOLLOW/mxguard.toml" serve > "$FOLLOW/serve.log" 2>&1 &
SERVE=$!; PIDS+=("$SERVE")
wait_port 47711
TICKS=$(getconf CLK_TCK)
T0=$(cpu_ticks "$SERVE"); S0=$(date +%s.%N)
python3 - "$FOLLOW/auth.log" "$RATE" "$FOLLOW_SECONDS" "$OUT/sshd.seed" <<'PY'
import sys, time
path, rate, secs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = [l for l in open(seed, encoding="utf-8", errors="replace")]
# The last line of the run: a failure from an address nothing else uses,
# three times, so its ban shows the engine kept up.
tail = "Dec  7 09:00:00 mx sshd[9]: Invalid user zz from 203.0.113.250 port 1\n" * 3
with open(path, "a") as f:
    start = time.time(); sent = 0; i = 0
    while time.time() - start < secs:
        batch = rate // 20
        chunk = []
        for _ in range(batch):
            chunk.append(lines[i % len(lines)]); i += 1
        f.write("".join(chunk)); f.flush(); sent += batch
        ahead = sent / rate - (time.time() - start)
        if ahead > 0: time.sleep(ahead)
    f.write(tail); f.flush()
    print(f"wrote {sent} lines in {time.time() - start:.1f} s", file=sys.stderr)
PY
sleep 2
T1=$(cpu_ticks "$SERVE"); S1=$(date +%s.%N)
kept=no; grep -q 'ip=203.0.113.250' "$FOLLOW/serve.log" && kept=yes
CPU=$(echo "($T1 - $T0) / $TICKS" | bc -l); WALL=$(echo "$S1 - $S0" | bc -l)
printf 'follow %d lines/s for %d s: serve CPU %.2f s over %.1f s (%.0f%% of one core), kept up: %s\n' \
  "$RATE" "$FOLLOW_SECONDS" "$CPU" "$WALL" "$(echo "100 * $CPU / $WALL" | bc -l)" "$kept" | tee -a "$OUT/results.txt"
kill "$SERVE"; wait "$SERVE" 2>/dev/null || true

# --- 3. idle RSS ------------------------------------------------------------
IDLE=$OUT/idle; mkdir -p "$IDLE/data" "$IDLE/f2b"
: > "$IDLE/auth.log"; : > "$IDLE/mail.log"
cat > "$IDLE/mxguard.toml" <<EOF
[milter]
enabled = false
[policy]
listen = "127.0.0.1:47712"
[store]
data_dir = "$IDLE/data"
[ban]
enabled = true
[ban.jails.sshd]
logpath = ["$IDLE/auth.log"]
[ban.jails.postfix]
logpath = ["$IDLE/mail.log"]
[ban.jails.dovecot]
logpath = ["$IDLE/mail.log"]
[ban.jails.postfix-flood]
logpath = ["$IDLE/mail.log"]
maxretry = 30
findtime = 60
EOF
"$MX" -c "$IDLE/mxguard.toml" serve > "$IDLE/serve.log" 2>&1 &
SERVE=$!; PIDS+=("$SERVE")
wait_port 47712
# fail2ban-server with the same four jails, its own config dir, socket and
# database under $IDLE, polling backend, dummy action.
cp -r /etc/fail2ban/filter.d /etc/fail2ban/action.d "$IDLE/f2b/"
cat > "$IDLE/f2b/fail2ban.conf" <<EOF
[Definition]
loglevel = INFO
logtarget = $IDLE/f2b/fail2ban.log
socket = $IDLE/f2b/fail2ban.sock
pidfile = $IDLE/f2b/fail2ban.pid
dbfile = $IDLE/f2b/fail2ban.sqlite3
EOF
cat > "$IDLE/f2b/jail.conf" <<EOF
[DEFAULT]
backend = polling
maxretry = 3
findtime = 600
bantime = 3600
action = dummy
[sshd]
enabled = true
filter = sshd
logpath = $IDLE/auth.log
[postfix]
enabled = true
filter = postfix
logpath = $IDLE/mail.log
[dovecot]
enabled = true
filter = dovecot
logpath = $IDLE/mail.log
[postfix-flood-attack]
enabled = true
filter = postfix[mode=ddos]
logpath = $IDLE/mail.log
maxretry = 30
findtime = 60
EOF
fail2ban-server -f -x -c "$IDLE/f2b" -s "$IDLE/f2b/fail2ban.sock" -p "$IDLE/f2b/fail2ban.pid" > "$IDLE/f2b/server.out" 2>&1 &
F2B=$!; PIDS+=("$F2B")
sleep "$IDLE_SECONDS"
ours=$(rss_kib "$SERVE"); theirs=$(rss_kib "$F2B" 2>/dev/null || echo 0)
jails=$(grep -c "ban jail started" "$IDLE/serve.log" || true)
printf 'idle RSS with 4 jails: mxguard serve %.1f MiB (%s jails started; includes the policy server and store), fail2ban-server %.1f MiB\n' \
  "$(echo "$ours / 1024" | bc -l)" "$jails" "$(echo "$theirs / 1024" | bc -l)" | tee -a "$OUT/results.txt"
