//! The `sshd` filter: OpenSSH's failures (also as `sshd-session`, the
//! process name of OpenSSH ≥ 9.8).
//!
//! Modes: `normal` (failed passwords and keys of invalid users, invalid
//! users, denied users, PAM failures, too many failures), `ddos` (probes
//! that never authenticate: no banner, bad protocol, preauth closes and
//! resets, key-exchange errors), `extra` (negotiation failures, preauth
//! disconnects of authenticating users), `aggressive` (all three).
//!
//! Some failures name no host (`Disconnecting: Too many authentication
//! failures [preauth]`): they are tied to the connection's address by the
//! pid, which other lines of the same connection name. A failure whose
//! address is not known yet waits for the next line that names it.
//! Failed public keys of a valid user are not failures (clients try
//! several keys); too many of them are. Failed PAM attempts count when the
//! client switches user names, or logs in as a user it did not fail as
//! (gh-2070's "forget by success" trick).
//!
//! Injection: user names and the client's own text come before the
//! address (`for <user> from <addr>`) and are matched lazily against a
//! fixed tail, so a user name `x from 1.2.3.4` does not ban 1.2.3.4.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::fast::{Fast, FastFn, host_then, only, plain_host, tail};
use super::{Failure, Filter, Rules, failure};
use crate::host::Host;
use crate::line::LogLine;
use crate::pattern::Captured;

const N: u8 = 1;
const D: u8 = 2;
const E: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// A failure of the captured host.
    Fail,
    /// `Failed <method> for …`: a failure, except a valid user's public key.
    FailedMethod,
    /// Names the connection's address; a waiting failure becomes one.
    Helper,
    /// `Connection from`: a new connection on this pid.
    NewConnection,
    /// `Connection closed|reset by …`: a failure with `[preauth]` in ddos
    /// mode, a helper otherwise.
    Closed,
    /// A failure of the connection's address (from the pid).
    ByPid,
    /// Too many authentication failures: a failure unless the connection
    /// already failed.
    TooMany,
    /// A PAM authentication failure (counted on a change of user).
    Pam,
    /// A successful login: forgets the connection (a failure if it is a
    /// user the client did not fail as).
    Accepted,
}

use Effect::*;

/// The tail after `from <HOST>` in `Failed … from …` lines.
const PORT: &str = r"(?: port [0-9]+)?";

