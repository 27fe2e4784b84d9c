#!/usr/bin/env bash
# Instructions per milter message with email authentication on (or off),
# counted by callgrind: bench/auth.sh's load, repeatable on a shared
# machine where CPU-seconds are not. dnsmasq serves bench/auth_records.py's
# records for corpus-dev's senders (TTL 300 s, NXDOMAIN for the rest);
# `mxguard serve` runs with auth.sh's config under valgrind; a warm-up
# fills every cache (DNS answers, parsed records), the counters are zeroed,
# MESSAGES messages go through at CONNS connections as auth.sh sends them
# (connections kept open), and the total is divided by the messages.
# bench/milter_instructions.sh does the work, with AUTH set.
# Usage: bench/auth_instructions.sh [BINARY] [CONNS] [MESSAGES]
#   AUTH=off: SPF, DKIM, ARC and DMARC off (the difference is their cost)
#   LOAD=path: a milter_load already built; KEEP=dir: keep the callgrind files
#   WARMUP=N: warm-up messages (default 2500)
set -euo pipefail
cd "$(dirname "$0")/.."
AUTH=${AUTH:-on} PORT=${PORT:-11357} DNS_PORT=${DNS_PORT:-5364} exec bench/milter_instructions.sh "$@"
