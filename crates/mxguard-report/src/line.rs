//! Splits one log line into timestamp, program and message, by byte scans
//! (no regex, no allocation). Three timestamp forms are read:
//! traditional syslog (`Mar 22 08:00:01`, no year), RFC 3339
//! (`2024-03-22T08:00:01.000+00:00`, rsyslog's default on Debian 12),
//! Postfix's own `maillog_file` (`Dec 07 09:34:22`, zero-padded day) and
//! high-precision syslog stamps (`Mar 22 08:00:01.123456`).

use crate::date::{Stamp, infer_year, month_of};

/// One parsed log line; the slices borrow the line.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub stamp: Stamp,
    /// The syslog tag before `[pid]`: `postfix/submission/smtpd`.
    pub program: &'a [u8],
    /// The first component of the tag: `postfix`, `postfix-secondary`.
    pub instance: &'a [u8],
    /// The last component of the tag: the daemon (`smtpd`, `qmgr`).
    pub daemon: &'a [u8],
    /// The process id, when the tag had `[pid]`.
    pub pid: Option<u32>,
    /// The text after the tag's `: `.
    pub msg: &'a [u8],
}

/// Syslog years by (month, day) for one reference time: inferring one
/// is date arithmetic, done per line it was 2% of a run, and a log spans
/// few distinct days.
pub struct Years {
    reference: Stamp,
    /// Index month * 32 + day; 0 = not yet inferred.
    by_day: [i32; 13 * 32],
}

impl Years {
    pub fn new(reference: Stamp) -> Years {
        Years {
            reference,
            by_day: [0; 13 * 32],
        }
    }

    /// The year of a syslog `month day` (1..=12, 1..=31) read at `reference`.
    #[inline]
    fn get(&mut self, reference: Stamp, month: u8, day: u8) -> i32 {
        let year = self.by_day[month as usize * 32 + day as usize];
        if year != 0 && reference == self.reference {
            return year;
        }
        self.infer(reference, month, day)
    }

    /// A day not seen yet (or a new reference): a few per log.
    #[cold]
    fn infer(&mut self, reference: Stamp, month: u8, day: u8) -> i32 {
        if reference != self.reference {
            *self = Years::new(reference);
        }
        let slot = &mut self.by_day[month as usize * 32 + day as usize];
        if *slot == 0 {
            *slot = infer_year(reference, month, day);
        }
        *slot
    }
}

/// Why a line was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No timestamp, host or tag where they belong.
    Malformed,
}

fn digits2(b: &[u8]) -> Option<u8> {
    if b.len() >= 2 && b[0].is_ascii_digit() && b[1].is_ascii_digit() {
        Some((b[0] - b'0') * 10 + (b[1] - b'0'))
    } else {
        None
    }
}

/// `HH:MM:SS` at the start of `b`.
fn clock(b: &[u8]) -> Option<(u8, u8, u8)> {
    // The eight bytes as one word (every line has a clock; byte-wise it
    // was ~50 instructions a line): the colons checked under a mask, the
    // six digits by their high nibble and by the high nibble after
    // adding 6 (which leaves 0x30..=0x39 alone and moves 0x3a..=0x3f
    // past it), then each pair's value by one multiply-add.
    const DIGITS: u64 = 0xffff_00ff_ff00_ffff;
    const COLONS: u64 = !DIGITS;
    const ZEROS: u64 = 0x3030_0030_3000_3030;
    let x = u64::from_le_bytes(*b.first_chunk::<8>()?);
    let high = x & 0xf0f0_00f0_f000_f0f0;
    if x & COLONS != 0x0000_3a00_003a_0000
        || high != ZEROS
        || (x & DIGITS).wrapping_add(0x0606_0006_0600_0606) & 0xf0f0_00f0_f000_f0f0 != ZEROS
    {
        return None;
    }
    // Digit values, colons zeroed: 10 × each pair's first plus its second
    // lands in the pair's first byte, no carry (at most 99).
    let v = (x & DIGITS) - ZEROS;
    let t = v.wrapping_mul(10).wrapping_add(v >> 8);
    let (h, m, s) = (t as u8, (t >> 24) as u8, (t >> 48) as u8);
    (h < 24 && m < 60 && s < 61).then_some((h, m, s.min(59)))
}

