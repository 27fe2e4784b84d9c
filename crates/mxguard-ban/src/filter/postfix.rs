//! The `postfix` filter: smtpd's and postscreen's rejects and abuse.
//!
//! Modes: `normal` (permanent rejects at any stage, temporary rejects for
//! reasons a real sender does not hit — no reverse name, unknown HELO or
//! sender domain, DNS list — improper pipelining, too many errors),
//! `auth` (SASL authentication failures), `more` (normal and auth: the
//! default), `rbl` (DNS-list rejects only), `errors` (too many errors
//! only), `ddos` (connections that do nothing: lost after CONNECT/
//! STARTTLS, failed AUTH in the disconnect summary, postscreen's PREGREET,
//! HANGUP and command limits, rate limits), `aggressive` (all, plus SASL
//! mechanism errors and forward-confirmed DNS mismatches).
//!
//! Greylisting (`450 4.2.0 … Greylisted`) and other temporary rejects a
//! legitimate sender retries through are not failures. The client's
//! address is the first bracket after `from`: Postfix writes
//! `name[addr]`, and a name never holds `[`.

use super::{Failure, Filter, Rules, failure};
use crate::line::LogLine;

const NORMAL: u8 = 1;
const AUTH: u8 = 2;
const RBL: u8 = 4;
const ERRORS: u8 = 8;
const DDOS: u8 = 16;
const AGGRESSIVE: u8 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Fail,
    /// A reject: 5xx always, 4xx for the reasons in [`TEMPORARY_FAILURES`].
    Reject,
    /// A SASL failure: not when the authentication server was unreachable,
    /// and a mechanism error only in aggressive mode.
    Sasl,
}

use Effect::*;

/// Temporary rejects that are the client's fault all the same.
const TEMPORARY_FAILURES: &[&str] = &[
    "Client host rejected: cannot find your hostname",
    "Client host rejected: cannot find your reverse hostname",
    "Helo command rejected: Host not found",
    "Sender address rejected: Domain not found",
    "Sender address rejected: Malformed DNS server reply",
    "Service unavailable; Client host [",
    "Service unavailable; client [",
];

const CLIENT: &str = r"[^\[\s]*\[<HOST>\](?::[0-9]+)?";

#[rustfmt::skip]
fn table() -> Vec<(u8, Effect, String)> {
    vec![
        (NORMAL | RBL, Reject, format!(r"^(?:NOQUEUE|[0-9A-Za-z]+): (?:milter-)?reject: [A-Z]+ from {CLIENT}: <F-CODE>[45][0-9][0-9] [45]\.[0-9]{{1,3}}\.[0-9]{{1,3}}</F-CODE> <F-REASON>.*</F-REASON>$")),
        (NORMAL, Fail, format!(r"^improper command pipelining after \S+ from {CLIENT}:?")),
        (NORMAL | ERRORS, Fail, format!(r"^too many errors after \S+ from {CLIENT}\s*$")),
        (AUTH, Sasl, format!(r"^warning: {CLIENT}: SASL \S+ authentication failed:<F-REASON>.*?</F-REASON>(?:, sasl_username=<F-USER>.*</F-USER>)?$")),
        (AGGRESSIVE, Fail, r"^warning: hostname \S+ does not resolve to address <ADDR>(?::.*)?$".to_string()),
        (DDOS, Fail, format!(r"^disconnect from {CLIENT}(?: \S+=[0-9/]+)*? auth=0/[0-9]+(?: .*)?$")),
        (DDOS, Fail, format!(r"^(?:NOQUEUE: )?lost connection after (?:CONNECT|STARTTLS|EHLO|HELO|UNKNOWN) from {CLIENT}\s*$")),
        (DDOS, Fail, r"^PREGREET [0-9]+ after \S+ from \[<ADDR>\]:[0-9]+".to_string()),
        (DDOS, Fail, r"^HANGUP after \S+ from \[<ADDR>\]:[0-9]+".to_string()),
        (DDOS, Fail, r"^COMMAND (?:TIME|COUNT|LENGTH) LIMIT from \[<ADDR>\]:[0-9]+".to_string()),
        (DDOS, Fail, format!(r"^warning: (?:Connection|Message delivery request|Recipient address|New TLS session|Connection concurrency) (?:rate )?limit exceeded: [0-9]+ from {CLIENT} for service \S+\s*$")),
    ]
}

pub struct Postfix {
    name: String,
    rules: Rules<Effect>,
    mode: u8,
}

impl Postfix {
    pub fn new(mode: &str) -> Postfix {
        let bits = match mode {
            "normal" => NORMAL,
            "auth" => AUTH,
            "rbl" => RBL,
            "errors" => ERRORS,
            "ddos" => DDOS,
            "aggressive" => NORMAL | AUTH | RBL | ERRORS | DDOS | AGGRESSIVE,
            _ => NORMAL | AUTH,
        };
        let table = table();
        let table: Vec<(u8, Effect, &str)> =
            table.iter().map(|(m, e, s)| (*m, *e, s.as_str())).collect();
        Postfix {
            name: if mode == "more" {
                "postfix".into()
            } else {
                format!("postfix:{mode}")
            },
            rules: Rules::new(&table, bits),
            mode: bits,
        }
    }
}

impl Filter for Postfix {
    fn name(&self) -> &str {
        &self.name
    }

    fn rules(&self) -> Vec<String> {
        self.rules.sources()
    }

    fn process(&mut self, line: &LogLine<'_>) -> Option<Failure> {
        if !line.daemon.starts_with("postfix") {
            return None;
        }
        let (rule, effect, caps) = self.rules.first(line.msg)?;
        let field = |name: &str| {
            caps.fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .unwrap_or("")
        };
        match effect {
            Fail => failure(&caps, rule),
            Reject => {
                let reason = field("reason");
                if self.mode & NORMAL == 0 && !reason.contains(" blocked using ") {
                    return None;
                }
                // Most rejects are permanent: the temporary reasons (a scan
                // of the reason per entry) only for a 4xx.
                let failed = field("code").starts_with('5')
                    || (TEMPORARY_FAILURES.iter().any(|t| reason.contains(t))
                        && !reason.contains("Greylisted"));
                failed.then(|| failure(&caps, rule)).flatten()
            }
            Sasl => {
                let reason = field("reason");
                if reason.contains("Connection lost to authentication server") {
                    return None;
                }
                if reason.contains("Invalid authentication mechanism")
                    && self.mode & AGGRESSIVE == 0
                {
                    return None;
                }
                failure(&caps, rule)
            }
        }
    }
}