#[rustfmt::skip]
fn table() -> Vec<(u8, Effect, String)> {
    let user = r"<F-USER>.*?</F-USER>";
    vec![
        (N, FailedMethod, format!(r"^Failed (?:<F-METHOD>\S+</F-METHOD>) for (?:<F-INVALID>(?:invalid|illegal) user </F-INVALID>)?{user} from <HOST>{PORT}(?: ssh[0-9]*)?(?:: .*)?\s*$")),
        (N, Fail, format!(r"^(?:PAM: )?[Aa]uthentication (?:failure|error) for (?:(?:illegal|invalid) user )?{user} from <HOST>(?: via \S+)?\s*$")),
        (N, Fail, format!(r"^PAM: User not known to the underlying authentication module for (?:(?:illegal|invalid) user )?{user} from <HOST>\s*$")),
        (N, Fail, format!(r"^(?:[Ii]nvalid|[Ii]llegal) user {user} from <HOST>{PORT}\s*$")),
        (N, Fail, format!(r"^User {user} from <HOST> not allowed because (?:not listed in AllowUsers|listed in DenyUsers|not in any group|a group is listed in DenyGroups|none of user's groups are listed in AllowGroups)\s*$")),
        (N, Fail, format!(r"^ROOT LOGIN REFUSED FROM <HOST>{PORT}(?: \[preauth\])?\s*$")),
        (N, Fail, r"^refused connect from \S+ \(<HOST>\)\s*$".to_string()),
        (N, Fail, format!(r"^Received disconnect from <HOST>{PORT}:\s*3: .*: Auth fail(?: \[preauth\])?\s*$")),
        // A preauth disconnect counts unless this connection already failed
        // (a client that fails its password and then disconnects is one failure).
        (N, TooMany, format!(r"^Received disconnect from <HOST>{PORT}:\s*11: .+ \[preauth\]\s*$")),
        (N, Fail, format!(r"^maximum authentication attempts exceeded for (?:(?:invalid|illegal) user )?{user} from <HOST>{PORT}(?: ssh[0-9]*)?(?: \[preauth\])?\s*$")),
        (N, Fail, format!(r"^Disconnecting (?:(?:invalid|authenticating) )?user {user} <HOST>{PORT}: Change of username or service not allowed: .*$")),
        (N, TooMany, format!(r"^Disconnecting (?:(?:invalid|authenticating) )?user {user} <HOST>{PORT}: Too many authentication failures(?: \[preauth\])?\s*$")),
        (N, TooMany, r"^Disconnecting: Too many authentication failures(?: for .*)?(?: \[preauth\])?\s*$".to_string()),
        (N, Pam, r"^pam_unix\(sshd:auth\):\s+authentication failure;\s+logname=\S*\s+uid=[0-9]*\s+euid=[0-9]*\s+tty=\S*\s+ruser=<F-RUSER>\S*</F-RUSER>\s+rhost=<HOST>(?:\s+user=<F-USER>\S*</F-USER>)?(?: \[preauth\])?\s*$".to_string()),
        (N, Accepted, format!(r"^Accepted \S+ for <F-USER>\S+</F-USER> from <HOST>{PORT}(?: ssh[0-9]*)?(?:: .*)?\s*$")),
        (N, NewConnection, format!(r"^Connection from <HOST>{PORT}(?: on \S+{PORT})?(?: rdomain .*)?\s*$")),
        (N, Closed, format!(r"^Connection (?:closed|reset) by (?:(?:invalid|authenticating) user {user} )?<HOST>{PORT}(?:<F-PREAUTH> \[preauth\]</F-PREAUTH>)?\s*$")),
        (N, Helper, r"^SSH: Server;Ltype: \S+;Remote: <HOST>-[0-9]+;".to_string()),
        // ddos
        (D, Fail, format!(r"^Did not receive identification string from <HOST>{PORT}\s*$")),
        (D, Fail, format!(r"^Bad protocol version identification '.*' from <HOST>{PORT}\s*$")),
        (D, Fail, format!(r"^Disconnected from <HOST>{PORT} \[preauth\]\s*$")),
        (D, Fail, format!(r"^banner exchange: Connection from <HOST>{PORT}: invalid format\s*$")),
        (D, Fail, format!(r"^ssh_dispatch_run_fatal: Connection from <HOST>{PORT}: (?:message authentication code incorrect|Connection corrupted)(?: \[preauth\])?\s*$")),
        (D, Fail, format!(r"^Timeout before authentication for (?:connection from )?<HOST>(?:{PORT}| to \S+, pid = [0-9]+)\s*$")),
        (D, ByPid, r"^kex_exchange_identification: (?:client sent invalid protocol identifier|Connection closed by remote host|read: Connection reset by peer|banner line too long)".to_string()),
        (D, ByPid, r"^Read from socket failed: Connection reset by peer(?: \[preauth\])?\s*$".to_string()),
        // extra
        (E, Fail, format!(r"^Received disconnect from <HOST>{PORT}:\s*14: No(?: supported)? authentication methods available(?: \[preauth\])?\s*$")),
        (E, Fail, format!(r"^Unable to negotiate with <HOST>{PORT}: no matching .+ found\..*$")),
        (E, Fail, format!(r"^Disconnected from (?:(?:invalid|authenticating) user {user} )<HOST>{PORT} \[preauth\]\s*$")),
        (E, ByPid, r"^Unable to negotiate a key exchange method(?: \[preauth\])?\s*$".to_string()),
        (E, ByPid, r"^no matching \S+(?: \S+)? found: .*$".to_string()),
    ]
}