/// Skips `.digits` at the start of `b`.
fn skip_fraction(b: &[u8]) -> usize {
    if b.first() == Some(&b'.') {
        1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count()
    } else {
        0
    }
}

/// Parses the timestamp at the start of the line and returns it with the
/// rest after the following space. `reference` supplies the year of
/// syslog timestamps.
pub fn timestamp(line: &[u8], reference: Stamp) -> Option<(Stamp, &[u8])> {
    timestamp_with(line, reference, &mut Years::new(reference))
}

fn timestamp_with<'a>(
    line: &'a [u8],
    reference: Stamp,
    years: &mut Years,
) -> Option<(Stamp, &'a [u8])> {
    if line.len() < 16 {
        return None;
    }
    if line[0].is_ascii_digit() {
        // RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
        if line.len() < 20
            || line[4] != b'-'
            || line[7] != b'-'
            || (line[10] != b'T' && line[10] != b' ')
        {
            return None;
        }
        let year = (digits2(line)? as i32) * 100 + digits2(&line[2..])? as i32;
        let month = digits2(&line[5..])?;
        let day = digits2(&line[8..])?;
        let (hour, min, sec) = clock(&line[11..])?;
        let mut i = 19 + skip_fraction(&line[19..]);
        match line.get(i) {
            Some(b'Z') => i += 1,
            Some(b'+') | Some(b'-') => {
                let z = line.get(i + 1..i + 6)?;
                if z[2] != b':' {
                    return None;
                }
                digits2(z)?;
                digits2(&z[3..])?;
                i += 6;
            }
            _ => {}
        }
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || line.get(i) != Some(&b' ') {
            return None;
        }
        let stamp = Stamp {
            year,
            month,
            day,
            hour,
            min,
            sec,
        };
        return Some((stamp, &line[i + 1..]));
    }
    // Syslog: "Mmm dd HH:MM:SS" or "Mmm  d HH:MM:SS", optional ".frac".
    let month = month_of(&line[..3])?;
    if line[3] != b' ' {
        return None;
    }
    let mut i = 4;
    if line[i] == b' ' {
        i += 1;
    }
    let day = if line[i].is_ascii_digit() && line.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        i += 2;
        (line[i - 2] - b'0') * 10 + (line[i - 1] - b'0')
    } else if line[i].is_ascii_digit() {
        i += 1;
        line[i - 1] - b'0'
    } else {
        return None;
    };
    if line.get(i) != Some(&b' ') || !(1..=31).contains(&day) {
        return None;
    }
    let (hour, min, sec) = clock(line.get(i + 1..)?)?;
    i += 9;
    i += skip_fraction(&line[i..]);
    if line.get(i) != Some(&b' ') {
        return None;
    }
    let year = years.get(reference, month, day);
    Some((
        Stamp {
            year,
            month,
            day,
            hour,
            min,
            sec,
        },
        &line[i + 1..],
    ))
}

/// The first byte of `b` that `hit` accepts, by a plain loop: the host
/// and the tag are a few bytes long, where memchr's call and setup cost
/// more than the search. Falls back to scanning everything (a hostile
/// line) in the same loop, linear as memchr.
#[inline]
fn short_find(b: &[u8], hit: impl Fn(u8) -> bool) -> Option<usize> {
    b.iter().position(|&c| hit(c))
}

/// What a byte is to the syslog tag's scan: 0 part of it, or one of these.
const TAG_END: u8 = 1;
const TAG_SPACE: u8 = 2;
const TAG_SLASH: u8 = 3;
static TAG_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'[' as usize] = TAG_END;
    t[b':' as usize] = TAG_END;
    t[b' ' as usize] = TAG_SPACE;
    t[b'/' as usize] = TAG_SLASH;
    t
};

/// Splits "host tag[pid]: message" after the timestamp.
pub fn parse(line: &[u8], reference: Stamp) -> Result<Line<'_>, Skip> {
    parse_with(line, reference, &mut Years::new(reference))
}

