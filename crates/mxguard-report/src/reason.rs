//! The reasons pflogsumm groups problems by: its rules for shortening a
//! reject, deferral or bounce text to what the mails have in common (the
//! addresses and host names cut out), unless `--verbose-msg-detail` asks
//! for the whole text. Problems are a small share of a log, so regexes
//! are fine here (compiled once; linear time on hostile text).

use memchr::memmem::Finder;
use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

/// Searchers for the needles looked for on every reject line, built
/// once: building one per call (`str::find`, `memmem::find`) cost more
/// than the search itself on lines this short.
macro_rules! needles {
    ($($name:ident = $text:expr;)*) => {
        $(static $name: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new($text));)*
    };
}
needles! {
    TO_OPEN = "to=<";
    USER_UNKNOWN = ">: User unknown ";
    PIPELINING_PHRASE = "Improper use of SMTP command pipelining";
    SIZE_PHRASE = "Message size exceeds fixed limit";
    CONFIG_ERROR_PHRASE = "Server configuration error";
    CONFIG_PROBLEM_PHRASE = "Server configuration problem";
    BLOCKED = " blocked";
}

/// `needle`'s first position in `s`.
fn find(s: &str, needle: &Finder) -> Option<usize> {
    needle.find(s.as_bytes())
}

/// A reject, reject_warning, hold or discard by smtpd/postscreen, split
/// the way the report groups it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The SMTP stage: RCPT, DATA, CONNECT, EHLO, MAIL, VRFY, …
    pub stage: String,
    pub reason: String,
    /// What is counted under the reason: the client's domain, the
    /// recipient or the sender, depending on the reason.
    pub data: String,
}

/// pflogsumm's problem rules. The patterns are compiled once per process,
/// and only those used: every collector (three when a file is read by two
/// threads) compiled all eighteen, 12 million instructions each, before
/// reading a line, and most serve only as the byte scans' test oracle.
pub struct Rules {
    _private: (),
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("built-in pattern")
}

/// The patterns, each compiled at its first use.
macro_rules! patterns {
    ($($name:ident = $text:expr;)*) => {
        $(static $name: LazyLock<Regex> = LazyLock::new(|| re($text));)*
    };
}
patterns! {
    RCPT_ADDR_RE = r"^(\d{3} <).*?(>:)";
    RCPT_PROTOCOL_RE = r"^(?:\d{3} \d\.\d\.\d )(Protocol error);.*$";
    RCPT_REASON_RE = r"^(?:.*?[:;] )(?:\[[^\]]+\] )?([^;,]+)[;,].*$";
    RCPT_ADDR_REJECTED_RE = r"^((?:Sender|Recipient) address rejected: [^:]+):.*$";
    RCPT_BLOCKED_RE = r"(?:client|Client host|Sender address) .+? blocked";
    MAIL_REASON_RE = r"^\d{3} (?:<.+>: )?([^;:]+)[;:]?.*$";
    OTHER_REASON_RE = r"^(?:.*[:;] )?([^,]+).*$";
    TO_FULL_RE = r"to=<([^>]+)>";
    TO_UNKNOWN_RE = r"\d{3} <([^>]+)>: User unknown ";
    TO_OPEN_RE = r"to=<(.*?)(?:[, ]|$)";
    FROM_FULL_RE = r"from=<([^>]+)>";
    PIPELINING_RE = r"^.*?\d{3} (Improper use of SMTP command pipelining);.*$";
    PIPELINING_SRC_RE = r"^.+? from (\S+?):.*$";
    SIZE_LIMIT_RE = r"^.*?\d{3} (Message size exceeds fixed limit);.*$";
    LOCAL_CONFIG_RE = r"^.*?\d{3} (Server configuration (?:error|problem));.*$";
    CLEANUP_FROM_RE = r"(?: from \S+?)?; from=<.*$";
    SMTP_CONNECT_ADDRESS_RE = r".* connect to (\S+?): ([^;]+); address \S+ port.*$";
    SMTP_CONNECT_PORT_RE = r".* connect to ([^\[]+)\[\S+?\]: (.+?) \(port \d+\)$";
}

/// Cuts to `max` characters with "..." when longer.
pub fn trim(s: &str, max: usize, verbose: bool) -> String {
    let mut out = String::new();
    trim_into(s, max, verbose, &mut out);
    out
}

