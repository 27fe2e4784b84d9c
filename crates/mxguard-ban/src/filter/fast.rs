//! Hand-written readings of the busiest built-in rules.
//!
//! WHY: on a line that matches, the regex engine's capture search (a
//! bounded backtracker over the whole message, through `<HOST>`'s large
//! IPv6 automaton) was most of a filter's CPU time. A shortcut reads the
//! same grammar by hand for the shapes real logs have and declines
//! ([`Fast::Unsure`]) for anything else, so the regex stays the
//! definition: a shortcut answers only where the answer is forced (the
//! reasoning is written at each one), and debug builds — every test —
//! check each answer against the regex (`Rules::first`).

use regex::Regex;

use crate::pattern::Captured;

/// A shortcut's answer about one line.
#[derive(Debug)]
pub(crate) enum Fast<'t> {
    /// The rule's regex matches, with these captures.
    Match(Captured<'t>),
    /// The rule's regex does not match.
    NoMatch,
    /// Not a shape the shortcut reads: ask the regex.
    Unsure,
}

/// A rule's shortcut: the message in, the answer out.
pub(crate) type FastFn = for<'t> fn(&'t str) -> Fast<'t>;

fn dns_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-'
}

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The length of what `<HOST>` reads at the start of `t`, when its
/// reading can only be the whole run of host-name characters there.
///
/// `<HOST>` is `MAPPED? (IP6 | DNS)`. MAPPED and IP6 both need a `:`
/// after at most four hex digits at the start: when that is not the
/// case only DNS is left, whose longest reading is the whole run `H` of
/// `[A-Za-z0-9_.-]` (when it ends in a word character). Shorter readings
/// end before another host-name character, so a rule whose text after
/// the host cannot start with one (a space, `:`, `]`, `\s`, the end) can
/// only read `H`. `None`: some other reading is possible, ask the regex.
pub(crate) fn plain_host(t: &str) -> Option<usize> {
    let b = t.as_bytes();
    let hex = b.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if hex <= 4 && b.get(hex) == Some(&b':') {
        return None;
    }
    let n = b.iter().take_while(|&&c| dns_char(c)).count();
    if n == 0 || !word_char(b[0]) || !word_char(b[n - 1]) {
        return None;
    }
    Some(n)
}

/// `<HOST>` at the start of `t` followed by what `tail` (anchored at `^`)
/// accepts. `tail` must not be able to match text starting with a
/// host-name character (see [`plain_host`]): then the host is forced and
/// the answer is exact either way.
pub(crate) fn host_then<'t>(t: &'t str, tail: &Regex) -> Fast<'t> {
    let Some(n) = plain_host(t) else {
        return Fast::Unsure;
    };
    if tail.is_match(&t[n..]) {
        Fast::Match(Captured {
            host: Some(&t[..n]),
            user: None,
            fields: Vec::new(),
        })
    } else {
        Fast::NoMatch
    }
}

/// The position of `needle` in `hay` when it occurs there exactly once
/// (overlaps counted): a lazy `.*?` before it can then end only there.
pub(crate) fn only(hay: &str, needle: &str) -> Option<usize> {
    let first = hay.find(needle)?;
    (hay.rfind(needle) == Some(first)).then_some(first)
}

/// Compiles a shortcut's tail: ours and tested, a failure is a bug.
pub(crate) fn tail(src: &str) -> Regex {
    Regex::new(src).unwrap_or_else(|e| panic!("shortcut tail {src}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_host_reads_only_forced_hosts() {
        assert_eq!(plain_host("192.0.2.1 port 22"), Some(9));
        assert_eq!(plain_host("mail.example.com]"), Some(16));
        assert_eq!(plain_host("192.0.2.1: 11: bye"), Some(9));
        // IP6 or a mapped prefix could read these: declined.
        assert_eq!(plain_host("::ffff:192.0.2.1"), None);
        assert_eq!(plain_host("2001:db8::1 port 2"), None);
        assert_eq!(plain_host("abcd:1"), None);
        // Ends in `.` or `-`, or starts with one: the longest reading is
        // not the run.
        assert_eq!(plain_host("host. x"), None);
        assert_eq!(plain_host("-x"), None);
        assert_eq!(plain_host(""), None);
        assert_eq!(plain_host(" x"), None);
        assert_eq!(only("a from b", " from "), Some(1));
        assert_eq!(only("a from b from c", " from "), None);
        assert_eq!(only("a from from c", " from "), None);
    }
}
