//! Once-per-burst accounting for a fault that repeats: the first fault of
//! a burst is logged in full, then only counted, with a reminder at most
//! once per [`REMIND_EVERY`] while it lasts and one line with the count
//! when it ends. So a full disk or an exhausted descriptor table writes a
//! handful of lines, not one per request.

use std::time::{Duration, Instant};

/// How often a burst still going on is reported again, with its count.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// What the caller should log for one fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The first fault of a burst: log it in full.
    First,
    /// The burst goes on: log a reminder with this many faults so far.
    Ongoing { count: u64, since: Duration },
    /// Counted; nothing to log.
    Quiet,
}

/// A burst that has just ended: log it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Faults in the burst.
    pub count: u64,
    /// From its first fault to its end.
    pub lasted: Duration,
}

/// One kind of repeated fault.
#[derive(Debug, Default)]
pub struct Burst {
    /// Faults in the current burst (0: none going on).
    count: u64,
    /// Faults since the start, all bursts.
    total: u64,
    started: Option<Instant>,
    reported: Option<Instant>,
}

impl Burst {
    /// Counts one fault now.
    pub fn fault(&mut self) -> Report {
        self.fault_at(Instant::now())
    }

    /// Counts one fault at `now`.
    pub fn fault_at(&mut self, now: Instant) -> Report {
        self.count += 1;
        self.total += 1;
        let Some(started) = self.started else {
            self.started = Some(now);
            self.reported = Some(now);
            return Report::First;
        };
        let reported = self.reported.unwrap_or(started);
        if now.saturating_duration_since(reported) >= REMIND_EVERY {
            self.reported = Some(now);
            return Report::Ongoing {
                count: self.count,
                since: now.saturating_duration_since(started),
            };
        }
        Report::Quiet
    }

    /// Ends the burst, if one was going on (the fault has cleared).
    pub fn clear(&mut self) -> Option<Ended> {
        self.clear_at(Instant::now())
    }

    /// Ends the burst at `now`.
    pub fn clear_at(&mut self, now: Instant) -> Option<Ended> {
        let started = self.started.take()?;
        self.reported = None;
        let count = std::mem::take(&mut self.count);
        Some(Ended {
            count,
            lasted: now.saturating_duration_since(started),
        })
    }

    /// Whether a burst is going on.
    pub fn active(&self) -> bool {
        self.started.is_some()
    }

    /// Faults in the current burst.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Faults since the start, all bursts.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_burst_and_a_reminder_per_interval() {
        let t0 = Instant::now();
        let mut b = Burst::default();
        assert_eq!(b.fault_at(t0), Report::First);
        let reports: Vec<Report> = (1..=1000)
            .map(|i| b.fault_at(t0 + Duration::from_millis(i * 50)))
            .filter(|r| *r != Report::Quiet)
            .collect();
        // 1,000 faults over 50 s: nothing more to log.
        assert!(reports.is_empty(), "{reports:?}");
        assert_eq!(
            b.fault_at(t0 + REMIND_EVERY),
            Report::Ongoing {
                count: 1002,
                since: REMIND_EVERY
            }
        );
        assert_eq!(
            b.fault_at(t0 + REMIND_EVERY + Duration::from_secs(1)),
            Report::Quiet
        );
        let ended = b.clear_at(t0 + Duration::from_secs(90)).unwrap();
        assert_eq!(ended.count, 1003);
        assert_eq!(ended.lasted, Duration::from_secs(90));
        assert_eq!(b.clear(), None, "a burst ends once");
        // The next fault starts a new burst, logged in full again.
        assert_eq!(b.fault_at(t0 + Duration::from_secs(100)), Report::First);
        assert_eq!((b.count(), b.total()), (1, 1004));
    }
}
