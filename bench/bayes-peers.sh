#!/usr/bin/env bash
# The learning classifier against rspamd 3.4's Bayes and SpamAssassin 4.0's
# Bayes (sa-learn), trained and tested on the same folds.
#
#   bench/bayes-peers.sh [CORPUS_DIR] [FOLDS] [SEED]
#
# CORPUS_DIR has ham/ and spam/ (default ../shared/testdata/corpus-dev).
# The folds come from `mxguard eval --print-folds` (stratified, seeded), so
# all three filters train on the same k-1 folds and score the same held-out
# fold. Each peer's Bayes runs alone:
#   - SpamAssassin: bench/sa-bayes.pl loads only the Bayes plugin and one
#     eval rule (no other rules, no network), learns through the Perl API
#     (what sa-learn does) into a fresh database per fold, and reports the
#     unrounded Bayes probability;
#   - rspamd: a private instance (ports 11432-11435, Redis on 6390, both
#     loopback, stopped at the end) with autolearn off; Redis is flushed
#     before each fold; messages are learned with `rspamc learn_spam/ham`
#     and scored with `Settings={"symbols_enabled":["BAYES_SPAM","BAYES_HAM"]}`.
#     rspamd prints a confidence c = (p' - 0.5) * 200 with two decimals for
#     the winning side; the spam probability is 0.5 ± c/200 (0.5 when
#     neither symbol fires, e.g. fewer than 11 tokens).
# Metrics (the same code for all three, bench/bayes_metrics.py conventions
# match mxguard_learn::metrics): pooled over the folds and per fold, 1-AUC
# with ties counted half, FP and FN at spam probability >= 0.9, and FN at
# the lowest threshold with FP <= 0.1%.
#
# Needs: root (apt-get install -y rspamd spamassassin redis-server once),
# python3, cargo. PEERS="mxguard spamassassin rspamd" selects peers; add
# rspamd-learn-all for rspamd with its learn condition turned off.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=$(realpath "${1:-$ROOT/../shared/testdata/corpus-dev}")
K=${2:-5}
SEED=${3:-1}
W=${WORK:-/tmp/mxguard-bayes-peers}
PEERS=${PEERS:-"mxguard spamassassin rspamd"}
mkdir -p "$W"

cargo build --release -q -p mxguard --manifest-path "$ROOT/Cargo.toml"
MX="$ROOT/target/release/mxguard"

echo "== folds: $K, seed $SEED, corpus $CORPUS"
"$MX" eval --spam "$CORPUS/spam" --ham "$CORPUS/ham" --folds "$K" --seed "$SEED" --print-folds >"$W/folds.tsv"
for k in $(seq 1 "$K"); do
  awk -F'\t' -v k="$k" '$1 != k {print $2 "\t" $3}' "$W/folds.tsv" >"$W/train.$k"
  awk -F'\t' -v k="$k" '$1 == k {print $2 "\t" $3}' "$W/folds.tsv" >"$W/test.$k"
done

