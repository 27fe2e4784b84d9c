//! fail2ban's regex vocabulary compiled to Rust regexes.
//!
//! `failregex` and `ignoreregex` use Python's `re` with tags: `<HOST>`,
//! `<ADDR>`, `<IP4>`, `<IP6>`, `<DNS>`, `<F-USER>…</F-USER>` and other
//! `<F-NAME>…</F-NAME>` groups. The `regex` crate has no backtracking, so
//! look-around, back-references, atomic groups and possessive quantifiers
//! are refused with a message saying so (`UNSUPPORTED`); everything else
//! Python and Rust share is passed through.
//!
//! Each compiled pattern carries a literal every match must contain, when
//! one can be read off the pattern: checked with `memmem` first, it skips
//! the regex for nearly every line (most log lines fail most filters).

use regex::{Regex, RegexBuilder};

use crate::host::{DNS, IP4, IP6, MAPPED};

/// Python regex features the `regex` crate lacks, as (syntax, name).
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("(?=", "look-ahead"),
    ("(?!", "negative look-ahead"),
    ("(?<=", "look-behind"),
    ("(?<!", "negative look-behind"),
    ("(?P=", "named back-reference"),
    ("(?>", "atomic group"),
    ("(?(", "conditional group"),
    ("*+", "possessive quantifier"),
    ("++", "possessive quantifier"),
    ("?+", "possessive quantifier"),
    ("<SKIPLINES>", "multi-line buffering (<SKIPLINES>)"),
];

/// A compiled `failregex`/`ignoreregex`.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written, for `ban test` and errors.
    pub source: String,
    pub regex: Regex,
    /// A literal every match contains (case-sensitive patterns only).
    literal: Option<memchr::memmem::Finder<'static>>,
    /// For a pattern anchored at `^` by a literal: the text must start
    /// with it (checked before anything else: no scan at all).
    prefix: Option<String>,
    /// Names of the host groups (`host`, `host_1`…), in order.
    host_groups: Vec<String>,
    pub has_user: bool,
    /// Group indices of the host groups, the user and the other `<F-…>`
    /// fields (with their names), resolved once: no lookup by name per
    /// match.
    host_idx: Vec<usize>,
    user_idx: Option<usize>,
    field_idx: Vec<(usize, String)>,
}

/// A pattern's error: what is wrong and, for unsupported syntax, which
/// feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

/// One match: the host text and the user, when captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured<'t> {
    pub host: Option<&'t str>,
    pub user: Option<&'t str>,
    /// Named `<F-…>` groups other than the user (e.g. `mlfid`, `nofail`).
    pub fields: Vec<(&'t str, &'t str)>,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, PatternError> {
        for (syntax, name) in UNSUPPORTED {
            if source.contains(syntax) && !escaped_at(source, syntax) {
                return Err(PatternError(format!(
                    "uses a {name} (`{syntax}`), which mxguard's regex engine does not support: \
                     rewrite the expression without it"
                )));
            }
        }
        let (expanded, host_groups, has_user) = expand(source)?;
        let regex = RegexBuilder::new(&expanded)
            .size_limit(8 << 20)
            .build()
            .map_err(|e| PatternError(format!("is not a valid regex: {e}")))?;
        let literal = required_literal(source)
            .map(|lit| memchr::memmem::Finder::new(lit.as_bytes()).into_owned());
        let index = |name: &str| regex.capture_names().position(|n| n == Some(name));
        let host_idx = host_groups.iter().filter_map(|g| index(g)).collect();
        let user_idx = if has_user { index("user") } else { None };
        let field_idx = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| Some((i, n?.strip_prefix("f_")?.to_string())))
            .collect();
        Ok(Pattern {
            source: source.to_string(),
            regex,
            literal,
            prefix: anchored_prefix(source),
            host_groups,
            has_user,
            host_idx,
            user_idx,
            field_idx,
        })
    }

    /// Whether the pattern captures a host at all.
    pub fn has_host(&self) -> bool {
        !self.host_groups.is_empty()
    }

    /// Runs the pattern: `None` when it does not match.
    pub fn captures<'t>(&'t self, text: &'t str) -> Option<Captured<'t>> {
        if let Some(p) = &self.prefix
            && !text.starts_with(p.as_str())
        {
            return None;
        }
        if let Some(lit) = &self.literal
            && lit.find(text.as_bytes()).is_none()
        {
            return None;
        }
        let caps = self.regex.captures(text)?;
        let host = self
            .host_idx
            .iter()
            .find_map(|&g| caps.get(g))
            .map(|m| m.as_str());
        let user = self.user_idx.and_then(|g| caps.get(g)).map(|m| m.as_str());
        let fields = self
            .field_idx
            .iter()
            .filter_map(|(g, name)| Some((name.as_str(), caps.get(*g)?.as_str())))
            .collect();
        Some(Captured { host, user, fields })
    }

    /// Whether it matches (no captures: cheaper, for `ignoreregex`).
    pub fn is_match(&self, text: &str) -> bool {
        if let Some(p) = &self.prefix
            && !text.starts_with(p.as_str())
        {
            return false;
        }
        if let Some(lit) = &self.literal
            && lit.find(text.as_bytes()).is_none()
        {
            return false;
        }
        self.regex.is_match(text)
    }
}

