//! One log line split into its time stamp, host, process tag and message.
//!
//! Filters match the message only, after the syslog prefix has been taken
//! apart here once, by hand: it is the part every line has, and doing it
//! without a regex is most of why the filters are fast. Formats read: BSD
//! syslog (`Mmm dd hh:mm:ss host tag[pid]: msg`, with or without host,
//! with a `<PRI>`), ISO 8601 stamps (`2015-04-16T18:02:50.32+00:00`,
//! `2013-08-11 03:56:40`), RFC 5424 (`<38>1 TS HOST APP PROCID MSGID SD
//! MSG`), daemontools' TAI64N (`@4000…`), and journal-style lines with no
//! time (`host sshd[1]: msg`).

/// A time stamp as the line wrote it. Syslog lines carry no year and no
/// zone: those stay `None`, and the caller decides (the jails use the
/// time a line was read, see `follow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTime {
    pub year: Option<i32>,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Minutes east of UTC, when the stamp says.
    pub offset_minutes: Option<i32>,
}

impl std::fmt::Display for LogTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(y) = self.year {
            write!(f, "{y:04}-")?;
        }
        write!(
            f,
            "{:02}-{:02}T{:02}:{:02}:{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )?;
        match self.offset_minutes {
            Some(0) => f.write_str("Z"),
            Some(m) => {
                let sign = if m < 0 { '-' } else { '+' };
                write!(f, "{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
            }
            None => Ok(()),
        }
    }
}

/// A log line taken apart. Every field borrows from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub time: Option<LogTime>,
    /// The syslog host name; empty when the line has none.
    pub host: &'a str,
    /// The process name of the tag (`sshd`, `postfix/smtpd`); empty when
    /// the line has no tag we recognise.
    pub daemon: &'a str,
    /// The pid of the tag (`sshd[123]`), as text.
    pub pid: Option<&'a str>,
    /// The text after the tag (`Failed password for …`); the whole rest
    /// when there is no tag.
    pub msg: &'a str,
    /// Everything after the time stamp: what fail2ban's own `failregex`
    /// are matched against (their `%(__prefix_line)s` reads host and tag).
    pub rest: &'a str,
    /// The whole line (without its line end).
    pub raw: &'a str,
}

/// Takes a line apart. Never fails: a line without any prefix we know is
/// all message.
pub fn parse(line: &str) -> LogLine<'_> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (time, rest) = parse_time(line);
    let rest = rest.trim_start_matches(' ');
    let (host, daemon, pid, msg) = split_tag(rest);
    LogLine {
        time,
        host,
        daemon,
        pid,
        msg,
        rest,
        raw: line,
    }
}

/// The time stamp at the start of the line and what follows it. RFC 5424
/// lines are handled whole here: their header is not syslog's.
fn parse_time(line: &str) -> (Option<LogTime>, &str) {
    let mut s = line;
    // <PRI>, then either RFC 5424 ("1 " after it) or BSD syslog.
    if s.starts_with('<')
        && let Some(end) = memchr::memchr(b'>', &s.as_bytes()[..s.len().min(6)])
        && s.as_bytes()[1..end].iter().all(u8::is_ascii_digit)
    {
        s = &s[end + 1..];
        if let Some(after) = s.strip_prefix("1 ")
            && let Some((t, rest)) = iso(after)
        {
            // `HOST APP PROCID MSGID SD MSG`: `split_tag` reads it.
            return (Some(t), rest);
        }
    }
    if let Some(tai) = s.strip_prefix('@')
        && tai.len() >= 24
        && tai.as_bytes()[..24].iter().all(u8::is_ascii_hexdigit)
    {
        return (tai64n(&tai[..24]), &tai[24..]);
    }
    if let Some((t, rest)) = bsd(s) {
        return (Some(t), rest);
    }
    if let Some((t, rest)) = iso(s) {
        return (Some(t), rest);
    }
    (None, s)
}

fn two(b: &[u8]) -> Option<u8> {
    if b.len() == 2 && b[0].is_ascii_digit() && b[1].is_ascii_digit() {
        Some((b[0] - b'0') * 10 + (b[1] - b'0'))
    } else {
        None
    }
}

/// `Mmm dd hh:mm:ss` (day may be `d` or ` d`), optional `.fraction`.
fn bsd(s: &str) -> Option<(LogTime, &str)> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() < 14 || b[3] != b' ' {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[..3])? as u8 + 1;
    let mut i = 4;
    if b[i] == b' ' {
        i += 1;
    }
    let day_start = i;
    while i < b.len() && b[i].is_ascii_digit() && i - day_start < 2 {
        i += 1;
    }
    let day: u8 = s[day_start..i].parse().ok()?;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let (hour, minute, second, end) = clock(b, i)?;
    Some((
        LogTime {
            year: None,
            month,
            day,
            hour,
            minute,
            second,
            offset_minutes: None,
        },
        &s[end..],
    ))
}

