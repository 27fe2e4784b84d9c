#!/usr/bin/env bash
# The end-to-end part of bench/milter.sh: the corpus replayed over SMTP into a
# real Postfix on 127.0.0.1:25, once per milter setting (none, mxguard,
# rspamd's proxy), each session presented as client 192.0.2.10 with XCLIENT,
# mail to user@bench.test thrown away by Postfix's discard: transport once
# queued.
#
#   flock /tmp/mxguard-postfix-tests.lock bench/milter-postfix.sh RESULTS \
#       "none=none mxguard=inet:127.0.0.1:11336 rspamd=inet:127.0.0.1:11332" DIR...
#
# Appends one JSON line per run to RESULTS. Run it under the lock the tests
# use (Postfix owns port 25). Postfix's main.cf and master.cf are saved first
# and put back at the end (trap), and Postfix is left running or stopped as
# it was found. Environment: E2E_CONCURRENCY ("8 50"), E2E_RUNS (2),
# E2E_MESSAGES (the whole corpus once), E2E_WARMUP (200).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "milter-postfix.sh: run as root" >&2; exit 1; }
[ $# -ge 3 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
results=$1 milters=$2
shift 2
dirs=("$@")
CONCURRENCY=${E2E_CONCURRENCY:-"8 50"}
RUNS=${E2E_RUNS:-2}
WARMUP=${E2E_WARMUP:-200}
TOOLS=bench/milter_tools.py
PY=/usr/bin/python3

saved=$(mktemp -d /tmp/mxguard-bench-postfix.XXXXXX)
cp -p /etc/postfix/main.cf /etc/postfix/master.cf "$saved/"
was_running=0
postfix status </dev/null >/dev/null 2>&1 && was_running=1

drop_bench_mail() { # only messages of this benchmark (recipient @bench.test)
  postqueue -j 2>/dev/null | $PY -c '
import json, sys
for line in sys.stdin:
    q = json.loads(line)
    if any(r.get("address", "").endswith("@bench.test") for r in q.get("recipients", [])):
        print(q["queue_id"])' | postsuper -d - >/dev/null 2>&1 || true
}

restore() {
  set +e
  drop_bench_mail
  cp -p "$saved/main.cf" "$saved/master.cf" /etc/postfix/
  if [ "$was_running" = 1 ]; then
    postfix stop </dev/null >/dev/null 2>&1
    postfix start </dev/null >/dev/null 2>&1
  else
    postfix stop </dev/null >/dev/null 2>&1
  fi
  rm -rf "$saved"
  echo "postfix: configuration restored ($([ "$was_running" = 1 ] && echo running || echo stopped), as found)"
}
trap restore EXIT

# Loopback-only Postfix (installed if missing), then the benchmark's settings.
POSTFIX_RCPT_RESTRICTIONS="permit_mynetworks, reject_unauth_destination" \
  ./scripts/postfix-env.sh none >/dev/null
# The replay announces the client 192.0.2.10 (client.example) with XCLIENT,
# as milter_load does, so that milters run the checks they run for outside
# clients (rspamd skips many for 127.0.0.1); bench.test is then relayed
# (relay_domains) into the discard: transport.
postconf -e 'transport_maps = inline:{ bench.test=discard: }' 'relay_domains = bench.test' \
  'smtpd_authorized_xclient_hosts = 127.0.0.1' \
  'milter_default_action = tempfail' 'milter_protocol = 6' \
  'non_smtpd_milters ='

queue_empty() {
  local i
  for i in $(seq 1 240); do
    [ -z "$(postqueue -j 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  echo "postfix: queue not empty after 120 s" >&2
  return 1
}

for spec in $milters; do
  name=${spec%%=*} milter=${spec#*=}
  [ "$milter" = none ] && milter=
  postconf -e "smtpd_milters = $milter"
  postfix reload </dev/null >/dev/null 2>&1
  sleep 2
  echo "== Postfix end to end, milter: ${milter:-none} ($name)"
  # One message first: it must be accepted (250), or the figures mean nothing.
  probe=$($PY $TOOLS smtp-replay --server 127.0.0.1:25 --concurrency 1 --messages 1 \
    --xclient 192.0.2.10 --rcpt user@bench.test "${dirs[0]}")
  case "$probe" in
    *'"replies": {"250": 1}'*) ;;
    *) echo "postfix: a test message was not accepted with milter ${milter:-none}: $probe (see $(postconf -h maillog_file))" >&2
       exit 1 ;;
  esac
  for c in $CONCURRENCY; do
    for run in $(seq 1 "$RUNS"); do
      queue_empty
      out=$($PY $TOOLS smtp-replay --server 127.0.0.1:25 --concurrency "$c" --warmup "$WARMUP" \
        ${E2E_MESSAGES:+--messages "$E2E_MESSAGES"} --xclient 192.0.2.10 --rcpt user@bench.test "${dirs[@]}")
      echo "$out" | sed "s/^{/{\"phase\":\"postfix\",\"server\":\"$name\",\"run\":$run,/" >>"$results"
      echo "  concurrency $c run $run: $out"
    done
  done
done
queue_empty || true