/// The hand-written readings of the busiest rules (see `filter::fast`),
/// by the rule's source.
fn shortcut(src: &str) -> Option<FastFn> {
    let f: FastFn = if src.starts_with("^(?:PAM: )?[Aa]uthentication ") {
        authentication_failure
    } else if src.starts_with("^Connection (?:closed|reset) by ") {
        connection_closed
    } else if src.starts_with("^Failed ") {
        failed_method
    } else if src.starts_with("^(?:[Ii]nvalid|[Ii]llegal) user ") {
        invalid_user
    } else if src.starts_with(r"^pam_unix\(sshd:auth\)") {
        pam_failure
    } else if src.starts_with("^Received disconnect from <HOST>") && src.contains(r":\s*3: ") {
        disconnect_auth_fail
    } else if src.starts_with("^Received disconnect from <HOST>") && src.contains(r":\s*11: .+ ") {
        disconnect_preauth
    } else {
        return None;
    };
    Some(f)
}

/// `[PAM: ]Authentication failure|error for …`: only says no, to lines
/// that do not start that way (its literal prefilter lets PAM's
/// `pam_unix(sshd:auth): authentication failure;` lines through).
fn authentication_failure(m: &str) -> Fast<'_> {
    let r = m.strip_prefix("PAM: ").unwrap_or(m);
    if r.starts_with("Authentication ") || r.starts_with("authentication ") {
        Fast::Unsure
    } else {
        Fast::NoMatch
    }
}

/// `Connection closed|reset by HOST[ port N][ [preauth]]`, the form
/// without a user (with `invalid user …` before the host: the regex).
/// `[preauth]` is a field when the text after the port starts with it.
fn connection_closed(m: &str) -> Fast<'_> {
    let Some(r) = m
        .strip_prefix("Connection closed by ")
        .or_else(|| m.strip_prefix("Connection reset by "))
    else {
        return Fast::NoMatch;
    };
    if r.starts_with("invalid user ") || r.starts_with("authenticating user ") {
        return Fast::Unsure;
    }
    match host_then(r, &CLOSED_TAIL) {
        Fast::Match(c) => {
            let host = c.host.unwrap_or("");
            let mut after = &r[host.len()..];
            if let Some(p) = after.strip_prefix(" port ")
                && p.starts_with(|c: char| c.is_ascii_digit())
            {
                after = p.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            let fields = match after.get(..10) {
                Some(p @ " [preauth]") => vec![("preauth", p)],
                _ => Vec::new(),
            };
            Fast::Match(Captured { fields, ..c })
        }
        other => other,
    }
}

static CLOSED_TAIL: LazyLock<Regex> =
    LazyLock::new(|| tail(r"^(?: port [0-9]+)?(?: \[preauth\])?\s*$"));

/// What `Failed …` lines read after `from <HOST>`.
static FAILED_TAIL: LazyLock<Regex> =
    LazyLock::new(|| tail(r"^(?: port [0-9]+)?(?: ssh[0-9]*)?(?:: .*)?\s*$"));
static INVALID_TAIL: LazyLock<Regex> = LazyLock::new(|| tail(r"^(?: port [0-9]+)?\s*$"));
static AUTH_FAIL_TAIL: LazyLock<Regex> =
    LazyLock::new(|| tail(r"^(?: port [0-9]+)?:\s*3: .*: Auth fail(?: \[preauth\])?\s*$"));
static PREAUTH_TAIL: LazyLock<Regex> =
    LazyLock::new(|| tail(r"^(?: port [0-9]+)?:\s*11: .+ \[preauth\]\s*$"));

/// A host and tail read by `host_then`, with the user and fields added.
fn with<'t>(found: Fast<'t>, user: Option<&'t str>, fields: Vec<(&'t str, &'t str)>) -> Fast<'t> {
    match found {
        Fast::Match(c) => Fast::Match(Captured { user, fields, ..c }),
        other => other,
    }
}