/// [`trim`] into a buffer kept by the caller: warnings are a tenth of a
/// server's lines and most are cut, a String allocated and freed each.
pub fn trim_into(s: &str, max: usize, verbose: bool, out: &mut String) {
    out.clear();
    // Bytes bound characters from above, and ASCII text (nearly every
    // log line) is cut by bytes: no per-character walk.
    if verbose || s.len() <= max {
        out.push_str(s);
        return;
    }
    if s.is_ascii() {
        let keep = max.saturating_sub(3);
        out.push_str(&s[..keep]);
        out.push_str("...");
        return;
    }
    if s.chars().count() <= max {
        out.push_str(s);
        return;
    }
    out.extend(s.chars().take(max.saturating_sub(3)));
    out.push_str("...");
}

/// Shortens a remote server's reply: drops what precedes "said: ", then
/// leading "word: " parts, until it fits; cut with "..." as a last resort.
pub fn trim_said(s: &str, max: usize) -> String {
    let mut s = s.to_string();
    while s.chars().count() > max {
        if let Some(p) = s.rfind(" said: ") {
            s = s[p + 7..].to_string();
        } else if let Some(p) = s.find(':') {
            s = s[p + 1..].trim_start_matches(' ').to_string();
        } else {
            s = trim(&s, max, false);
            break;
        }
    }
    s
}

fn strip_code(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
        &s[4..]
    } else {
        s
    }
}

/// Splits a reject-like line into (stage, client, rest) as the pattern
/// `^(?:.* )?\b(?:reject(?:_warning)?|hold|discard): (\S+) from (\S+?): (.*)$`
/// does (the rightmost keyword that fits wins), by byte scans: rejects can
/// be a large share of a log under attack.
pub fn split_reject(line: &str) -> Option<(&str, &str, &str)> {
    let b = line.as_bytes();
    // Each keyword ends in ": ", and the rightmost one that fits wins:
    // one pass over the colons from the right (rejects can be a fifth of
    // a log; four keyword searches over each were a twentieth of a run).
    for colon in memchr::memrchr_iter(b':', b) {
        if b.get(colon + 1) != Some(&b' ') {
            continue;
        }
        let before = &b[..colon];
        // By the keyword's last letter: most colons (addresses, ports,
        // reply texts) end none of them, and are passed on one compare.
        let kw: &[u8] = match before.last() {
            Some(b't') if before.ends_with(b"reject") => b"reject",
            Some(b'g') if before.ends_with(b"reject_warning") => b"reject_warning",
            Some(b'd') if before.ends_with(b"hold") => b"hold",
            Some(b'd') if before.ends_with(b"discard") => b"discard",
            _ => continue,
        };
        let at = colon - kw.len();
        if at > 0 && b[at - 1] != b' ' {
            continue;
        }
        let s = colon + 2;
        let stage_len = b[s..]
            .iter()
            .position(|c| c.is_ascii_whitespace())
            .unwrap_or(b.len() - s);
        if stage_len == 0 || !b[s + stage_len..].starts_with(b" from ") {
            continue;
        }
        let c = s + stage_len + 6;
        // The client (`\S+?`) ends at the first ": " of its run of
        // non-space bytes, and that space ends the run: so the run's end is
        // found (a space by memchr, then no other white space before it),
        // and a colon must precede it.
        let Some(e) = client_end(b, c) else { continue };
        if c >= b.len()
            || b[c].is_ascii_whitespace()
            || memchr::memchr(b'\n', &b[e + 2..]).is_some()
        {
            continue;
        }
        return Some((&line[s..s + stage_len], &line[c..e], &line[e + 2..]));
    }
    None
}

/// The end (the colon) of `\S+?: ` at `c` (at least two bytes before the
/// colon's space, no white space before it); None when there is none.
fn client_end(b: &[u8], c: usize) -> Option<usize> {
    let run = b.get(c..)?;
    let sp = memchr::memchr(b' ', run)?;
    // The other white space bytes, checked without an early exit (the
    // loop vectorises); nearly never present.
    let other = run[..sp].iter().fold(false, |acc, &x| {
        acc | matches!(x, b'\t' | b'\n' | b'\x0c' | b'\r')
    });
    (!other && sp >= 2 && run[sp - 1] == b':').then_some(c + sp - 1)
}