/// `hh:mm:ss` at `i`, then an optional `.fraction` or `,fraction`.
fn clock(b: &[u8], i: usize) -> Option<(u8, u8, u8, usize)> {
    if b.len() < i + 8 || b[i + 2] != b':' || b[i + 5] != b':' {
        return None;
    }
    let hour = two(&b[i..i + 2])?;
    let minute = two(&b[i + 3..i + 5])?;
    let second = two(&b[i + 6..i + 8])?;
    let mut end = i + 8;
    if end < b.len() && (b[end] == b'.' || b[end] == b',') {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    Some((hour, minute, second, end))
}

/// `YYYY-MM-DD[T ]hh:mm:ss[.f][Z|±hh:mm]`.
fn iso(s: &str) -> Option<(LogTime, &str)> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let year: i32 = s.get(..4)?.parse().ok()?;
    let month = two(&b[5..7])?;
    let day = two(&b[8..10])?;
    let (hour, minute, second, mut end) = clock(b, 11)?;
    let mut offset_minutes = None;
    if b.get(end) == Some(&b'Z') {
        offset_minutes = Some(0);
        end += 1;
    } else if matches!(b.get(end), Some(b'+' | b'-')) && b.len() >= end + 6 && b[end + 3] == b':' {
        let h = i32::from(two(&b[end + 1..end + 3])?);
        let m = i32::from(two(&b[end + 4..end + 6])?);
        let sign = if b[end] == b'-' { -1 } else { 1 };
        offset_minutes = Some(sign * (h * 60 + m));
        end += 6;
    }
    Some((
        LogTime {
            year: Some(year),
            month,
            day,
            hour,
            minute,
            second,
            offset_minutes,
        },
        &s[end..],
    ))
}

/// daemontools' TAI64N label (24 hex digits after `@`), read as UTC.
fn tai64n(hex: &str) -> Option<LogTime> {
    let secs = u64::from_str_radix(&hex[..16], 16).ok()?;
    // TAI64 labels are 2^62 + seconds; multilog writes the system clock's
    // seconds there, so no leap-second correction.
    let unix = secs.checked_sub(1u64 << 62)?;
    Some(from_unix(unix as i64, 0))
}

/// Civil time of a Unix time at an offset (days-from-civil inverse).
pub fn from_unix(unix: i64, offset_minutes: i32) -> LogTime {
    let t = unix + i64::from(offset_minutes) * 60;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    LogTime {
        year: Some(year),
        month,
        day,
        hour: (secs / 3600) as u8,
        minute: (secs % 3600 / 60) as u8,
        second: (secs % 60) as u8,
        offset_minutes: Some(offset_minutes),
    }
}

/// Splits `host tag: msg`, `tag: msg`, `[tag]: msg`, `[tag] msg`, and
/// RFC 5424's `HOST APP PROCID MSGID SD MSG`.
fn split_tag(rest: &str) -> (&str, &str, Option<&str>, &str) {
    let none = ("", "", None, rest);
    if rest.is_empty() {
        return none;
    }
    if let Some(inner) = rest.strip_prefix('[') {
        // `[sshd]: msg` or `[sshd] msg` (no host, no pid).
        if let Some(close) = inner.find(']') {
            let daemon = &inner[..close];
            if !daemon.is_empty() && !daemon.contains(' ') {
                let after = &inner[close + 1..];
                let msg = after
                    .strip_prefix(':')
                    .unwrap_or(after)
                    .trim_start_matches(' ');
                return ("", daemon, None, msg);
            }
        }
        return none;
    }
    let (first, after_first) = token(rest);
    if let Some((daemon, pid)) = tag(first) {
        return ("", daemon, pid, after_first);
    }
    // `HOST tag: msg`, or RFC 5424 `HOST APP PROCID MSGID SD MSG`.
    let (second, after_second) = token(after_first);
    if let Some((daemon, pid)) = tag(second) {
        return (first, daemon, pid, after_second);
    }
    if let Some(sd) = rfc5424_tail(after_second) {
        let (procid, after_procid) = token(after_second);
        let pid = (procid != "-").then_some(procid);
        let _ = after_procid;
        return (first, second, pid, sd);
    }
    if let Some(inner) = second.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        // `host [sshd] msg`
        return (first, inner, None, after_second);
    }
    (first, "", None, rest)
}

