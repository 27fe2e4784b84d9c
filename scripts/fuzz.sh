#!/usr/bin/env bash
# Coverage-guided fuzzing of mxguard's input parsers on stable Rust:
# libFuzzer (through the libfuzzer-sys crate) with the compiler's
# SanitizerCoverage instrumentation, which stable rustc can emit. No
# nightly, no cargo-fuzz needed.
#
#   scripts/fuzz.sh                          every target for 30 s each
#   scripts/fuzz.sh ci                       CI's short run: every target, a fixed
#                                            number of executions, FUZZ_SEED=1
#   scripts/fuzz.sh mime --runs 10000000     one target for 10 million executions
#   scripts/fuzz.sh all --time 600           every target for 10 minutes each
#   scripts/fuzz.sh mime --jobs 2 --runs N   two fuzzing processes on one corpus
#   FUZZ_SEED=1 scripts/fuzz.sh ...          libFuzzer's seed fixed: repeatable with --runs
#   FUZZ_MAX_LEN=16384 scripts/fuzz.sh mime  longest input tried (mime 64 KiB, config 8 KiB, others 64 KiB)
#
# Targets (fuzz/fuzz_targets/): mime (the MIME parse and every scan check
# behind it, the classifier's features), milter_codec (packets both ways),
# milter_session (a whole milter session as Postfix's side of the socket),
# policy (the policy protocol and restriction engine), config (the config
# loader).
#
# Seeds come from $MXGUARD_TESTDATA (default ../shared/testdata: corpus-dev,
# phishing-dev, mime-samples) and from small generated inputs; the growing
# corpus and any crash (crash-*, oom-*, timeout-*) go to target/fuzz/. A
# finding exits non-zero and prints the file that reproduces it:
#   fuzz/target/<host triple>/release/<target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TESTDATA=${MXGUARD_TESTDATA:-$ROOT/../shared/testdata}
WORK=$ROOT/target/fuzz
ALL=(mime milter_codec milter_session policy config)

target=all time=30 runs="" jobs=1 ci=0
if [ $# -gt 0 ] && [[ $1 != --* ]]; then target=$1; shift; fi
while [ $# -gt 0 ]; do
  case $1 in
    --time) time=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [TARGET|all] [--time SECONDS | --runs N] [--jobs N]" >&2; exit 2 ;;
  esac
done
if [ "$target" = ci ]; then target=all ci=1; export FUZZ_SEED=${FUZZ_SEED:-1}; fi
if [ "$target" = all ]; then targets=("${ALL[@]}"); else targets=("$target"); fi

# CI's executions per target: the seeds once (mime has ~5,400 of them),
# then some tens of seconds of mutations each on this machine kind.
ci_runs() {
  case $1 in
    mime) echo 8000 ;;
    milter_codec) echo 300000 ;;
    config) echo 60000 ;;
    *) echo 100000 ;;
  esac
}

# The flags cargo-fuzz passes, minus the sanitizer (nightly only): edge
# counters, the PC table and comparison tracing for libFuzzer, stack depth,
# and `cfg(fuzzing)`. Debug assertions and overflow checks are on in
# fuzz/Cargo.toml's release profile.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 --cfg fuzzing"
# No --locked: fuzz/Cargo.lock follows the workspace's dependencies as they
# change (cargo adds what is new and keeps the pins it has).
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros,
# which must not be instrumented (they would not link).
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN=$ROOT/fuzz/target/$HOST/release
echo "== building fuzz targets"
cargo build --release --manifest-path fuzz/Cargo.toml --target-dir fuzz/target --target "$HOST" \
  $(printf -- '--bin %s ' "${targets[@]}")

