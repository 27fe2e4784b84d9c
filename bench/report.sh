#!/usr/bin/env bash
# The mail-log report (issue 16's benchmark): MB/s and peak RSS of
# `mxguard report` against pflogsumm 1.1.5 (Debian's package) and `wc -l`
# (the floor: reading the bytes and finding line ends), on one log of
# at least $MB MB built from the test logs, side by side in one run.
#
#   ./bench/report.sh            (needs pflogsumm: apt-get install pflogsumm)
#
# The log: every Postfix line of ../shared/testdata's postfix logs
# (pflogsumm-go, digineo-postfix-exporter, fail2ban-logs/postfix), repeated
# with the queue ids and senders renumbered each round, so per-message
# state and the address tables grow as on a real server. Each tool reads
# the same file, warm in the page cache (one untimed read first), and
# writes its report to /dev/null; /usr/bin/time gives wall time and peak
# RSS. Results in target/bench-report/. `mxguard report` reads a large
# plain file with two threads (the bar is wall-clock speed on the users'
# 2-core servers); `mxguard-1t` is the same binary on one thread
# (MXGUARD_REPORT_THREADS=1). MXGUARD_BASE=path adds another build's row.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MB=${MB:-200}
RUNS=${RUNS:-3}
TESTDATA=${MXGUARD_TESTDATA:-$ROOT/../shared/testdata}
OUT=$ROOT/target/bench-report
mkdir -p "$OUT"
command -v pflogsumm >/dev/null || { echo "pflogsumm is missing: apt-get install pflogsumm libdate-calc-perl" >&2; exit 1; }
if [ -z "${MXGUARD:-}" ]; then
  cargo build --release -q -p mxguard
  MXGUARD=$ROOT/target/release/mxguard
fi

LOG=$OUT/mail.log
if [ ! -s "$LOG" ] || [ "$(stat -c %s "$LOG")" -lt $((MB * 1000000)) ]; then
  python3 bench/report_log.py "$TESTDATA" "$LOG" "$MB"
fi
SIZE=$(stat -c %s "$LOG")
cat "$LOG" > /dev/null

measure() { # name, command...
  local name=$1; shift
  for i in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %M %U %S" -o "$OUT/$name.time" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err" < /dev/null
    read -r secs kib user sys < "$OUT/$name.time"
    echo "$name $secs $kib $user $sys" >> "$OUT/runs.txt"
  done
}
: > "$OUT/runs.txt"
measure wc wc -l "$LOG"
# pflogsumm reads only the `postfix` syslog name; mxguard by default every
# instance: --syslog-name postfix makes both count the same lines.
measure mxguard "$MXGUARD" report --syslog-name postfix "$LOG"
# The same on one thread (the CPU-time figure without the second thread's
# overhead), and, when MXGUARD_BASE names another build (the session's
# start binary), that build side by side in the same run.
measure mxguard-1t env MXGUARD_REPORT_THREADS=1 "$MXGUARD" report --syslog-name postfix "$LOG"
if [ -n "${MXGUARD_BASE:-}" ]; then
  measure base "$MXGUARD_BASE" report --syslog-name postfix "$LOG"
fi
measure pflogsumm pflogsumm "$LOG"

echo "log: $LOG, $SIZE bytes, $(wc -l < "$LOG") lines; $RUNS runs each, median wall and CPU (user+sys) time"
python3 - "$OUT/runs.txt" "$SIZE" <<'PY'
import sys, statistics
# On a loaded machine wall time measures the load as much as the tool;
# CPU seconds (user+sys) are the steadier figure, so both are shown.
runs, size = {}, int(sys.argv[2])
for l in open(sys.argv[1]):
    n, s, k, u, y = l.split()
    runs.setdefault(n, []).append((float(s), int(k), float(u) + float(y)))
med = {n: statistics.median(s for s, _, _ in v) for n, v in runs.items()}
cpu = {n: statistics.median(c for _, _, c in v) for n, v in runs.items()}
print(f"{'tool':10} {'wall s':>7} {'MB/s':>8} {'vs pfl':>7} {'CPU s':>7} {'MB/CPU-s':>9} {'vs pfl':>7} {'peak RSS MiB':>13}")
for n, v in runs.items():
    mbps = size / 1e6 / max(med[n], 1e-9)
    cmbps = size / 1e6 / max(cpu[n], 1e-9)
    rss = max(k for _, k, _ in v) / 1024
    ratio = med["pflogsumm"] / max(med[n], 1e-9)
    cratio = cpu["pflogsumm"] / max(cpu[n], 1e-9)
    print(f"{n:10} {med[n]:7.2f} {mbps:8.1f} {ratio:6.1f}x {cpu[n]:7.2f} {cmbps:9.1f} {cratio:6.1f}x {rss:13.1f}")
PY
echo "Grand Totals, mxguard vs pflogsumm:"
diff <(sed -n '/^Grand Totals/,/recipient hosts/p' "$OUT/mxguard.out") \
     <(sed -n '/^Grand Totals/,/recipient hosts/p' "$OUT/pflogsumm.out") && echo "  identical"
