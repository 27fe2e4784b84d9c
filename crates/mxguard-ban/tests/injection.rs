//! Log injection: text an attacker chooses (a user name, an SSH ident, a
//! client's auth info, a mail user) that contains "from 1.2.3.4" or
//! "rip=1.2.3.4" must never make a filter capture 1.2.3.4. The first
//! cases are fail2ban's published ones (its sshd and dovecot test logs,
//! gh-2185 and the `ruser` / auth-info cases); the rest are ours, one per
//! filter.

use mxguard_ban::filter;
use mxguard_ban::line;

/// (filter, line, the host that must be captured).
const CASES: &[(&str, &str, &str)] = &[
    // fail2ban's published cases.
    (
        "sshd",
        "Nov 11 08:04:51 redbamboo sshd[2737]: Failed password for invalid user from 10.10.1.1 from 127.0.0.1 port 58946 ssh2",
        "127.0.0.1",
    ),
    (
        "sshd",
        "Nov 11 08:04:52 redbamboo sshd[2737]: Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1 port 58946 ssh2",
        "127.0.0.1",
    ),
    (
        "sshd",
        "Nov 11 08:04:52 redbamboo sshd[2737]: Failed password for invalid user test from 127.0.0.1 port 58946 ssh2: from 10.10.1.2 port 55555 ssh2",
        "127.0.0.1",
    ),
    (
        "sshd",
        "Sep 29 17:15:02 spaceman sshd[12946]: Failed password for user from 127.0.0.1 port 20000 ssh1: ruser from 1.2.3.4",
        "127.0.0.1",
    ),
    (
        "sshd:aggressive",
        "Jul 17 23:04:00 srv sshd[1300]: Connection closed by authenticating user test 127.0.0.1 192.0.2.11 port 46039 [preauth]",
        "192.0.2.11",
    ),
    (
        "sshd:aggressive",
        "Jul 17 23:04:01 srv sshd[1300]: Connection closed by authenticating user test 127.0.0.1 port 12345 192.0.2.11 port 46039 [preauth]",
        "192.0.2.11",
    ),
    (
        "sshd:ddos",
        "Jun  7 01:11:58 host sshd[8783]: Bad protocol version identification 'dummy string' from 192.0.2.1' from 69.61.56.115 port 31778",
        "69.61.56.115",
    ),
    (
        "dovecot",
        "@400000004c91b044077a9e94 dovecot-auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=rhost=1.2.3.4 rhost=192.0.43.10",
        "192.0.43.10",
    ),
    // Ours.
    (
        "sshd",
        "Dec  7 09:00:00 mx sshd[1]: Invalid user x from 1.2.3.4 from 192.0.2.50 port 4242",
        "192.0.2.50",
    ),
    (
        "sshd",
        "Dec  7 09:00:00 mx sshd[2]: Failed password for invalid user root from 1.2.3.4 port 22 ssh2 from 192.0.2.51 port 4243 ssh2",
        "192.0.2.51",
    ),
    (
        "sshd",
        "Dec  7 09:00:00 mx sshd[3]: User a from 1.2.3.4 not allowed because listed in DenyUsers from 192.0.2.52 not allowed because listed in DenyUsers",
        "192.0.2.52",
    ),
    (
        "dovecot",
        "Dec  7 09:00:00 mx dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x, rip=1.2.3.4, >, method=PLAIN, rip=192.0.2.53, lip=192.0.2.1, TLS",
        "192.0.2.53",
    ),
    (
        "postfix",
        "Dec  7 09:00:00 mx postfix/smtpd[9]: warning: unknown[192.0.2.55]: SASL LOGIN authentication failed: x [1.2.3.4], sasl_username=[1.2.3.4]",
        "192.0.2.55",
    ),
    (
        "postfix",
        "Dec  7 09:00:00 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from unknown[192.0.2.56]: 554 5.7.1 <a@[1.2.3.4]>: Relay access denied; from=<x@[1.2.3.4]> to=<a@[1.2.3.4]> proto=ESMTP helo=<[1.2.3.4]>",
        "192.0.2.56",
    ),
];

#[test]
fn attacker_text_never_names_the_host() {
    let mut wrong = Vec::new();
    for (spec, text, want) in CASES {
        let mut f = filter::builtin(spec).unwrap();
        let got = f.process(&line::parse(text));
        let host = got.as_ref().map(|g| g.host.text.as_str());
        if host != Some(*want) {
            wrong.push(format!("[{spec}] want {want}, got {host:?}: {text}"));
        }
    }
    assert!(wrong.is_empty(), "injected hosts:\n{}", wrong.join("\n"));
}

/// Lines that only carry attacker text and no failure of the real peer
/// match nothing at all.
#[test]
fn injection_alone_is_no_failure() {
    for (spec, text) in [
        (
            "sshd",
            "Dec  7 09:00:00 mx sshd[5]: Accepted password for x from 1.2.3.4 port 1 ssh2 from 192.0.2.9 port 2 ssh2",
        ),
        (
            "dovecot",
            "Dec  7 09:00:00 mx dovecot: auth: sql(a)1.2.3.4(,192.0.2.54,<s>): unknown user",
        ),
        (
            "dovecot",
            "Dec  7 09:00:00 mx dovecot: imap-login: Disconnected: a (auth failed, 1 attempts) user=<rip=1.2.3.4>",
        ),
        (
            "postfix",
            "Dec  7 09:00:00 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from unknown[192.0.2.57]: 450 4.2.0 <a@b>: Recipient address rejected: Greylisted, Service unavailable; Client host [1.2.3.4] blocked using x",
        ),
    ] {
        let mut f = filter::builtin(spec).unwrap();
        let got = f.process(&line::parse(text));
        assert!(
            got.as_ref().is_none_or(|g| g.host.text != "1.2.3.4"),
            "[{spec}] {text} -> {got:?}"
        );
    }
}
