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

use super::fast::{Fast, FastFn, plain_host};
use super::{Failure, Filter, Rules, failure};
use crate::line::LogLine;
use crate::pattern::Captured;

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

/// The hand-written readings of the rules (see `filter::fast`), by the
/// rule's source.
fn shortcut(src: &str) -> Option<FastFn> {
    let f: FastFn = if src.starts_with("^(?:NOQUEUE|[0-9A-Za-z]+): (?:milter-)?reject: ") {
        reject
    } else if src.starts_with("^improper command pipelining after ") {
        pipelining
    } else if src.starts_with("^too many errors after ") {
        too_many_errors
    } else if src.starts_with("^warning: [^\\[\\s]*\\[<HOST>\\](?::[0-9]+)?: SASL ") {
        sasl
    } else {
        return None;
    };
    Some(f)
}

/// `NAME[HOST]` (CLIENT without its port) at the start of `s`: NAME
/// cannot hold `[` or white space, so the host starts after the first
/// `[`; a host cannot hold `]`, so it ends at the next one and is read
/// whole. The host and the text after `]`.
fn client(s: &str) -> Option<(&str, &str)> {
    let open = s.find('[')?;
    if s[..open].contains(char::is_whitespace) {
        return None;
    }
    let s = &s[open + 1..];
    let close = s.find(']')?;
    let host = &s[..close];
    (plain_host(host) == Some(host.len())).then(|| (host, &s[close + 1..]))
}

/// CLIENT's optional `:PORT`, then `: `: a port is a maximal digit run,
/// so both are forced.
fn port_then_colon(s: &str) -> Option<&str> {
    let s = match s.strip_prefix(':') {
        Some(p) if p.starts_with(|c: char| c.is_ascii_digit()) => {
            p.trim_start_matches(|c: char| c.is_ascii_digit())
        }
        _ => s,
    };
    s.strip_prefix(": ")
}

/// `\S+` then ` SEP`: the word ends at the first space.
fn word_then<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let sp = s.find(' ')?;
    let w = &s[..sp];
    if w.is_empty() || w.contains(char::is_whitespace) {
        return None;
    }
    Some((w, s[sp..].strip_prefix(sep)?))
}

fn matched<'t>(host: &'t str, user: Option<&'t str>, fields: Vec<(&'t str, &'t str)>) -> Fast<'t> {
    Fast::Match(Captured {
        host: Some(host),
        user,
        fields,
    })
}

/// `QUEUEID: [milter-]reject: CMD from CLIENT: CODE REASON`: the queue
/// id, the command and the code's numbers are maximal runs before fixed
/// text, so every part is forced. Any other shape: the regex.
fn reject(m: &str) -> Fast<'_> {
    let parsed = (|| {
        let b = m.as_bytes();
        if memchr::memchr(b'\n', b).is_some() {
            return None;
        }
        let id = b.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
        let s = m.get(id..)?.strip_prefix(": ").filter(|_| id > 0)?;
        let s = s.strip_prefix("milter-").unwrap_or(s);
        let s = s.strip_prefix("reject: ")?;
        let cmd = s.bytes().take_while(u8::is_ascii_uppercase).count();
        let s = s[cmd..].strip_prefix(" from ").filter(|_| cmd > 0)?;
        let (host, s) = client(s)?;
        let s = port_then_colon(s)?;
        let c = s.as_bytes();
        let d = |i: usize| c.get(i).is_some_and(u8::is_ascii_digit);
        let code_start = matches!(c.first(), Some(b'4' | b'5'))
            && d(1)
            && d(2)
            && c.get(3) == Some(&b' ')
            && matches!(c.get(4), Some(b'4' | b'5'))
            && c.get(5) == Some(&b'.');
        if !code_start {
            return None;
        }
        let mut i = 6;
        for last in [false, true] {
            let n = c[i..].iter().take_while(|x| x.is_ascii_digit()).count();
            if !(1..=3).contains(&n) {
                return None;
            }
            i += n;
            let sep = if last { b' ' } else { b'.' };
            if c.get(i) != Some(&sep) {
                return None;
            }
            i += 1;
        }
        Some((host, &s[..i - 1], &s[i..]))
    })();
    match parsed {
        Some((host, code, reason)) => matched(host, None, vec![("code", code), ("reason", reason)]),
        None => Fast::Unsure,
    }
}

/// `improper command pipelining after CMD from CLIENT…` (nothing is
/// required after the client).
fn pipelining(m: &str) -> Fast<'_> {
    let Some(s) = m.strip_prefix("improper command pipelining after ") else {
        return Fast::NoMatch;
    };
    match word_then(s, " from ").and_then(|(_, s)| client(s)) {
        Some((host, _)) => matched(host, None, Vec::new()),
        None => Fast::Unsure,
    }
}