/// `Failed METHOD for [invalid user ]USER from HOST…`. METHOD is `\S+`
/// before a space, so it ends at the first space; USER is lazy before
/// ` from `, so when ` from ` occurs once after `for ` it ends there
/// (otherwise: the regex). `invalid user ` is taken when it fits before
/// that ` from `.
fn failed_method(m: &str) -> Fast<'_> {
    let Some(r) = m.strip_prefix("Failed ") else {
        return Fast::NoMatch;
    };
    let Some(sp) = r.find(' ') else {
        return Fast::Unsure;
    };
    let method = &r[..sp];
    if method.is_empty() || method.contains(char::is_whitespace) {
        return Fast::Unsure;
    }
    let Some(r) = r[sp..].strip_prefix(" for ") else {
        return Fast::Unsure;
    };
    let Some(at) = only(r, " from ") else {
        return Fast::Unsure;
    };
    let (user, invalid) =
        if at >= 13 && (r.starts_with("invalid user ") || r.starts_with("illegal user ")) {
            (&r[13..at], Some(&r[..13]))
        } else {
            (&r[..at], None)
        };
    if user.contains('\n') {
        return Fast::Unsure;
    }
    let mut fields = vec![("method", method)];
    if let Some(i) = invalid {
        fields.push(("invalid", i));
    }
    with(host_then(&r[at + 6..], &FAILED_TAIL), Some(user), fields)
}

/// `Invalid user USER from HOST[ port N]`: USER as in `failed_method`.
fn invalid_user(m: &str) -> Fast<'_> {
    let b = m.as_bytes();
    let head = b.get(1..13);
    if !matches!(b.first(), Some(b'I' | b'i'))
        || !(head == Some(b"nvalid user ") || head == Some(b"llegal user "))
    {
        return Fast::NoMatch;
    }
    let r = &m[13..];
    let Some(at) = only(r, " from ") else {
        return Fast::Unsure;
    };
    let user = &r[..at];
    if user.contains('\n') {
        return Fast::Unsure;
    }
    with(
        host_then(&r[at + 6..], &INVALID_TAIL),
        Some(user),
        Vec::new(),
    )
}

/// `pam_unix(sshd:auth): authentication failure; logname=… uid=N euid=N
/// tty=… ruser=… rhost=HOST[ user=…][ [preauth]]`: fields are `\S*`
/// between `\s+`, so with spaces as the only white space each field is
/// the whole word; the host is the whole `rhost=` word.
fn pam_failure(m: &str) -> Fast<'_> {
    let Some(r) = m.strip_prefix("pam_unix(sshd:auth):") else {
        return Fast::NoMatch;
    };
    if m.bytes()
        .any(|c| !c.is_ascii() || (c != b' ' && (c as char).is_whitespace()))
    {
        return Fast::Unsure;
    }
    fn spaces(s: &str) -> Option<&str> {
        let t = s.trim_start_matches(' ');
        (t.len() < s.len()).then_some(t)
    }
    fn word(s: &str) -> (&str, &str) {
        s.split_at(s.find(' ').unwrap_or(s.len()))
    }
    fn field<'a>(s: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
        let (w, rest) = word(spaces(s)?.strip_prefix(key)?);
        Some((w, rest))
    }
    let digits = |w: &str| w.bytes().all(|c| c.is_ascii_digit());
    let parsed = (|| {
        let s = spaces(r)?.strip_prefix("authentication failure;")?;
        let (_, s) = field(s, "logname=")?;
        let (uid, s) = field(s, "uid=")?;
        let (euid, s) = field(s, "euid=")?;
        let (_, s) = field(s, "tty=")?;
        let (ruser, s) = field(s, "ruser=")?;
        let (host, s) = field(s, "rhost=")?;
        if !digits(uid) || !digits(euid) || plain_host(host) != Some(host.len()) {
            return None;
        }
        let end = |s: &str| s.bytes().all(|c| c == b' ');
        let preauth_end = |s: &str| s.strip_prefix(" [preauth]").is_some_and(end);
        if end(s) {
            return Some((ruser, host, None));
        }
        if let Some((user, rest)) = field(s, "user=") {
            return (end(rest) || preauth_end(rest)).then_some((ruser, host, Some(user)));
        }
        preauth_end(s).then_some((ruser, host, None))
    })();
    match parsed {
        Some((ruser, host, user)) => Fast::Match(Captured {
            host: Some(host),
            user,
            fields: vec![("ruser", ruser)],
        }),
        None => Fast::Unsure,
    }
}