seed_dirs() {
  local t=$1 gen=$WORK/seeds/$1
  mkdir -p "$gen"
  case $t in
    mime)
      printf 'Subject: hello\r\n\r\nbody\r\n' > "$gen/plain"
      printf 'Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n--b--\r\n' > "$gen/multipart"
      for d in corpus-dev phishing-dev mime-samples; do
        [ -d "$TESTDATA/$d" ] && echo "$TESTDATA/$d"
      done
      ;;
    policy)
      printf 'request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.7\nclient_name=mail.example.com\nhelo_name=mail.example.com\nsender=prvs=1234=a@example.org\nrecipient=b@example.net\n\nrequest=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=2001:db8::1\nhelo_name=[2001:db8::1]\nsender=\nrecipient=postmaster@example.net\nsasl_username=u\n\n' > "$gen/rcpt"
      printf 'request=smtpd_access_policy\nprotocol_state=CONNECT\nclient_address=10.1.2.3\n\nprotocol_state=HELO\nhelo_name=bad.example\n\nprotocol_state=MAIL\nsender=spam@example.com\n\nprotocol_state=END-OF-MESSAGE\n\n' > "$gen/stages"
      ;;
    config)
      cp examples/mxguard.toml "$gen/example.toml"
      printf '[scan]\nmax_message_size = "10M"\n[[rules]]\nname = "R"\ntarget = "header"\nheader = "Subject"\npattern = "/x/i"\n' > "$gen/rules.toml"
      ;;
    milter_codec|milter_session)
      python3 - "$gen" <<'PY'
import struct, sys, os
out = sys.argv[1]
def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data
def z(*parts):
    return b"".join(p + b"\0" for p in parts)
optneg = pkt(b"O", struct.pack(">III", 6, 0x1ff, 0x1fffff))
session = (optneg
    + pkt(b"D", b"C" + z(b"j", b"mx.test", b"{daemon_name}", b"smtpd"))
    + pkt(b"C", z(b"client.example") + b"4" + struct.pack(">H", 25) + z(b"192.0.2.1"))
    + pkt(b"H", z(b"client.example"))
    + pkt(b"D", b"M" + z(b"{mail_addr}", b"a@example.org", b"i", b"ABC123"))
    + pkt(b"M", z(b"<a@example.org>", b"SIZE=100"))
    + pkt(b"R", z(b"<b@example.net>"))
    + pkt(b"T")
    + pkt(b"L", z(b"Subject", b"hello"))
    + pkt(b"L", z(b"From", b"a@example.org"))
    + pkt(b"N")
    + pkt(b"B", b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n")
    + pkt(b"E")
    + pkt(b"A") + pkt(b"Q"))
open(os.path.join(out, "session"), "wb").write(session)
replies = (pkt(b"O", struct.pack(">III", 6, 0x1ff, 0)) + pkt(b"c") + pkt(b"a")
    + pkt(b"h", z(b"X-Spam", b"yes")) + pkt(b"m", struct.pack(">I", 1) + z(b"X", b"")) + pkt(b"y", z(b"451 4.7.1 later")))
open(os.path.join(out, "replies"), "wb").write(replies)
PY
      ;;
  esac
  echo "$gen"
}

status=0
for t in "${targets[@]}"; do
  corpus=$WORK/corpus/$t artifacts=$WORK/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  mapfile -t seeds < <(seed_dirs "$t")
  if [ ! -d "$TESTDATA" ]; then
    echo "fuzz $t: SKIPPED seeds from $TESTDATA (not found); generated seeds only"
  fi
  limit=(-max_total_time="$time")
  [ -n "$runs" ] && limit=(-runs="$runs")
  [ "$ci" = 1 ] && limit=(-runs="$(ci_runs "$t")")
  # Longer inputs find nothing new here and slow every execution down.
  case $t in
    mime) max_len=65536 ;;
    config) max_len=8192 ;;
    *) max_len=65536 ;;
  esac
  max_len=${FUZZ_MAX_LEN:-$max_len}
  echo "== fuzz $t (${limit[*]}, jobs $jobs)"
  args=(-rss_limit_mb=2048 -timeout=20 -max_len=$max_len -print_final_stats=1
        -artifact_prefix="$artifacts/" "${limit[@]}")
  # A fixed seed and a number of runs make a run repeatable (CI).
  if [ -n "${FUZZ_SEED:-}" ]; then args+=(-seed="$FUZZ_SEED"); fi
  if [ "$jobs" -gt 1 ]; then args+=(-jobs="$jobs" -workers="$jobs"); fi
  set +e
  "$BIN/$t" "${args[@]}" "$corpus" "${seeds[@]}" > "$WORK/$t.log" 2>&1
  rc=$?
  set -e
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ERROR)|Test unit written|INFO: seed corpus' "$WORK/$t.log" || true
  if [ $rc -ne 0 ] || grep -q 'Test unit written' "$WORK/$t.log"; then
    echo "fuzz $t: FAILED (exit $rc); log $WORK/$t.log, reproducer under $artifacts" >&2
    status=1
  fi
done
exit $status