/// [`parse`] with the years of syslog timestamps cached across lines.
pub fn parse_with<'a>(
    line: &'a [u8],
    reference: Stamp,
    years: &mut Years,
) -> Result<Line<'a>, Skip> {
    let (stamp, rest) = timestamp_with(line, reference, years).ok_or(Skip::Malformed)?;
    // Host: one token.
    let sp = short_find(rest, |c| c == b' ').ok_or(Skip::Malformed)?;
    if sp == 0 {
        return Err(Skip::Malformed);
    }
    let rest = &rest[sp + 1..];
    // Tag: up to '[' or ':', no space in it (a space before either is
    // a malformed line whether or not one follows), its first and last
    // '/' noted on the way: one pass where four took turns.
    // Ordinary tag bytes are passed on one table look-up each.
    let (mut first_slash, mut last_slash) = (None, None);
    let mut k = 0;
    // Nearly every tag a report reads starts so: its first slash known.
    if rest.starts_with(b"postfix/") {
        (first_slash, last_slash, k) = (Some(7), Some(7), 8);
    }
    let end = loop {
        while rest.get(k).is_some_and(|&c| TAG_BYTES[c as usize] == 0) {
            k += 1;
        }
        match rest.get(k).map(|&c| TAG_BYTES[c as usize]) {
            Some(TAG_END) => break k,
            Some(TAG_SLASH) => {
                first_slash.get_or_insert(k);
                last_slash = Some(k);
                k += 1;
            }
            _ => return Err(Skip::Malformed), // a space, or no tag end
        }
    };
    let program = &rest[..end];
    if program.is_empty() {
        return Err(Skip::Malformed);
    }
    let mut i = end;
    let mut pid = None;
    if rest[i] == b'[' {
        // One to ten digits, then ']': read as they are checked. At most
        // ten fit a u64; a pid past u32 is none, as `str::parse::<u32>`
        // has it.
        let mut n = 0u64;
        let mut k = i + 1;
        while let Some(&d) = rest.get(k).filter(|d| d.is_ascii_digit()) {
            if k - i > 10 {
                return Err(Skip::Malformed);
            }
            n = n * 10 + u64::from(d - b'0');
            k += 1;
        }
        if k == i + 1 || rest.get(k) != Some(&b']') {
            return Err(Skip::Malformed);
        }
        pid = u32::try_from(n).ok();
        i = k + 1;
    }
    if rest.get(i) != Some(&b':') {
        return Err(Skip::Malformed);
    }
    let msg = match rest.get(i + 1) {
        Some(b' ') => &rest[i + 2..],
        _ => &rest[i + 1..],
    };
    let instance = match first_slash {
        Some(s) => &program[..s],
        None => program,
    };
    let daemon = match last_slash {
        Some(s) => &program[s + 1..],
        None => program,
    };
    Ok(Line {
        stamp,
        program,
        instance,
        daemon,
        pid,
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock byte by byte, as it was read before the word-wise form.
    fn clock_bytes(b: &[u8]) -> Option<(u8, u8, u8)> {
        let w = b.first_chunk::<8>()?;
        let d = |i: usize| w[i].wrapping_sub(b'0');
        let digits = [d(0), d(1), d(3), d(4), d(6), d(7)];
        if w[2] != b':' || w[5] != b':' || digits.iter().any(|&x| x > 9) {
            return None;
        }
        let (h, m, s) = (
            digits[0] * 10 + digits[1],
            digits[2] * 10 + digits[3],
            digits[4] * 10 + digits[5],
        );
        (h < 24 && m < 60 && s < 61).then_some((h, m, s.min(59)))
    }

    #[test]
    fn clock_by_words_is_clock_by_bytes() {
        let mut n = 0;
        for h in 0..100 {
            for m in (0..100).step_by(3) {
                for s in 0..100 {
                    let t = format!("{h:02}:{m:02}:{s:02}");
                    assert_eq!(clock(t.as_bytes()), clock_bytes(t.as_bytes()), "{t}");
                    n += 1;
                }
            }
        }
        // Every byte of a few clocks replaced by every value.
        for base in [&b"08:00:01 "[..], b"23:59:60", b"00:00:00", b"19:45:09"] {
            for i in 0..8 {
                for c in 0..=255u8 {
                    let mut t = base.to_vec();
                    t[i] = c;
                    assert_eq!(clock(&t), clock_bytes(&t), "{t:?}");
                    n += 1;
                }
            }
        }
        assert_eq!(clock(b"08:00:0"), None);
        assert!(n > 300_000);
    }

    fn reference() -> Stamp {
        Stamp {
            year: 2026,
            month: 12,
            day: 7,
            ..Default::default()
        }
    }

    #[test]
    fn syslog_rfc3339_and_maillog_file() {
        let l = parse(
            b"Mar 22 08:00:05 mailhost postfix/smtp[12348]: ABC: to=<a@b>",
            reference(),
        )
        .unwrap();
        assert_eq!(
            l.stamp,
            Stamp {
                year: 2026,
                month: 3,
                day: 22,
                hour: 8,
                min: 0,
                sec: 5
            }
        );
        assert_eq!(
            (l.instance, l.daemon, l.pid),
            (&b"postfix"[..], &b"smtp"[..], Some(12348))
        );
        assert_eq!(l.msg, b"ABC: to=<a@b>");
        let l = parse(
            b"2024-03-22T08:00:01.000+00:00 mailhost postfix-secondary/submission/smtpd[1]: x",
            reference(),
        )
        .unwrap();
        assert_eq!((l.stamp.year, l.stamp.hour), (2024, 8));
        assert_eq!(
            (l.instance, l.daemon),
            (&b"postfix-secondary"[..], &b"smtpd"[..])
        );
        let l = parse(
            b"Apr  6 13:05:01.123456 mx postfix/qmgr[2]: removed",
            reference(),
        )
        .unwrap();
        assert_eq!((l.stamp.day, l.msg), (6, &b"removed"[..]));
        let l = parse(
            b"Aug 3 15:30:49 ksusha postfix/smtpd[17041]: warning: x",
            reference(),
        )
        .unwrap();
        assert_eq!(l.stamp.day, 3);
        let l = parse(
            b"2024-01-01T00:00:00Z h postfix-script: starting",
            reference(),
        )
        .unwrap();
        assert_eq!((l.daemon, l.pid), (&b"postfix-script"[..], None));
    }

    #[test]
    fn tag_parts_and_pids() {
        let l = parse(
            b"Mar 22 08:00:05 h postfix-in/submission/smtpd[4294967295]: x",
            reference(),
        )
        .unwrap();
        assert_eq!(
            (l.program, l.instance, l.daemon, l.pid, l.msg),
            (
                &b"postfix-in/submission/smtpd"[..],
                &b"postfix-in"[..],
                &b"smtpd"[..],
                Some(u32::MAX),
                &b"x"[..]
            )
        );
        // Ten digits past u32: no pid, as `str::parse::<u32>` has it.
        let l = parse(b"Mar 22 08:00:05 h postfix/qmgr[4294967296]:x", reference()).unwrap();
        assert_eq!((l.daemon, l.pid, l.msg), (&b"qmgr"[..], None, &b"x"[..]));
        let l = parse(b"Mar 22 08:00:05 h a/b: m", reference()).unwrap();
        assert_eq!((l.instance, l.daemon, l.pid), (&b"a"[..], &b"b"[..], None));
    }

    #[test]
    fn malformed() {
        for bad in [
            &b""[..],
            b"garbage",
            b"Foo 22 08:00:05 mailhost postfix/smtp[1]: x",
            b"Mar 22 08:00 mailhost postfix/smtp[1]: x",
            b"Mar 22 25:00:05 mailhost postfix/smtp[1]: x",
            b"Mar 22 08:00:05 mailhost",
            b"Mar 22 08:00:05 mailhost postfix/smtp[1x]: x",
            b"2024-13-22T08:00:01Z mailhost postfix/smtp[1]: x",
            b"2024-03-22T08:00:01+0 mailhost postfix/smtp[1]: x",
            b"Mar 22 08:00:05 mailhost postfix/smtp[]: x",
            b"Mar 22 08:00:05 mailhost postfix/smtp[12345678901]: x",
            b"Mar 22 08:00:05 mailhost postfix/smtp[123: x",
            b"Mar 22 08:00:05 mailhost postfix/smtp[123]x",
            b"Mar 22 08:00:05 mailhost post fix/smtp[1]: x",
            b"Mar 22 08:00:05 mailhost postfix/smtp no tag end",
            b"Mar 22 08:00:05 mailhost [1]: x",
        ] {
            assert!(
                parse(bad, reference()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