/// `Received disconnect from HOST…: 3: …: Auth fail`.
fn disconnect_auth_fail(m: &str) -> Fast<'_> {
    match m.strip_prefix("Received disconnect from ") {
        Some(t) => host_then(t, &AUTH_FAIL_TAIL),
        None => Fast::NoMatch,
    }
}

/// `Received disconnect from HOST…: 11: … [preauth]`.
fn disconnect_preauth(m: &str) -> Fast<'_> {
    match m.strip_prefix("Received disconnect from ") {
        Some(t) => host_then(t, &PREAUTH_TAIL),
        None => Fast::NoMatch,
    }
}

/// One connection's state, by pid.
#[derive(Default)]
struct Conn {
    host: Option<Host>,
    failed: bool,
    /// Failures waiting for the address.
    pending: u32,
    /// PAM failures not yet counted, and the users they were for.
    pam: u32,
    users: Vec<String>,
}

/// Bound on connections remembered: past it, the oldest state is dropped
/// wholesale (a flood of pids must not grow memory).
const MAX_CONNS: usize = 20_000;

pub struct Sshd {
    name: String,
    rules: Rules<Effect>,
    bits: u8,
    conns: HashMap<String, Conn>,
}

impl Sshd {
    pub fn new(mode: &str) -> Sshd {
        let bits = match mode {
            "ddos" => N | D,
            "extra" => N | E,
            "aggressive" => N | D | E,
            _ => N,
        };
        let table = table();
        let table: Vec<(u8, Effect, &str)> =
            table.iter().map(|(m, e, s)| (*m, *e, s.as_str())).collect();
        Sshd {
            name: if mode == "normal" {
                "sshd".into()
            } else {
                format!("sshd:{mode}")
            },
            rules: Rules::with_shortcuts(&table, bits, shortcut),
            bits,
            conns: HashMap::new(),
        }
    }

    fn conn(&mut self, pid: &str) -> &mut Conn {
        // Looked up first: the key is allocated only for a new pid.
        if !self.conns.contains_key(pid) {
            if self.conns.len() >= MAX_CONNS {
                self.conns.clear();
            }
            self.conns.insert(pid.to_string(), Conn::default());
        }
        self.conns.get_mut(pid).expect("inserted above")
    }
}

/// The message without Solaris' `[ID n facility.level] ` and OpenSSH's
/// `error: ` / `fatal: ` prefixes.
fn strip(msg: &str) -> &str {
    let mut m = msg;
    if m.starts_with("[ID ")
        && let Some(close) = m.find("] ")
    {
        m = &m[close + 2..];
    }
    // A kernel-style time stamp some setups put in front:
    // `kernel:[  970.699396]: ` or `kernel: [  970.699397] `.
    if let Some(r) = m.strip_prefix("kernel:") {
        let r = r.trim_start_matches(' ');
        if let Some(r) = r.strip_prefix('[')
            && let Some(close) = r.find(']')
            && r[..close]
                .trim()
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
        {
            let r = &r[close + 1..];
            m = r.strip_prefix(':').unwrap_or(r).trim_start_matches(' ');
        }
    }
    for p in ["error: ", "fatal: "] {
        if let Some(r) = m.strip_prefix(p) {
            m = r;
        }
    }
    m
}

impl Filter for Sshd {
    fn name(&self) -> &str {
        &self.name
    }

    fn rules(&self) -> Vec<String> {
        self.rules.sources()
    }