for peer in $PEERS; do
  case "$peer" in
  mxguard)
    echo "== mxguard"
    start=$(date +%s.%N)
    "$MX" eval --spam "$CORPUS/spam" --ham "$CORPUS/ham" --folds "$K" --seed "$SEED" \
      --scores "$W/mxguard.raw" >"$W/mxguard.txt"
    cat "$W/mxguard.txt"
    # Tag each score with its fold.
    awk -F'\t' 'NR==FNR {fold[$3]=$1; next} {print fold[$1] "\t" $0}' "$W/folds.tsv" "$W/mxguard.raw" >"$W/mxguard.scores"
    echo "mxguard: $(echo "$(date +%s.%N) - $start" | bc) s"
    ;;
  spamassassin)
    echo "== SpamAssassin $(spamassassin --version | head -1 | awk '{print $3}') Bayes"
    start=$(date +%s.%N)
    : >"$W/spamassassin.scores"
    for k in $(seq 1 "$K"); do
      rm -rf "$W/sa.$k"
      perl "$ROOT/bench/sa-bayes.pl" "$W/sa.$k" "$W/train.$k" "$W/test.$k" 2>"$W/sa.$k.log" |
        awk -v k="$k" '{print k "\t" $0}' >>"$W/spamassassin.scores"
      echo "fold $k: $(tail -1 "$W/sa.$k.log")"
    done
    echo "spamassassin: $(echo "$(date +%s.%N) - $start" | bc) s"
    ;;
  rspamd | rspamd-learn-all)
    echo "== rspamd $(rspamd --version | awk '{print $4}') Bayes ($peer)"
    R="$W/rspamd"
    rm -rf "$R"
    mkdir -p "$R"/{run,db,log,redis,links}
    cp -r /etc/rspamd "$R/etc"
    sed -i -e 's/bind_socket = "localhost:11333";/bind_socket = "127.0.0.1:11433";/' \
      -e 's/bind_socket = "localhost:11334";/bind_socket = "127.0.0.1:11434";/' \
      -e 's/bind_socket = "localhost:11332";/bind_socket = "127.0.0.1:11432";\n    count = 0;/' \
      -e 's/bind_socket = "localhost:11335";/bind_socket = "127.0.0.1:11435";/' "$R/etc/rspamd.conf"
    printf 'backend = "redis";\nservers = "127.0.0.1:6390";\nautolearn = false;\n' >"$R/etc/local.d/classifier-bayes.conf"
    if [ "$peer" = rspamd-learn-all ]; then
      # rspamd's default learn condition refuses to learn a message its
      # Bayes already classifies confidently (most ham after a few hundred);
      # this variant learns every message, as sa-learn and mxguard do.
      printf "learn_condition = 'return function(task, is_spam, is_unlearn) return true end';\n" >>"$R/etc/local.d/classifier-bayes.conf"
    fi
    printf 'servers = "127.0.0.1:6390";\n' >"$R/etc/local.d/redis.conf"
    printf 'dns {\n nameserver = ["127.0.0.1:5399"];\n timeout = 0.2s;\n retransmits = 0;\n}\n' >"$R/etc/local.d/options.inc"
    printf 'enabled = false;\n' >"$R/etc/local.d/fuzzy_check.conf"
    chown -R _rspamd:_rspamd "$R/run" "$R/db" "$R/log"
    redis-server --bind 127.0.0.1 --port 6390 --save '' --appendonly no --daemonize yes \
      --pidfile "$R/redis.pid" --logfile "$R/redis.log" --dir "$R/redis" </dev/null >/dev/null 2>&1
    rspamd -c "$R/etc/rspamd.conf" -u _rspamd -g _rspamd --var CONFDIR="$R/etc" --var LOCAL_CONFDIR="$R/etc" \
      --var RUNDIR="$R/run" --var DBDIR="$R/db" --var LOGDIR="$R/log" -p "$R/run/rspamd.pid" </dev/null >>"$R/start.log" 2>&1
    stop_rspamd() {
      [ -f "$R/run/rspamd.pid" ] && kill "$(cat "$R/run/rspamd.pid")" 2>/dev/null || true
      [ -f "$R/redis.pid" ] && kill "$(cat "$R/redis.pid")" 2>/dev/null || true
    }
    trap stop_rspamd EXIT
    for _ in $(seq 1 60); do
      rspamc -h 127.0.0.1:11434 stat >/dev/null 2>&1 && break
      sleep 0.5
    done
    start=$(date +%s.%N)
    : >"$R/scores"
    for k in $(seq 1 "$K"); do
      redis-cli -p 6390 flushall >/dev/null
      for label in spam ham; do
        awk -F'\t' -v l="$label" '$1 == l {print $2}' "$W/train.$k" |
          xargs rspamc -h 127.0.0.1:11434 -n 8 "learn_$label" >"$R/learn.$k.$label.log" 2>&1 || true
      done
      learned=$(grep -c 'success = true' "$R/learn.$k.spam.log" "$R/learn.$k.ham.log" | awk -F: '{s+=$2} END {print s}')
      cut -f2 "$W/test.$k" |
        xargs rspamc -h 127.0.0.1:11433 -n 8 --header 'Settings={"symbols_enabled":["BAYES_SPAM","BAYES_HAM"]}' symbols \
          >"$R/test.$k.log" 2>&1 || true
      python3 - "$R/test.$k.log" "$W/test.$k" "$k" >>"$R/scores" <<'EOF'
import re, sys
log, test, k = sys.argv[1], sys.argv[2], sys.argv[3]
label = dict(l.rstrip("\n").split("\t")[::-1] for l in open(test))
prob, cur = {}, None
for line in open(log, errors="replace"):
    m = re.match(r"Results for file: (.*) \([0-9.]+ seconds\)", line)
    if m:
        cur = m.group(1)
        prob[cur] = 0.5
        continue
    m = re.match(r"Symbol: BAYES_(SPAM|HAM) \([-0-9.]+\)\[([0-9.]+)%\]", line)
    if m and cur:
        c = float(m.group(2)) / 200
        prob[cur] = 0.5 + c if m.group(1) == "SPAM" else 0.5 - c
missing = [p for p in label if p not in prob]
for p, l in label.items():
    print(f"{k}\t{p}\t{l}\t{prob.get(p, 0.5)}")
if missing:
    print(f"rspamd: {len(missing)} test messages got no answer", file=sys.stderr)
EOF
      echo "fold $k: learned $learned messages"
    done
    cp "$R/scores" "$W/$peer.scores"
    echo "$peer: $(echo "$(date +%s.%N) - $start" | bc) s"
    stop_rspamd
    trap - EXIT
    ;;
  esac
done

echo "== metrics (pooled 'all' and per fold; FP/FN at p >= 0.9)"
python3 "$ROOT/bench/bayes_metrics.py" $(for p in $PEERS; do echo "$p=$W/$p.scores"; done)