// Hand-written forms of pflogsumm's reason patterns (each names the
// pattern it implements; the tests check them against it): rejects can
// be most of a log under attack, and regex replacement cost ~10 µs a line.

fn code3(s: &str) -> bool {
    code3_at(s.as_bytes(), 0)
}

/// Three digits and a space at byte `i`.
fn code3_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + 4 && b[i..i + 3].iter().all(u8::is_ascii_digit) && b[i + 3] == b' '
}

/// `s/^(\d{3} <).*?(>:)/$1$2/`
fn cut_bracketed(s: &str) -> Option<String> {
    if !code3(s) || s.as_bytes().get(4) != Some(&b'<') {
        return None;
    }
    let end = s[5..].find(">:")? + 5;
    Some(format!("{}{}", &s[..5], &s[end..]))
}

/// `s/^(?:\d{3} \d\.\d\.\d )(Protocol error);.*$/$1/`
fn protocol_error(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if !code3(s) || b.len() < 10 {
        return None;
    }
    let d = |i: usize| b[i].is_ascii_digit();
    (d(4)
        && b[5] == b'.'
        && d(6)
        && b[7] == b'.'
        && d(8)
        && b[9] == b' '
        && s[10..].starts_with("Protocol error;"))
    .then(|| "Protocol error".to_string())
}

/// The first run before `;` or `,` (at least one character), or None.
fn until_semicolon_or_comma(r: &str) -> Option<&str> {
    let k = memchr::memchr2(b';', b',', r.as_bytes())?;
    (k > 0).then(|| &r[..k])
}

/// `s/^(?:.*?[:;] )(?:\[[^\]]+\] )?([^;,]+)[;,].*$/$1/`
fn rcpt_reason(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    // Only where a `[:;] ` can start: memchr2 over the reason.
    for i in memchr::memchr2_iter(b':', b';', b) {
        if b.get(i + 1) == Some(&b' ') {
            let r = &s[i + 2..];
            if r.starts_with('[')
                && let Some(close) = memchr::memchr(b']', r.as_bytes())
                && close > 1
                && r.as_bytes().get(close + 1) == Some(&b' ')
                && let Some(m) = until_semicolon_or_comma(&r[close + 2..])
            {
                return Some(m);
            }
            if let Some(m) = until_semicolon_or_comma(r) {
                return Some(m);
            }
        }
    }
    None
}

/// `s/^((?:Sender|Recipient) address rejected: [^:]+):.*$/$1/`
fn address_rejected(s: &str) -> Option<&str> {
    let prefix = ["Sender address rejected: ", "Recipient address rejected: "]
        .into_iter()
        .find(|p| s.starts_with(p))?;
    let k = memchr::memchr(b':', &s.as_bytes()[prefix.len()..])?;
    (k > 0).then(|| &s[..prefix.len() + k])
}

/// `s/(?:client|Client host|Sender address) .+? blocked/blocked/`
fn blocked(s: &str) -> Option<String> {
    let b = s.as_bytes();
    // Only where an alternative can start: its first letter.
    for start in memchr::memchr3_iter(b'c', b'C', b'S', b) {
        let Some(tail) = s.get(start..) else { continue };
        for alt in ["client ", "Client host ", "Sender address "] {
            if !tail.starts_with(alt) {
                continue;
            }
            let from = start + alt.len() + 1;
            if from > s.len() || !s.is_char_boundary(from) {
                continue;
            }
            if let Some(k) = find(&s[from..], &BLOCKED) {
                let end = from + k + 8;
                return Some(format!("{}blocked{}", &s[..start], &s[end..]));
            }
        }
    }
    None
}

/// `s/^\d{3} (?:<.+>: )?([^;:]+)[;:]?.*$/$1/`
fn mail_reason(s: &str) -> Option<&str> {
    if !code3(s) {
        return None;
    }
    let r = &s[4..];
    fn run(t: &str) -> Option<&str> {
        let k = memchr::memchr2(b';', b':', t.as_bytes()).unwrap_or(t.len());
        (k > 0).then(|| &t[..k])
    }
    if r.starts_with('<') {
        // Greedy `.+`: the last ">: " first.
        let mut ends: Vec<usize> = r
            .match_indices(">: ")
            .map(|(i, _)| i)
            .filter(|&i| i >= 2)
            .collect();
        ends.reverse();
        for e in ends {
            if let Some(m) = run(&r[e + 3..]) {
                return Some(m);
            }
        }
    }
    run(r)
}

