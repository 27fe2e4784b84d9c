#!/usr/bin/env bash
# Prepares a real Postfix on this machine for mxguard's milter tests, on
# loopback only, and starts (or reloads) it. Idempotent; run as root.
#
#   scripts/postfix-env.sh [start] [MILTER]   install if missing, configure, start or reload
#   scripts/postfix-env.sh stop               stop Postfix
#   scripts/postfix-env.sh status             exit 0 when Postfix runs
#
# MILTER is the milter Postfix calls: a port on 127.0.0.1 (11336), a full
# Postfix milter address (inet:127.0.0.1:11336, unix:/path), or "none" for
# no milter. The MXGUARD_MILTER environment variable is used when no argument
# is given; the default is 127.0.0.1:11336, mxguard's default listen address.
#
# Postfix then listens on 127.0.0.1:25 as mx.test, delivers root@localhost
# to /var/mail/root (mbox) and logs to $POSTFIX_LOG (/var/log/postfix.log).
# With milter_default_action = tempfail, mail is refused with 451 4.7.1 while
# the milter is not answering. smtpd_recipient_restrictions is reset to
# "permit_mynetworks, reject_unauth_destination" (or $POSTFIX_RCPT_RESTRICTIONS,
# e.g. to add a check_policy_service). Postfix owns port 25: tests that use
# it must not run in parallel.
set -euo pipefail

LOG=${POSTFIX_LOG:-/var/log/postfix.log}
SCRIPT_LOG=${POSTFIX_ENV_LOG:-/var/log/postfix-env.log}

die() {
  echo "postfix-env.sh: $*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and configures /etc/postfix)"
}

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

install_missing() {
  local missing=()
  is_installed postfix || missing+=(postfix)
  is_installed swaks || missing+=(swaks)
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "== installing ${missing[*]}"
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  echo "postfix postfix/mailname string mx.test" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >>"$SCRIPT_LOG" 2>&1 || die "apt-get update failed (see $SCRIPT_LOG)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >>"$SCRIPT_LOG" 2>&1 \
    || die "apt-get install ${missing[*]} failed (see $SCRIPT_LOG)"
}

is_running() {
  postfix status </dev/null >/dev/null 2>&1
}

milter_address() {
  local m=${1:-${MXGUARD_MILTER:-127.0.0.1:11336}}
  case "$m" in
    none | "") echo "" ;;
    inet:* | unix:* | local:*) echo "$m" ;;
    /*) echo "unix:$m" ;;
    *:*) echo "inet:$m" ;;
    *[!0-9]*) die "MILTER must be a port, host:port, inet:..., unix:... or none; got '$m'" ;;
    *) echo "inet:127.0.0.1:$m" ;;
  esac
}

wait_for_port() {
  local i
  for i in $(seq 1 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/25) 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  die "Postfix did not start listening on 127.0.0.1:25 (see $LOG and $SCRIPT_LOG)"
}

start() {
  need_root
  install_missing
  local milter
  milter=$(milter_address "${1:-}")
  command -v postconf >/dev/null || die "postconf not found after installing postfix"

  local before
  before=$(postconf -h inet_interfaces inet_protocols 2>/dev/null | tr '\n' ' ')
  postconf -e \
    "myhostname = mx.test" \
    "myorigin = \$myhostname" \
    "mydestination = mx.test, localhost.localdomain, localhost" \
    "mynetworks = 127.0.0.0/8" \
    "inet_interfaces = loopback-only" \
    "inet_protocols = ipv4" \
    "relayhost =" \
    "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
    "smtpd_recipient_restrictions = ${POSTFIX_RCPT_RESTRICTIONS:-permit_mynetworks, reject_unauth_destination}" \
    "smtpd_milters = $milter" \
    "non_smtpd_milters =" \
    "milter_protocol = 6" \
    "milter_default_action = tempfail" \
    "maillog_file = $LOG" \
    "alias_maps = hash:/etc/aliases" \
    "alias_database = hash:/etc/aliases" \
    "mailbox_command =" \
    "home_mailbox =" \
    "mail_spool_directory = /var/mail" \
    "mailbox_size_limit = 0"
  # maillog_file needs the postlog service (present in Postfix >= 3.4's master.cf).
  if ! postconf -M postlog/unix-dgram >/dev/null 2>&1 || [ -z "$(postconf -M postlog/unix-dgram 2>/dev/null)" ]; then
    postconf -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd"
  fi
  touch "$LOG"
  [ -f /etc/aliases ] || echo "postmaster: root" >/etc/aliases
  newaliases </dev/null >>"$SCRIPT_LOG" 2>&1
  postfix check </dev/null >>"$SCRIPT_LOG" 2>&1 || die "postfix check failed (see $SCRIPT_LOG)"

  local after
  after=$(postconf -h inet_interfaces inet_protocols 2>/dev/null | tr '\n' ' ')
  if is_running; then
    if [ "$before" != "$after" ]; then
      # Listening addresses change only with a restart.
      postfix stop </dev/null >>"$SCRIPT_LOG" 2>&1 || true
      postfix start </dev/null >>"$SCRIPT_LOG" 2>&1 || die "postfix start failed (see $SCRIPT_LOG)"
    else
      postfix reload </dev/null >>"$SCRIPT_LOG" 2>&1 || die "postfix reload failed (see $SCRIPT_LOG)"
    fi
  else
    postfix start </dev/null >>"$SCRIPT_LOG" 2>&1 || die "postfix start failed (see $SCRIPT_LOG)"
  fi
  wait_for_port
  echo "postfix: listening on 127.0.0.1:25 as mx.test; milter: ${milter:-none}; log: $LOG"
}

stop() {
  need_root
  if command -v postfix >/dev/null && is_running; then
    postfix stop </dev/null >>"$SCRIPT_LOG" 2>&1 || die "postfix stop failed (see $SCRIPT_LOG)"
    local i
    for i in $(seq 1 50); do
      is_running || break
      sleep 0.2
    done
    echo "postfix: stopped"
  else
    echo "postfix: not running"
  fi
}

case "${1:-start}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  status) is_running ;;
  -h | --help | help) sed -n '2,24p' "$0" ;;
  [0-9]* | inet:* | unix:* | none | /*) start "$1" ;;
  *) die "usage: postfix-env.sh [start [MILTER]] | stop | status" ;;
esac
