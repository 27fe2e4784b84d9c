//! Failed history writes, logged once per burst.
//!
//! While the store is down (Redis stopped, a disk full) every scanned
//! message fails its history write; logging each would flood the log at
//! the message rate. The first failure of a burst is logged, the rest are
//! counted, and the first success after them logs the count and how long
//! the burst lasted, as the Redis store does for its own operations.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// The state of the current burst of failed history writes.
#[derive(Debug, Default)]
pub struct RecordFailures {
    /// Set while a burst is open: the success path reads only this.
    failing: AtomicBool,
    burst: Mutex<Burst>,
    /// Failed writes since the service started.
    total: AtomicU64,
}

#[derive(Debug, Default)]
struct Burst {
    since: Option<Instant>,
    count: u64,
}

/// What a call did, for the caller's tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Logged {
    /// The first failure of a burst: logged.
    BurstStarted,
    /// A failure inside a burst: counted only.
    Counted,
    /// A success ending a burst of this many failures: logged.
    BurstEnded(u64),
    /// A success outside a burst: nothing to say.
    Nothing,
}

impl RecordFailures {
    /// A failed history write.
    pub fn failed(&self, error: &dyn Display) -> Logged {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut b = self.burst.lock().unwrap_or_else(PoisonError::into_inner);
        b.count += 1;
        if b.since.is_some() {
            return Logged::Counted;
        }
        b.since = Some(Instant::now());
        self.failing.store(true, Ordering::Release);
        tracing::error!(
            "history: {error}; further failed history writes are counted and summed up when \
             the store accepts writes again"
        );
        Logged::BurstStarted
    }

    /// A history write that went through.
    pub fn succeeded(&self) -> Logged {
        if !self.failing.load(Ordering::Acquire) {
            return Logged::Nothing;
        }
        let mut b = self.burst.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(since) = b.since.take() else {
            return Logged::Nothing;
        };
        let count = std::mem::take(&mut b.count);
        self.failing.store(false, Ordering::Release);
        tracing::warn!(
            history_write_failures = count,
            "history: writes work again after {count} failed in {:.1} s (those rows are lost)",
            since.elapsed().as_secs_f64()
        );
        Logged::BurstEnded(count)
    }

    /// Failed history writes since the service started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_log_per_burst_and_the_rest_counted() {
        let f = RecordFailures::default();
        assert_eq!(f.succeeded(), Logged::Nothing);
        assert_eq!(f.failed(&"refused"), Logged::BurstStarted);
        for _ in 0..99 {
            assert_eq!(f.failed(&"refused"), Logged::Counted);
        }
        assert_eq!(f.succeeded(), Logged::BurstEnded(100));
        assert_eq!(f.succeeded(), Logged::Nothing);
        // A second outage is a new burst, logged again.
        assert_eq!(f.failed(&"timed out"), Logged::BurstStarted);
        assert_eq!(f.succeeded(), Logged::BurstEnded(1));
        assert_eq!(f.total(), 101);
    }

    #[test]
    fn concurrent_failures_open_one_burst() {
        let f = std::sync::Arc::new(RecordFailures::default());
        let started: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let f = &f;
                    s.spawn(move || {
                        (0..250)
                            .filter(|_| f.failed(&"down") == Logged::BurstStarted)
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(started, 1);
        assert_eq!(f.succeeded(), Logged::BurstEnded(1000));
    }
}