/// `s/^(?:.*[:;] )?([^,]+).*$/$1/`
fn other_reason(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    fn run(t: &str) -> Option<&str> {
        let k = memchr::memchr(b',', t.as_bytes()).unwrap_or(t.len());
        (k > 0).then(|| &t[..k])
    }
    for i in (0..b.len().saturating_sub(1)).rev() {
        if (b[i] == b':' || b[i] == b';')
            && b[i + 1] == b' '
            && let Some(m) = run(&s[i + 2..])
        {
            return Some(m);
        }
    }
    run(s)
}

/// `^.*?\d{3} (<text>);.*$` → the text, when present.
fn coded_phrase(s: &str, phrase: &Finder) -> bool {
    let len = phrase.needle().len();
    let mut from = 0;
    while let Some(k) = find(&s[from..], phrase) {
        let at = from + k;
        if at >= 4 && code3_at(s.as_bytes(), at - 4) && s[at + len..].starts_with(';') {
            return true;
        }
        from = at + 1;
    }
    false
}

/// `(?:to|from)=<([^>]+)>`: the first non-empty one of each, at once:
/// one pass over the `<`s of the text where two substring searches each
/// walked all of it.
fn to_and_from(s: &str) -> (Option<&str>, Option<&str>) {
    let b = s.as_bytes();
    let (mut to, mut from) = (None, None);
    for lt in memchr::memchr_iter(b'<', b) {
        let before = &b[..lt];
        let is_to = to.is_none() && before.ends_with(b"to=");
        let is_from = from.is_none() && before.ends_with(b"from=");
        if !(is_to || is_from) {
            continue;
        }
        let v = lt + 1;
        if let Some(e) = memchr::memchr(b'>', &b[v..])
            && e > 0
        {
            let value = Some(&s[v..v + e]);
            if is_to {
                to = value;
            } else {
                from = value;
            }
            if to.is_some() && from.is_some() {
                break;
            }
        }
    }
    (to, from)
}

/// `\d{3} <([^>]+)>: User unknown `
fn user_unknown(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(k) = find(&s[from..], &USER_UNKNOWN) {
        let gt = from + k;
        let lo = s[..gt].rfind('>').map_or(0, |p| p + 1);
        for lt in lo..gt {
            if b[lt] == b'<' && lt >= 4 && gt > lt + 1 && code3_at(b, lt - 4) {
                return Some(&s[lt + 1..gt]);
            }
        }
        from = gt + 1;
    }
    None
}

/// `to=<(.*?)(?:[, ]|$)`
fn to_open(s: &str) -> Option<&str> {
    let v = find(s, &TO_OPEN)? + 4;
    let e = memchr::memchr2(b',', b' ', &s.as_bytes()[v..]).map_or(s.len(), |k| v + k);
    Some(&s[v..e])
}

/// `^.+? from (\S+?):.*$`
fn pipelining_source(s: &str) -> Option<&str> {
    let mut from = 1;
    while from <= s.len() {
        let k = s.get(from..)?.find(" from ")?;
        let v = from + k + 6;
        let run_end = s[v..].find(char::is_whitespace).map_or(s.len(), |e| v + e);
        if let Some(c) = s[v..run_end].get(1..).and_then(|t| t.find(':')) {
            return Some(&s[v..v + 1 + c]);
        }
        from = from + k + 1;
    }
    None
}

impl Default for Rules {
    fn default() -> Self {
        Self::new()
    }
}

impl Rules {
    pub fn new() -> Rules {
        Rules { _private: () }
    }

    /// A reject-like line of smtpd or postscreen (`line` from the syslog
    /// tag on), by byte scans.
    pub fn reject(&self, line: &str, verbose: bool, add_from: bool) -> Reject {
        let mut data = String::new();
        let (stage, reason) = self.reject_parts(line, verbose, add_from, &mut data);
        Reject {
            stage: stage.to_string(),
            reason: reason.into_owned(),
            data,
        }
    }

