#!/usr/bin/env bash
# Installs the real components that mxguard's tests run against (Debian 12
# packages), without starting them: each test starts what it needs on
# loopback. Idempotent; needs root for apt-get, and says so when it is not.
set -euo pipefail

# g++: libFuzzer (scripts/fuzz.sh) is C++.
# libxml2-utils: xmllint validates DMARC reports against RFC 7489's schema.
# opendkim-tools, python3-dkim, python3-nacl: DKIM/ARC interop (OpenDKIM and dkimpy
# verify our signatures; dkimpy signs what we verify).
PACKAGES=(swaks dnsmasq-base g++ libxml2-utils opendkim-tools python3-dkim python3-nacl)
# Cyrus SASL for the Postfix test of signing by SASL login (saslpasswd2; the
# sasldb, PLAIN and LOGIN plugins are in libsasl2-modules).
PACKAGES+=(sasl2-bin libsasl2-modules)
# python3-authres: dkimpy needs it to ARC-sign (the first hop of the ARC e2e test).
PACKAGES+=(python3-authres)
DEBCONF=(
  "postfix postfix/main_mailer_type select Local only"
  "postfix postfix/mailname string mx.test"
)
PACKAGES+=(postfix)
# clamav-daemon, clamav-testfiles: the antivirus check's tests start clamd with
# signatures made from ClamAV's own test files (no official database needed).
PACKAGES+=(clamav-daemon clamav-testfiles)
# nftables, iptables, ipset, ufw, iproute2: the ban engine's firewall actions
# are tested against the real firewalls inside network namespaces.
PACKAGES+=(nftables iptables ipset ufw iproute2)
# pflogsumm, libdate-calc-perl: the mail-log report is compared with pflogsumm's
# (bench/report.sh; the reference reports in testdata were made with it).
# chromium: the report's HTML is rendered headless and screenshotted.
PACKAGES+=(pflogsumm libdate-calc-perl chromium)
# chromium, chromium-driver: the web UI's browser test drives headless Chromium
# over WebDriver (crates/mxguard/tests/browser_ui.rs).
PACKAGES+=(chromium-driver)
# rspamd: rspamc is the HTTP API's client in its tests; rspamd 3.4 is the
# peer of bench/web.sh.
PACKAGES+=(rspamd)
# fail2ban: its filter .conf files are what the ban engine's .conf loader test
# reads, and bench/ban.sh compares against fail2ban-regex (never started).
PACKAGES+=(fail2ban)
# systemd-journal-remote: writes journal files from export format, so the ban
# engine's journal test reads a real journal through journalctl.
PACKAGES+=(systemd-journal-remote)
# redis-server, redis-tools: the Redis store backend's tests start single
# servers and a three-node Redis Cluster (redis-cli --cluster create).
PACKAGES+=(redis-server redis-tools)
# openssl: the Redis TLS tests make a throwaway CA and certificates with it.
PACKAGES+=(openssl)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

case "${1:-install}" in
  install)
    if [ "${#missing[@]}" -eq 0 ]; then
      exit 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
      echo "peers.sh: these packages are needed by the tests and missing: ${missing[*]}; run as root or install them with apt-get." >&2
      exit 1
    fi
    echo "== installing test peers: ${missing[*]}"
    for line in "${DEBCONF[@]}"; do echo "$line" | debconf-set-selections; done
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    ;;
  list)
    printf '%s\n' "${PACKAGES[@]}"
    ;;
  *)
    echo "usage: peers.sh [install|list]" >&2
    exit 2
    ;;
esac