fn escaped_at(source: &str, syntax: &str) -> bool {
    // `\(?=` style: every occurrence preceded by a backslash.
    source
        .match_indices(syntax)
        .all(|(i, _)| i > 0 && source.as_bytes()[i - 1] == b'\\')
}

/// Replaces the tags; returns the regex, its host group names and whether
/// it has a user group.
fn expand(source: &str) -> Result<(String, Vec<String>, bool), PatternError> {
    let mut out = String::with_capacity(source.len() * 2);
    let mut hosts = Vec::new();
    let mut has_user = false;
    let mut rest = source;
    let mut open_fields: Vec<String> = Vec::new();
    let mut in_class = false;
    while let Some(lt) = rest.find('<') {
        out.push_str(&python_to_rust_in(&rest[..lt], &mut in_class));
        let after = &rest[lt..];
        if in_class || (lt > 0 && rest.as_bytes()[lt - 1] == b'\\') {
            // `[^<>]` or `\<`: a literal.
            out.push('<');
            rest = &after[1..];
            continue;
        }
        let Some(gt) = after.find('>') else {
            out.push_str(&python_to_rust_in(after, &mut in_class));
            rest = "";
            break;
        };
        let tag = &after[1..gt];
        let mut host_group = |out: &mut String, body: &str, mapped: bool| {
            let name = if hosts.is_empty() {
                "host".to_string()
            } else {
                format!("host_{}", hosts.len())
            };
            if mapped {
                out.push_str(MAPPED);
            }
            out.push_str(&format!("(?P<{name}>{body})"));
            hosts.push(name);
        };
        match tag {
            "HOST" => host_group(&mut out, &format!("{IP6}|{DNS}"), true),
            "ADDR" => host_group(&mut out, &format!("{IP4}|{IP6}"), true),
            "IP4" => host_group(&mut out, IP4, false),
            "IP6" => host_group(&mut out, IP6, false),
            "DNS" => host_group(&mut out, DNS, false),
            "CIDR" | "SUBNET" => host_group(
                &mut out,
                &format!("(?:{IP4}|{IP6})(?:/[0-9]{{1,3}})?"),
                true,
            ),
            _ if tag.starts_with("F-") && is_field_name(&tag[2..]) => {
                let name = field_group(&tag[2..]);
                if name == "user" {
                    has_user = true;
                }
                out.push_str(&format!("(?P<{name}>"));
                open_fields.push(tag[2..].to_string());
            }
            _ if tag.starts_with("/F-") && is_field_name(&tag[3..]) => {
                if open_fields.pop().as_deref() != Some(&tag[3..]) {
                    return Err(PatternError(format!(
                        "closes <{tag}> without the matching <{}>",
                        &tag[1..]
                    )));
                }
                out.push(')');
            }
            _ => {
                // Not a tag: a literal `<` (e.g. `user=<`), or a named
                // group's `(?P<name>` which python_to_rust passes through.
                out.push_str(&python_to_rust_in(&after[..1], &mut in_class));
                rest = &after[1..];
                continue;
            }
        }
        rest = &after[gt + 1..];
    }
    out.push_str(&python_to_rust_in(rest, &mut in_class));
    if let Some(open) = open_fields.pop() {
        return Err(PatternError(format!(
            "opens <F-{open}> and never closes it"
        )));
    }
    Ok((out, hosts, has_user))
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `<F-USER>` → `user`; `<F-ALT_USER>` → `f_alt_user`; `<F-MLFID>` → `f_mlfid`.
fn field_group(name: &str) -> String {
    if name == "USER" {
        return "user".into();
    }
    format!("f_{}", name.to_ascii_lowercase().replace('-', "_"))
}

/// Python's regex syntax where Rust's differs: `\Z` → `\z`; inside a
/// character class a bare `[` (Python: literal, Rust: nested class), a
/// leading `]`, and doubled `&&`, `--`, `~~` (Rust: set operations) are
/// escaped. Classes may span the tag-split pieces, so the state is
/// carried in `in_class`.
fn python_to_rust_in(s: &str, in_class: &mut bool) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut class_start = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            match chars.get(i + 1) {
                Some('Z') => out.push_str(r"\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(*n);
                }
                None => out.push('\\'),
            }
            i += 2;
            class_start = false;
            continue;
        }
        if *in_class {
            match c {
                ']' if class_start => out.push_str(r"\]"),
                ']' => {
                    *in_class = false;
                    out.push(']');
                }
                '[' if chars.get(i + 1) == Some(&':') => out.push('['),
                '[' => out.push_str(r"\["),
                '&' | '-' | '~' if chars.get(i + 1) == Some(&c) => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            class_start = c == '^' && class_start;
            i += 1;
            continue;
        }
        if c == '[' {
            *in_class = true;
            class_start = true;
            out.push('[');
            if chars.get(i + 1) == Some(&'^') {
                out.push('^');
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The literal a `^`-anchored pattern starts with (`^Failed \S+` →
/// `Failed `), when it has one and no top-level alternation or flags.
pub fn anchored_prefix(source: &str) -> Option<String> {
    let rest = source.strip_prefix('^')?;
    if source.contains("(?i") || required_literal_alternation(source) {
        return None;
    }
    let b = rest.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let (ch, width) = match b[i] {
            b'\\' => match b.get(i + 1) {
                Some(&n) if b".[]()|?*+{}^$\\/-<>:=@ #%,'\"!&~".contains(&n) => (n, 2),
                _ => break,
            },
            c if c.is_ascii_alphanumeric() || b" :,;=_-/'\"@#%!&~".contains(&c) => (c, 1),
            _ => break,
        };
        // A quantifier after it makes this character optional.
        if matches!(b.get(i + width), Some(b'?' | b'*' | b'{')) {
            break;
        }
        out.push(ch as char);
        i += width;
    }
    (!out.is_empty()).then_some(out)
}

/// Whether the pattern has a `|` outside every group and class.
fn required_literal_alternation(source: &str) -> bool {
    let b = source.as_bytes();
    let (mut depth, mut in_class, mut i) = (0i32, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => depth -= 1,
            b'|' if !in_class && depth == 0 => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// The longest literal (≥ 4 bytes) every match must contain: read at the
/// top level of a pattern with no top-level `|`, outside groups, classes
/// and tags, dropping a character a quantifier makes optional.
pub fn required_literal(source: &str) -> Option<String> {
    if source.contains("(?i") {
        return None;
    }
    let b = source.as_bytes();
    // A top-level alternation makes every literal optional.
    let mut depth = 0i32;
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => depth += 1,
            b')' if !in_class => depth -= 1,
            b'|' if !in_class && depth == 0 => return None,
            _ => {}
        }
        i += 1;
    }
    let mut best = String::new();
    let mut run = String::new();
    let mut depth = 0i32;
    let mut in_class = false;
    let mut i = 0;
    let flush = |run: &mut String, best: &mut String| {
        if run.len() > best.len() {
            *best = run.clone();
        }
        run.clear();
    };
    while i < b.len() {
        let c = b[i];
        if in_class {
            if c == b'\\' {
                i += 1;
            } else if c == b']' {
                in_class = false;
            }
            i += 1;
            continue;
        }
        let (lit, width): (Option<u8>, usize) = match c {
            b'\\' => match b.get(i + 1) {
                Some(&n) if b".[]()|?*+{}^$\\/-<>:=@ #%,'\"!&~".contains(&n) => (Some(n), 2),
                _ => (None, 2),
            },
            b'[' => {
                in_class = true;
                (None, 1)
            }
            b'(' => {
                depth += 1;
                (None, 1)
            }
            b')' => {
                depth -= 1;
                (None, 1)
            }
            b'<' => {
                // A tag: skip it whole.
                match memchr::memchr(b'>', &b[i..]) {
                    Some(gt)
                        if b[i + 1..i + gt].iter().all(|&x| {
                            x.is_ascii_alphanumeric() || x == b'-' || x == b'_' || x == b'/'
                        }) =>
                    {
                        (None, gt + 1)
                    }
                    _ => (Some(c), 1),
                }
            }
            // A counted repetition `{m,n}`: its digits are not text.
            b'{' => (None, source[i..].find('}').map_or(1, |c| c + 1)),
            b'.' | b'^' | b'$' | b'|' | b'?' | b'*' | b'+' | b'}' => (None, 1),
            _ if c.is_ascii() => (Some(c), 1),
            _ => (None, 1),
        };
        let next = b.get(i + width).copied();
        let quantified = matches!(next, Some(b'?' | b'*' | b'{'));
        match lit {
            Some(ch) if depth == 0 && !quantified => run.push(ch as char),
            _ => flush(&mut run, &mut best),
        }
        i += width;
    }
    flush(&mut run, &mut best);
    (best.len() >= 4).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_literals() {
        let p = Pattern::new(
            r"^Failed \S+ for (?:invalid user )?<F-USER>.*?</F-USER> from <HOST>(?: port \d+)?$",
        )
        .unwrap();
        let c = p
            .captures("Failed password for root from ::ffff:1.2.3.4 port 22")
            .unwrap();
        assert_eq!(c.host, Some("1.2.3.4"));
        assert_eq!(c.user, Some("root"));
        assert!(
            p.captures("Accepted password for root from 1.2.3.4")
                .is_none()
        );
        assert_eq!(
            required_literal(r"^Failed \S+ for .* from <HOST>$").as_deref(),
            Some("Failed ")
        );
        assert_eq!(required_literal(r"a|b"), None);
        assert_eq!(
            required_literal(r"user=<F-USER>\S+</F-USER> rhost=<HOST>").as_deref(),
            Some(" rhost=")
        );
        assert_eq!(required_literal(r"abcdx?").as_deref(), Some("abcd"));
        assert_eq!(anchored_prefix(r"^Failed \S+").as_deref(), Some("Failed "));
        assert_eq!(anchored_prefix(r"^ab?c").as_deref(), Some("a"));
        assert_eq!(anchored_prefix(r"^a|b"), None);
        assert_eq!(anchored_prefix(r"^(?:x)"), None);
        assert_eq!(
            anchored_prefix(r"^SSH: Server;Ltype").as_deref(),
            Some("SSH: Server;Ltype")
        );
        assert_eq!(required_literal("\\é<x>é\\"), None);
        assert_eq!(
            required_literal(r"^[a-z\-]{3,15}\(x: unknown").as_deref(),
            Some("(x: unknown")
        );
    }

    #[test]
    fn two_hosts_and_unsupported() {
        let p = Pattern::new(r"^(?:a <ADDR>|b <HOST>)$").unwrap();
        assert_eq!(
            p.captures("b example.com").unwrap().host,
            Some("example.com")
        );
        assert_eq!(
            p.captures("a 2001:db8::1").unwrap().host,
            Some("2001:db8::1")
        );
        let e = Pattern::new(r"^(?!x)<HOST>").unwrap_err();
        assert!(e.0.contains("negative look-ahead"), "{e}");
        assert!(Pattern::new(r"<F-USER>x").is_err());
        assert!(Pattern::new(r"\Z").is_ok());
        // Python's class syntax: a bare `[`, a leading `]`, `--`.
        let p = Pattern::new(r"^x [^[]*\[<HOST>\] [][]+ [^<>]+$").unwrap();
        assert_eq!(
            p.captures("x a[192.0.2.1] ][ b").unwrap().host,
            Some("192.0.2.1")
        );
    }
}
