//! Civil dates and times without a time-zone crate: log timestamps are wall
//! clock times as the log wrote them (syslog has no zone), so the report
//! works on those; only "today" needs the local zone (libc's localtime_r).

/// A wall-clock time as written in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub min: u8,
    pub sec: u8,
}

impl Stamp {
    /// Days since 1970-01-01 of the date.
    pub fn days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// Seconds since 1970-01-01 00:00 of this wall-clock time (no zone).
    pub fn secs(&self) -> i64 {
        self.days() * 86_400 + self.hour as i64 * 3600 + self.min as i64 * 60 + self.sec as i64
    }

    /// The date as YYYYMMDD, a sortable day key.
    pub fn day_key(&self) -> u32 {
        (self.year.max(0) as u32) * 10_000 + self.month as u32 * 100 + self.day as u32
    }

    pub fn from_secs(secs: i64) -> Stamp {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Stamp {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            min: (rem / 60 % 60) as u8,
            sec: (rem % 60) as u8,
        }
    }
}

/// Howard Hinnant's days-from-civil algorithm (public domain arithmetic).
pub fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y } as i32, m, d)
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Month number (1..=12) of a three-letter English month name.
/// One decision on the bytes (every syslog line has one), where a walk
/// of [`MONTHS`] compared up to twelve names.
pub fn month_of(name: &[u8]) -> Option<u8> {
    Some(match name {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

/// The local wall-clock time of a Unix time (the system's zone).
pub fn local_from_unix(unix: i64) -> Stamp {
    // SAFETY: localtime_r writes only into the tm we hand it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = unix as libc::time_t;
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return Stamp::from_secs(unix);
    }
    Stamp {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u8,
        day: tm.tm_mday as u8,
        hour: tm.tm_hour as u8,
        min: tm.tm_min as u8,
        sec: tm.tm_sec.min(59) as u8,
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Picks the year of a syslog timestamp (which has none): the year of the
/// reference time (the file's modification time, or now), unless that puts
/// the line more than a day after the reference — then it was written the
/// year before (a log read in January holding December's lines).
pub fn infer_year(reference: Stamp, month: u8, day: u8) -> i32 {
    let this = days_from_civil(reference.year, month, day);
    if this > reference.days() + 1 {
        reference.year - 1
    } else {
        reference.year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [-1000i64, 0, 59, 365, 10_957, 20_000, 24_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
            2
        );
    }

    #[test]
    fn year_end_inference() {
        let jan2 = Stamp {
            year: 2027,
            month: 1,
            day: 2,
            ..Default::default()
        };
        assert_eq!(infer_year(jan2, 12, 31), 2026);
        assert_eq!(infer_year(jan2, 1, 1), 2027);
        assert_eq!(
            infer_year(jan2, 1, 3),
            2027,
            "a day ahead: clock skew, same year"
        );
        let dec7 = Stamp {
            year: 2026,
            month: 12,
            day: 7,
            ..Default::default()
        };
        assert_eq!(infer_year(dec7, 12, 21), 2025);
        assert_eq!(infer_year(dec7, 11, 22), 2026);
    }
}
