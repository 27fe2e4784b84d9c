//! The report's period: `-d today|yesterday` (local days, as pflogsumm)
//! or `--since`/`--until` wall-clock times.

use crate::date::{Stamp, local_from_unix, unix_now};

/// [start, end) of a named day relative to `now` (local time).
pub fn day(name: &str, now: Stamp) -> Result<(Stamp, Stamp), String> {
    let today = Stamp {
        hour: 0,
        min: 0,
        sec: 0,
        ..now
    };
    let start = match name {
        "today" => today,
        "yesterday" => Stamp::from_secs(today.secs() - 86_400),
        other => {
            return Err(format!(
                "-d {other}: give today or yesterday (or use --since/--until)"
            ));
        }
    };
    Ok((start, Stamp::from_secs(start.secs() + 86_400)))
}

/// The local time now.
pub fn now() -> Stamp {
    local_from_unix(unix_now())
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, `YYYY-MM-DDTHH:MM:SS` (local wall
/// clock).
pub fn parse_time(s: &str) -> Result<Stamp, String> {
    let bad = || format!("{s:?}: not a time; give YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS]");
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = b.get(r).ok_or_else(bad)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        std::str::from_utf8(part)
            .map_err(|_| bad())?
            .parse()
            .map_err(|_| bad())
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let mut st = Stamp {
        year: year as i32,
        month: month as u8,
        day: day as u8,
        ..Default::default()
    };
    if b.len() > 10 {
        if (b[10] != b' ' && b[10] != b'T') || b.len() < 16 || b[13] != b':' {
            return Err(bad());
        }
        st.hour = num(11..13)? as u8;
        st.min = num(14..16)? as u8;
        if b.len() > 16 {
            if b[16] != b':' || b.len() != 19 {
                return Err(bad());
            }
            st.sec = num(17..19)? as u8;
        }
    }
    if !(1..=12).contains(&st.month)
        || !(1..=31).contains(&st.day)
        || st.hour > 23
        || st.min > 59
        || st.sec > 59
    {
        return Err(bad());
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_times() {
        let now = Stamp {
            year: 2027,
            month: 1,
            day: 1,
            hour: 9,
            min: 3,
            sec: 0,
        };
        let (a, b) = day("yesterday", now).unwrap();
        assert_eq!((a.year, a.month, a.day, b.day), (2026, 12, 31, 1));
        assert!(day("monday", now).is_err());
        assert_eq!(parse_time("2026-12-07 16:00").unwrap().hour, 16);
        assert_eq!(parse_time("2026-12-07T16:00:05").unwrap().sec, 5);
        assert!(parse_time("2026-13-07").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