/// After RFC 5424's APP: `PROCID MSGID SD MSG`; the message, if the
/// shape fits.
fn rfc5424_tail(s: &str) -> Option<&str> {
    let (procid, s) = token(s);
    let (msgid, s) = token(s);
    if procid.is_empty() || msgid.is_empty() || procid.ends_with(':') {
        return None;
    }
    if let Some(msg) = s.strip_prefix("- ") {
        return Some(msg);
    }
    if s == "-" {
        return Some("");
    }
    // Structured data: one or more [id key="value"…], quotes may hold
    // `\]` and `]`.
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let mut i = 0;
    while i < b.len() && b[i] == b'[' {
        let mut in_quotes = false;
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        i += 1;
    }
    Some(s[i..].trim_start_matches(' '))
}

/// The next space-separated token and the text after its space.
fn token(s: &str) -> (&str, &str) {
    match memchr::memchr(b' ', s.as_bytes()) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// `name[pid]:`, `name(id):` or `name:` → name and pid.
fn tag(t: &str) -> Option<(&str, Option<&str>)> {
    let t = t.strip_suffix(':')?;
    if t.is_empty() {
        return None;
    }
    if let Some(open) = t.find('[')
        && let Some(pid) = t[open + 1..].strip_suffix(']')
    {
        return Some((&t[..open], Some(pid)));
    }
    if let Some(open) = t.find('(') {
        // dovecot's `auth-worker(22401):`; its id is not a pid we key on.
        return Some((&t[..open], None));
    }
    if t.contains(['[', ']']) {
        return None;
    }
    Some((t, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsd_syslog_with_host_and_pid() {
        let l = parse("Feb 25 14:34:10 belka sshd[31602]: Failed password for x");
        assert_eq!(l.host, "belka");
        assert_eq!(l.daemon, "sshd");
        assert_eq!(l.pid, Some("31602"));
        assert_eq!(l.msg, "Failed password for x");
        let t = l.time.unwrap();
        assert_eq!(
            (t.month, t.day, t.hour, t.minute, t.second),
            (2, 25, 14, 34, 10)
        );
    }

    #[test]
    fn no_host_single_digit_day_and_bracket_tags() {
        let l = parse("Nov 23 21:50:19 sshd[8148]: Disconnecting: x");
        assert_eq!((l.host, l.daemon, l.pid), ("", "sshd", Some("8148")));
        let l = parse("Feb 7 16:01:07 linux-m899 sshd[5106]: User root");
        assert_eq!(
            (l.host, l.daemon, l.msg),
            ("linux-m899", "sshd", "User root")
        );
        let l = parse("Jun 25 23:53:34 [sshd] User root from 1.2.3.4");
        assert_eq!((l.daemon, l.msg), ("sshd", "User root from 1.2.3.4"));
        let l = parse("Mar  3 00:17:22 [sshd]: User root");
        assert_eq!((l.daemon, l.msg), ("sshd", "User root"));
    }

    #[test]
    fn iso_rfc5424_tai64n_and_journal() {
        let l = parse("2015-04-16T18:02:50.321974+00:00 host sshd[2716]: pam");
        assert_eq!(l.time.unwrap().offset_minutes, Some(0));
        assert_eq!((l.daemon, l.msg), ("sshd", "pam"));
        let l = parse(
            "<38>1 2019-07-08T17:40:17.954167-04:00 h.example.com sshd 55555 - [t a=\"[b]\"][x@1 y=\"]\"] Failed unknown",
        );
        assert_eq!(
            (l.host, l.daemon, l.pid, l.msg),
            ("h.example.com", "sshd", Some("55555"), "Failed unknown")
        );
        assert_eq!(l.time.unwrap().offset_minutes, Some(-240));
        let l = parse("@400000004c91b044077a9e94 imap-login: Info: Aborted");
        let t = l.time.unwrap();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute),
            (Some(2010), 9, 16, 5, 51)
        );
        assert_eq!((l.daemon, l.msg), ("imap-login", "Info: Aborted"));
        let l = parse("srv sshd[13709]: error: PAM");
        assert_eq!(
            (l.time, l.host, l.daemon, l.msg),
            (None, "srv", "sshd", "error: PAM")
        );
        let l = parse("2013-08-11 03:56:40 auth-worker(default): Info: pam(u,1.2.3.4): x");
        assert_eq!(
            (l.daemon, l.msg),
            ("auth-worker", "Info: pam(u,1.2.3.4): x")
        );
    }

    #[test]
    fn garbage_is_all_message() {
        for s in [
            "",
            "<",
            "<1>1 ",
            "@4000",
            "Jan",
            "Jan 99 xx",
            "[",
            "[]",
            "x y z",
            "\u{fffd}\u{fffd}",
        ] {
            let l = parse(s);
            assert!(l.msg.len() <= s.len());
        }
    }
}
