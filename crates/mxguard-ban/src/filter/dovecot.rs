//! The `dovecot` filter: failed logins (auth failed, disallowed plaintext
//! auth, proxy auth failures), passdb failures (pam, sql, ldap,
//! passwd-file… "unknown user", "password mismatch"), pam_unix. Mode
//! `aggressive` adds logins aborted without any attempt (scanners, TLS
//! probes).
//!
//! Dovecot's prefixes vary by version and logging target (`dovecot:
//! imap-login:`, `imap-login: Info:`, `auth-worker(123): Info:`,
//! `auth(user,addr,…)<session>:`), so the rules read the whole line after
//! its time stamp. The address is `rip=` — the last one on the line,
//! since the user name (attacker's text) comes before it — or the second
//! field of a passdb's `driver(user,addr…)`, where the user cannot hold
//! a comma.

use super::{Failure, Filter, Rules, failure};
use crate::line::LogLine;

const NORMAL: u8 = 1;
const AGGRESSIVE: u8 = 2;

#[rustfmt::skip]
const TABLE: &[(u8, (), &str)] = &[
    (NORMAL, (), r"-login: .*\((?:auth failed, [0-9]+ attempts?[^)]*|tried to use (?:disabled|disallowed) [^)]*? auth|proxy dest auth failed)\)(?: \([a-z_]+\))?: .*\brip=<ADDR>(?:[,\s]|$)"),
    (NORMAL, (), r"\b(?:pam|passwd-file|passwd|shadow|sql|ldap|checkpassword|bsdauth|static|lua|oauth2)\(<F-USER>[^,)]*</F-USER>,<ADDR>(?:,[^)]*)?\): (?:pam_authenticate\(\) failed: (?:Authentication failure|User not known to the underlying authentication module|Permission denied)|unknown user|[Pp]assword mismatch|invalid credentials)"),
    (NORMAL, (), r"\bauth\(<F-USER>[^,)]*</F-USER>,<ADDR>(?:,[^)]*)?\)(?:<[^>]*>)?: (?:Info: )?\S+: (?:unknown user|[Pp]assword mismatch|invalid credentials)"),
    (NORMAL, (), r"pam_unix\(dovecot:auth\):\s+authentication failure;.*\sruser=\S*\s+rhost=<ADDR>(?:\s+user=<F-USER>\S*</F-USER>)?\s*$"),
    (AGGRESSIVE, (), r"-login: .*\((?:no auth attempts[^)]*|disconnected before auth was ready[^)]*|client didn't finish SASL auth[^)]*|disconnected during TLS handshake)\)(?: \([a-z_]+\))?: .*\brip=<ADDR>(?:[,\s]|$)"),
];

pub struct Dovecot {
    name: String,
    rules: Rules<()>,
}

impl Dovecot {
    pub fn new(mode: &str) -> Dovecot {
        let bits = if mode == "aggressive" {
            NORMAL | AGGRESSIVE
        } else {
            NORMAL
        };
        Dovecot {
            name: if mode == "normal" {
                "dovecot".into()
            } else {
                format!("dovecot:{mode}")
            },
            rules: Rules::new(TABLE, bits),
        }
    }
}

impl Filter for Dovecot {
    fn name(&self) -> &str {
        &self.name
    }

    fn rules(&self) -> Vec<String> {
        self.rules.sources()
    }

    fn process(&mut self, line: &LogLine<'_>) -> Option<Failure> {
        let (rule, (), caps) = self.rules.first(line.rest)?;
        failure(&caps, rule)
    }
}