    fn process(&mut self, line: &LogLine<'_>) -> Option<Failure> {
        if !line.daemon.starts_with("sshd") {
            return None;
        }
        let msg = strip(line.msg);
        let (rule, effect, caps) = self.rules.first(msg)?;
        let field = |name: &str| {
            caps.fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
        };
        let captured = failure(&caps, rule);
        let Some(pid) = line.pid else {
            // No pid: no connection to tie anything to.
            return match effect {
                Fail | TooMany => captured,
                FailedMethod
                    if field("method") != Some("publickey") || field("invalid").is_some() =>
                {
                    captured
                }
                _ => None,
            };
        };
        let preauth = field("preauth").is_some();
        let user = caps.user.map(str::to_string);
        let ddos = self.bits & D != 0;
        // Only PAM lines read the remote user: no copy for the others.
        let ruser = if effect == Pam {
            field("ruser").unwrap_or("").to_string()
        } else {
            String::new()
        };
        let is_publickey_of_valid =
            field("method") == Some("publickey") && field("invalid").is_none();
        let conn = self.conn(pid);
        // Whatever the line means, a captured address is the connection's.
        if let Some(f) = &captured {
            conn.host = Some(f.host.clone());
        }
        let emit = |conn: &mut Conn, extra: u32| -> Option<Failure> {
            let host = conn.host.clone()?;
            let attempts = conn.pending + extra;
            conn.pending = 0;
            conn.failed = true;
            Some(Failure {
                host,
                user: user.clone(),
                attempts: attempts.max(1),
                rule,
            })
        };
        match effect {
            Fail => emit(conn, 1),
            FailedMethod if is_publickey_of_valid => {
                if conn.pending > 0 {
                    emit(conn, 0)
                } else {
                    None
                }
            }
            FailedMethod => emit(conn, 1),
            NewConnection => {
                let pending = conn.pending;
                *conn = Conn {
                    host: captured.map(|f| f.host),
                    pending,
                    ..Conn::default()
                };
                if conn.pending > 0 {
                    emit(conn, 0)
                } else {
                    None
                }
            }
            Helper => {
                if conn.pending > 0 {
                    emit(conn, 0)
                } else {
                    None
                }
            }
            Closed if preauth && ddos => emit(conn, 1),
            Closed => {
                if conn.pending > 0 {
                    emit(conn, 0)
                } else {
                    None
                }
            }
            ByPid => {
                if conn.host.is_some() {
                    emit(conn, 1)
                } else {
                    conn.pending += 1;
                    None
                }
            }
            TooMany if conn.failed => None,
            TooMany => {
                if conn.host.is_some() {
                    emit(conn, 1)
                } else {
                    conn.pending += 1;
                    None
                }
            }
            Pam => {
                let user = if ruser.is_empty() {
                    user.as_deref().unwrap_or("")
                } else {
                    &ruser
                };
                conn.pam += 1;
                if !user.is_empty()
                    && !conn.users.iter().any(|u| u == user)
                    && conn.users.len() < 16
                {
                    conn.users.push(user.to_string());
                }
                if conn.users.len() >= 2 {
                    let n = conn.pam;
                    conn.pam = 0;
                    emit(conn, n)
                } else {
                    None
                }
            }
            Accepted => {
                let user = user.as_deref().unwrap_or("");
                let result = if !conn.users.is_empty() && !conn.users.iter().any(|u| u == user) {
                    let n = conn.pam + 1;
                    emit(conn, n)
                } else {
                    None
                };
                self.conns.remove(pid);
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcuts' tails are the rules' own text after `<HOST>`.
    #[test]
    fn shortcut_tails_are_the_rules_tails() {
        let sources: Vec<String> = table().into_iter().map(|(_, _, s)| s).collect();
        for (tail, head) in [
            (&*FAILED_TAIL, "^Failed "),
            (&*INVALID_TAIL, "^(?:[Ii]nvalid"),
            (
                &*AUTH_FAIL_TAIL,
                r"^Received disconnect from <HOST>{PORT}:\s*3: ",
            ),
            (
                &*PREAUTH_TAIL,
                r"^Received disconnect from <HOST>{PORT}:\s*11: ",
            ),
            (&*CLOSED_TAIL, "^Connection (?:closed"),
        ] {
            let head = head.replace("{PORT}", PORT);
            let src = sources
                .iter()
                .find(|s| s.starts_with(&head))
                .unwrap_or_else(|| panic!("no rule starts with {head}"));
            let after_host = &src[src.rfind("<HOST>").unwrap() + 6..]
                .replace("<F-PREAUTH>", "")
                .replace("</F-PREAUTH>", "");
            assert_eq!(&tail.as_str()[1..], after_host, "{src}");
        }
    }

    /// Lines the shortcuts decline or read on the edge of their grammar:
    /// every answer is checked against the regex (debug builds), and the
    /// failures are the ones the regex gives.
    #[test]
    fn shortcuts_agree_with_the_regexes_on_edge_lines() {
        let mut f = Sshd::new("aggressive");
        let mut pid = 0;
        let mut host = |f: &mut Sshd, msg: &str| {
            // A new connection each: no state carried between cases.
            pid += 1;
            let line = format!("Feb 25 14:34:10 h sshd[{pid}]: {msg}");
            f.process(&crate::line::parse(&line)).map(|x| x.host.text)
        };
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Failed password for root from 192.0.2.1 port 22 ssh2",
                Some("192.0.2.1"),
            ),
            // A user name carrying ` from ADDR`: the last address counts.
            (
                "Failed password for x from 192.0.2.9 from 192.0.2.2 port 22 ssh2",
                Some("192.0.2.2"),
            ),
            (
                "Failed password for invalid user  from 192.0.2.3 port 2",
                Some("192.0.2.3"),
            ),
            (
                "Failed password for invalid user from 192.0.2.4 port 2",
                Some("192.0.2.4"),
            ),
            (
                "Failed password for x from ::ffff:192.0.2.5 port 2 ssh2",
                Some("192.0.2.5"),
            ),
            (
                "Failed password for x from 2001:db8::6 port 2 ssh2",
                Some("2001:db8::6"),
            ),
            ("Failed password for x from host.example. port 2", None),
            ("Failed password for x from 192.0.2.7 port x", None),
            ("Invalid user a from 192.0.2.8", Some("192.0.2.8")),
            (
                "Invalid user a from 192.0.2.8 from 192.0.2.10",
                Some("192.0.2.10"),
            ),
            ("illegal user a from 192.0.2.11 port 5 ", Some("192.0.2.11")),
            ("Invalid user a from 192.0.2.12 port", None),
            (
                "Received disconnect from 192.0.2.13: 3: x: Auth fail [preauth]",
                Some("192.0.2.13"),
            ),
            (
                "Received disconnect from 192.0.2.14 port 2:11: bye [preauth]",
                Some("192.0.2.14"),
            ),
            ("Received disconnect from 192.0.2.15: 11: bye", None),
            (
                "Connection closed by 192.0.2.16 port 2 [preauth]",
                Some("192.0.2.16"),
            ),
            ("Connection reset by 192.0.2.17 [preauth] x", None),
        ];
        for (msg, want) in cases {
            assert_eq!(host(&mut f, msg).as_deref(), *want, "{msg}");
        }
        // PAM: counted on a change of user (same connection); both lines
        // must parse.
        let mut f = Sshd::new("normal");
        let host = |f: &mut Sshd, msg: &str| {
            let line = format!("Feb 25 14:34:10 h sshd[1]: {msg}");
            f.process(&crate::line::parse(&line)).map(|x| x.host.text)
        };
        let pam = "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.20";
        assert_eq!(host(&mut f, &format!("{pam}  user=a")), None);
        assert_eq!(
            host(&mut f, &format!("{pam} user=b [preauth]")).as_deref(),
            Some("192.0.2.20")
        );
        for odd in [
            format!("{pam}\tuser=c"),
            format!("{pam} user=c  [preauth]"),
            format!("{pam} [preauth]"),
            format!("{pam}x user=d"),
            pam.replace("uid=0 ", "uid=x "),
            pam.replace("authentication failure", "authentication  failure"),
        ] {
            let _ = host(&mut f, &odd);
        }
    }
}
