#!/usr/bin/env bash
# The ban engine's firewall actions (issue 15): time for `start` to apply
# BANS active bans (default 10,000) with nftables (one `nft -f -` batch) and
# iptables+ipset (one `ipset restore`), side by side with fail2ban's way of
# restoring bans (one `nft add element` / `ipset add` process per ban), all
# inside a throw-away network namespace: the machine's firewall is not
# touched.
#
#   sudo ./bench/ban-actions.sh          (as root; needs nftables, ipset, iptables)
#   BANS=50000 RUNS=3 sudo -E ./bench/ban-actions.sh
#   PER_BAN=1000 ...   only the first 1,000 bans the fail2ban way (nft re-reads
#                      the set on every call: 10,000 take over ten minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/ban-actions.sh: run as root (network namespaces)" >&2; exit 1; }
for p in nft ipset iptables ip; do
  command -v "$p" >/dev/null || PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null \
    || { echo "bench/ban-actions.sh: $p missing: scripts/peers.sh install" >&2; exit 1; }
done
nice -n 10 cargo test --release -p mxguard-ban --test firewall_bench -- --ignored --nocapture 2>&1 \
  | grep -v '^\s*$' | grep -Ev '^(running|test result|     Running|    Finished|   Compiling)'