    /// [`Rules::reject`] without copies: the stage and (mostly) the
    /// reason are slices of `line`, the data is written to `data`. Rejects
    /// can be a fifth of a log, and the copies were a tenth of their cost.
    pub fn reject_parts<'a>(
        &self,
        line: &'a str,
        verbose: bool,
        add_from: bool,
        data: &mut String,
    ) -> (&'a str, Cow<'a, str>) {
        let (stage, client, rest) = split_reject(line).unwrap_or(("", "", ""));
        let mut reason = Cow::Borrowed(rest);
        if !verbose {
            // A step either cuts the reason to a part of itself (kept as a
            // slice, or cut in place) or rewrites it.
            let cut = |r: &mut Cow<'a, str>, f: fn(&str) -> Option<&str>| {
                let Some(m) = f(r) else { return };
                let a = m.as_ptr() as usize - r.as_ptr() as usize;
                let b = a + m.len();
                match r {
                    Cow::Borrowed(s) => *s = &s[a..b],
                    Cow::Owned(s) => {
                        s.truncate(b);
                        s.drain(..a);
                    }
                }
            };
            let rewrite = |r: &mut Cow<'a, str>, f: fn(&str) -> Option<String>| {
                if let Some(v) = f(r) {
                    *r = Cow::Owned(v);
                }
            };
            if matches!(stage, "RCPT" | "DATA" | "CONNECT") {
                rewrite(&mut reason, cut_bracketed);
                rewrite(&mut reason, protocol_error);
                cut(&mut reason, rcpt_reason);
                cut(&mut reason, address_rejected);
                rewrite(&mut reason, blocked);
            } else if stage == "MAIL" {
                cut(&mut reason, mail_reason);
            } else {
                cut(&mut reason, other_reason);
            }
        }
        let (to, from) = to_and_from(rest);
        let to = to
            .or_else(|| user_unknown(rest))
            .or_else(|| to_open(rest))
            .unwrap_or("<>");
        let from = from.unwrap_or("<>");
        data.clear();
        let with_from = |d: &mut String| {
            if add_from {
                d.push_str("  (");
                d.push_str(from);
                d.push(')');
            }
        };
        const PIPELINING: &str = "Improper use of SMTP command pipelining";
        const SIZE: &str = "Message size exceeds fixed limit";
        // Each coded phrase ends in `;`, which the short reasons (cut at
        // the first `;` or `,`) seldom hold: one memchr spares four
        // substring searches.
        let phrased = memchr::memchr(b';', reason.as_bytes()).is_some();
        if reason.starts_with("Sender address rejected:") {
            data.push_str(from);
        } else if reason.starts_with("Recipient address rejected:")
            || reason == "User unknown"
            || reason.starts_with("User unknown ")
        {
            data.push_str(to);
            with_from(data);
        } else if phrased && coded_phrase(&reason, &PIPELINING_PHRASE) {
            reason = Cow::Borrowed(PIPELINING);
            data.push_str(pipelining_source(line).unwrap_or(""));
        } else {
            if !phrased {
                // No `;`: none of the coded phrases below.
            } else if coded_phrase(&reason, &SIZE_PHRASE) {
                reason = Cow::Borrowed(SIZE);
            } else if coded_phrase(&reason, &CONFIG_ERROR_PHRASE) {
                reason = Cow::Borrowed("(Local) Server configuration error");
            } else if coded_phrase(&reason, &CONFIG_PROBLEM_PHRASE) {
                reason = Cow::Borrowed("(Local) Server configuration problem");
            }
            crate::domain::host_domain(client, data);
            with_from(data);
        }
        (stage, reason)
    }

    /// [`Rules::reject`] by pflogsumm's regular expressions, as written:
    /// the oracle the byte scans are tested against.
    #[doc(hidden)]
    pub fn reject_by_patterns(&self, line: &str, verbose: bool, add_from: bool) -> Reject {
        let (stage, client, rest) = split_reject(line).unwrap_or(("", "", ""));
        let mut reason = rest.to_string();
        if !verbose {
            if matches!(stage, "RCPT" | "DATA" | "CONNECT") {
                reason = RCPT_ADDR_RE.replace(&reason, "$1$2").into_owned();
                reason = RCPT_PROTOCOL_RE.replace(&reason, "$1").into_owned();
                reason = RCPT_REASON_RE.replace(&reason, "$1").into_owned();
                reason = RCPT_ADDR_REJECTED_RE.replace(&reason, "$1").into_owned();
                reason = RCPT_BLOCKED_RE.replace(&reason, "blocked").into_owned();
            } else if stage == "MAIL" {
                reason = MAIL_REASON_RE.replace(&reason, "$1").into_owned();
            } else {
                reason = OTHER_REASON_RE.replace(&reason, "$1").into_owned();
            }
        }
        let to = TO_FULL_RE
            .captures(rest)
            .or_else(|| TO_UNKNOWN_RE.captures(rest))
            .or_else(|| TO_OPEN_RE.captures(rest))
            .and_then(|c| c.get(1))
            .map_or("<>", |m| m.as_str());
        let from = FROM_FULL_RE
            .captures(rest)
            .and_then(|c| c.get(1))
            .map_or("<>", |m| m.as_str());
        let mut domain = String::new();
        crate::domain::host_domain(client, &mut domain);
        let with_from = |mut d: String| {
            if add_from {
                d.push_str("  (");
                d.push_str(from);
                d.push(')');
            }
            d
        };
        let data = if reason.starts_with("Sender address rejected:") {
            from.to_string()
        } else if reason.starts_with("Recipient address rejected:")
            || reason == "User unknown"
            || reason.starts_with("User unknown ")
        {
            let mut d = to.to_string();
            if add_from {
                d.push_str("  (");
                d.push_str(from);
                d.push(')');
            }
            d
        } else if PIPELINING_RE.is_match(&reason) {
            reason = PIPELINING_RE.replace(&reason, "$1").into_owned();
            PIPELINING_SRC_RE
                .captures(line)
                .and_then(|c| c.get(1))
                .map_or(String::new(), |m| m.as_str().to_string())
        } else if SIZE_LIMIT_RE.is_match(&reason) {
            reason = SIZE_LIMIT_RE.replace(&reason, "$1").into_owned();
            with_from(domain)
        } else if LOCAL_CONFIG_RE.is_match(&reason) {
            reason = LOCAL_CONFIG_RE.replace(&reason, "(Local) $1").into_owned();
            with_from(domain)
        } else {
            with_from(domain)
        };
        Reject {
            stage: stage.to_string(),
            reason,
            data,
        }
    }

    /// A cleanup header/body check's text after "header "/"body ".
    pub fn cleanup_text(&self, rest: &str, verbose: bool) -> String {
        let s = if verbose {
            rest.to_string()
        } else {
            CLEANUP_FROM_RE.replace(rest, "").into_owned()
        };
        trim(&s, 64, verbose)
    }

    /// The reason of a deferral (the text in the parentheses of
    /// `status=deferred (…)`).
    pub fn deferral(&self, text: &str, verbose: bool) -> String {
        if verbose {
            return text.to_string();
        }
        let s = trim_said(text, 65);
        let s = strip_code(&s);
        s.strip_prefix("connect to ").unwrap_or(s).to_string()
    }

    pub fn bounce(&self, text: &str, verbose: bool) -> String {
        if verbose {
            return text.to_string();
        }
        strip_code(&trim_said(text, 66)).to_string()
    }

    /// An smtp client's connection failure: (reason lower-cased, host).
    pub fn smtp_failure(&self, msg: &str) -> Option<(String, String)> {
        let c = SMTP_CONNECT_ADDRESS_RE
            .captures(msg)
            .or_else(|| SMTP_CONNECT_PORT_RE.captures(msg))?;
        Some((c[2].to_lowercase(), c[1].to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first non-empty `key<…>` by substring search, as before
    /// [`to_and_from`]: its oracle.
    fn bracketed_after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
        let mut from = 0;
        while let Some(k) = s[from..].find(key) {
            let v = from + k + key.len();
            if let Some(e) = s[v..].find('>')
                && e > 0
            {
                return Some(&s[v..v + e]);
            }
            from = v;
        }
        None
    }

    #[test]
    fn to_and_from_equal_two_searches() {
        for s in [
            "550 x; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
            "550 x; from=<> to=<> helo=<h> from=<e@f> to=<g@h>",
            "orig_to=<o@p> to=<q@r>, xfrom=<s@t>",
            "to=<unclosed from=<x>",
            "to=<",
            "from=<<a>> to=<<b>",
            "no addresses at all",
            "to=<>to=<a> from=<>>",
        ] {
            assert_eq!(
                to_and_from(s),
                (bracketed_after(s, "to=<"), bracketed_after(s, "from=<")),
                "{s}"
            );
        }
    }

    #[test]
    fn rcpt_rejects_group_like_pflogsumm() {
        let r = Rules::new();
        let line = "postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.236]: 554 5.7.1 <dom.tld>: Helo command rejected: Access denied; from=<ADMINISTRATOR@dom.tld> to=<lp@dom.tld> proto=ESMTP helo=<dom.tld>";
        let j = r.reject(line, false, false);
        assert_eq!(
            (j.stage.as_str(), j.reason.as_str(), j.data.as_str()),
            (
                "RCPT",
                "Helo command rejected: Access denied",
                "192.0.2.236"
            )
        );
        let line = "postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 550 5.1.1 <sales@server.com>: Recipient address rejected: User unknown in local recipient table; from=<a@b> to=<sales@server.com> proto=ESMTP helo=<m>";
        let j = r.reject(line, false, true);
        assert_eq!(
            j.reason,
            "Recipient address rejected: User unknown in local recipient table"
        );
        assert_eq!(j.data, "sales@server.com  (a@b)");
        let line = "postfix/smtpd[1]: NOQUEUE: reject: RCPT from badguy.example.com[93.184.216.34]: 454 4.7.1 Service unavailable; Client host [93.184.216.34] blocked using rbl.example.com; http://x; from=<s@e> to=<g@e> proto=ESMTP helo=<b>";
        assert_eq!(
            r.reject(line, false, false).reason,
            "blocked using rbl.example.com"
        );
        let v = r.reject(line, true, false);
        assert!(
            v.reason
                .starts_with("454 4.7.1 Service unavailable; Client host")
        );
    }

    #[test]
    fn reject_split_equals_the_pattern() {
        let pattern =
            re(r"^(?:.* )?\b(?:reject(?:_warning)?|hold|discard): (\S+) from (\S+?): (.*)$");
        let lines = [
            "postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.116]: 504 5.5.2 <W>: Helo command rejected; from=<a@b>",
            "postfix/postscreen[1]: NOQUEUE: reject: RCPT from [216.245.194.173]:60591: 550 5.7.1 Service unavailable; client [216.245.194.173] blocked",
            "postfix/smtpd[1]: reject: hold: X from y: z reject: DATA from a[1.2.3.4]: 550 no",
            "postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[1.2.3.4] x: 550 no",
            "postfix/smtpd[1]: NOQUEUE: reject: RCPT from : 550",
            "postfix/smtpd[1]: NOQUEUE: reject_warning: MAIL from a:b[1.2.3.4]: 450 t: u",
            "postfix/smtpd[1]: xreject: RCPT from a[1.2.3.4]: 550 no",
            "reject: RCPT from a[1.2.3.4]: 550 at start",
            "postfix/smtpd[1]: NOQUEUE: discard: CONNECT from a[1.2.3.4]: ",
            "postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[1.2.3.4]:",
            "postfix/smtpd[1]: NOQUEUE: reject:  RCPT from a[1.2.3.4]: 550",
        ];
        for l in lines {
            let want = pattern.captures(l).map(|c| {
                (
                    c.get(1).unwrap().as_str(),
                    c.get(2).unwrap().as_str(),
                    c.get(3).unwrap().as_str(),
                )
            });
            assert_eq!(split_reject(l), want, "{l}");
        }
    }

    #[test]
    fn said_trimming() {
        assert_eq!(
            Rules::new().deferral(
                "connect to mx.example.com[10.0.0.4]:25: Connection timed out",
                false
            ),
            "mx.example.com[10.0.0.4]:25: Connection timed out"
        );
        let long = "host mx.x.org[1.2.3.4] said: 550 5.1.1 <someone@x.org>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)";
        let b = Rules::new().bounce(long, false);
        assert!(b.chars().count() <= 66, "{b}");
    }
}