/// `too many errors after CMD from CLIENT` and only white space after.
fn too_many_errors(m: &str) -> Fast<'_> {
    let Some(s) = m.strip_prefix("too many errors after ") else {
        return Fast::NoMatch;
    };
    let Some((host, rest)) = word_then(s, " from ").and_then(|(_, s)| client(s)) else {
        return Fast::Unsure;
    };
    let rest = match rest.strip_prefix(':') {
        Some(p) if p.starts_with(|c: char| c.is_ascii_digit()) => {
            p.trim_start_matches(|c: char| c.is_ascii_digit())
        }
        _ => rest,
    };
    if rest.chars().all(char::is_whitespace) {
        matched(host, None, Vec::new())
    } else {
        Fast::Unsure
    }
}

/// `warning: CLIENT: SASL MECH authentication failed:REASON[, sasl_username=USER]`:
/// REASON is lazy before an optional greedy group that runs to the end,
/// so it ends at the first `, sasl_username=` (or at the end).
fn sasl(m: &str) -> Fast<'_> {
    let Some(s) = m.strip_prefix("warning: ") else {
        return Fast::NoMatch;
    };
    let parsed = (|| {
        if memchr::memchr(b'\n', m.as_bytes()).is_some() {
            return None;
        }
        let (host, s) = client(s)?;
        let s = port_then_colon(s)?.strip_prefix("SASL ")?;
        let (_, reason) = word_then(s, " authentication failed:")?;
        Some(match reason.find(", sasl_username=") {
            Some(at) => (host, &reason[..at], Some(&reason[at + 16..])),
            None => (host, reason, None),
        })
    })();
    match parsed {
        Some((host, reason, user)) => matched(host, user, vec![("reason", reason)]),
        None => Fast::Unsure,
    }
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
            rules: Rules::with_shortcuts(&table, bits, shortcut),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines on the edge of the shortcuts' grammar: every answer is
    /// checked against the regex (debug builds), and the failures are
    /// the ones the regex gives.
    #[test]
    fn shortcuts_agree_with_the_regexes_on_edge_lines() {
        let mut f = Postfix::new("aggressive");
        let cases: &[(&str, Option<&str>)] = &[
            (
                "NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <a@b>: Relay access denied; from=<x> to=<a@b>",
                Some("192.0.2.1"),
            ),
            (
                "4A1B2C: milter-reject: END from m.example[192.0.2.2]:25: 550 5.7.1 spam",
                Some("192.0.2.2"),
            ),
            // Temporary, and greylisting: no failure.
            (
                "NOQUEUE: reject: RCPT from x[192.0.2.3]: 450 4.2.0 <a@b>: Recipient address rejected: Greylisted",
                None,
            ),
            (
                "NOQUEUE: reject: RCPT from x[192.0.2.4]: 550 5.7.1234 too many digits",
                None,
            ),
            (
                "NOQUEUE: reject: RCPT from x y[192.0.2.5]: 550 5.7.1 space",
                None,
            ),
            (
                "NOQUEUE: reject: RCPT from x[2001:db8::6]: 550 5.7.1 v6",
                Some("2001:db8::6"),
            ),
            (
                "NOQUEUE: reject: RCPT from x[192.0.2.7]:: 550 5.7.1 double colon",
                None,
            ),
            (
                "improper command pipelining after DATA from unknown[192.0.2.8]:",
                Some("192.0.2.8"),
            ),
            (
                "too many errors after RCPT from example.com[192.0.2.9]:25  ",
                Some("192.0.2.9"),
            ),
            (
                "too many errors after RCPT from example.com[192.0.2.10]:",
                None,
            ),
            (
                "warning: unknown[192.0.2.11]:55729: SASL LOGIN authentication failed: x, sasl_username=u, sasl_username=v",
                Some("192.0.2.11"),
            ),
            (
                "warning: unknown[192.0.2.12]: SASL LOGIN authentication failed: Connection lost to authentication server",
                None,
            ),
            (
                "warning: unknown[192.0.2.13]: SASL  LOGIN authentication failed: x",
                None,
            ),
        ];
        for (msg, want) in cases {
            let line = format!("Feb 25 14:34:10 h postfix/smtpd[1]: {msg}");
            let got = f.process(&crate::line::parse(&line)).map(|x| x.host.text);
            assert_eq!(got.as_deref(), *want, "{msg}");
        }
    }
}
