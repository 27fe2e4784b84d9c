//! Report periods: UTC days, named `YYYY-MM-DD`, and the dates mail needs.
//! (Civil-date arithmetic by days since the epoch; no date crate needed.)

const DAY: u64 = 86_400;

/// One UTC day: the report period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// Days since 1970-01-01.
    pub day: u64,
}

impl Period {
    /// The day holding `unix` seconds.
    pub fn of(unix: u64) -> Period {
        Period { day: unix / DAY }
    }

    /// First second of the day.
    pub fn begin(self) -> u64 {
        self.day * DAY
    }

    /// Last second of the day (reports give an inclusive range).
    pub fn end(self) -> u64 {
        self.begin() + DAY - 1
    }

    pub fn previous(self) -> Period {
        Period {
            day: self.day.saturating_sub(1),
        }
    }

    /// `YYYY-MM-DD`.
    pub fn name(self) -> String {
        let (y, m, d) = civil(self.day as i64);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Parses `YYYY-MM-DD` (a real date on or after 1970-01-01).
    pub fn parse(s: &str) -> Option<Period> {
        let mut it = s.trim().splitn(3, '-');
        let y: i64 = it.next()?.parse().ok()?;
        let m: u32 = it.next()?.parse().ok()?;
        let d: u32 = it.next()?.parse().ok()?;
        if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
            return None;
        }
        let days = days_from_civil(y, m, d);
        // Reject 2025-02-30 and the like: it must come back unchanged.
        (civil(days) == (y, m, d)).then_some(Period { day: days as u64 })
    }
}

/// (year, month, day) of a day number (H. Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 5322 date, in UTC: `Mon, 07 Dec 2026 02:50:46 +0000`.
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = unix / DAY;
    let (y, m, d) = civil(day as i64);
    let s = unix % DAY;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[(day % 7) as usize],
        MONTHS[(m - 1) as usize],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bounds() {
        // 2026-12-07 02:50:46 UTC
        let p = Period::of(1_796_611_846);
        assert_eq!(p.name(), "2026-12-07");
        assert_eq!(Period::parse("2026-12-07"), Some(p));
        assert_eq!(p.end() - p.begin(), 86_399);
        assert_eq!(p.previous().name(), "2026-12-06");
        assert_eq!(Period::parse("1970-01-01"), Some(Period { day: 0 }));
        assert_eq!(
            Period::parse("2024-02-29").map(Period::name).as_deref(),
            Some("2024-02-29")
        );
        for bad in [
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "x",
            "2025-1",
            "1969-12-31",
            "",
        ] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn mail_date() {
        assert_eq!(
            rfc5322_date(1_796_611_846),
            "Mon, 07 Dec 2026 02:50:46 +0000"
        );
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    }
}
