//! The milter's memory budget (`[milter] memory_budget`): the bytes of
//! messages held by every session at once, while they are received and
//! while they are scanned.
//!
//! A message holds a [`Claim`] on the budget. While it is received the
//! claim grows with its buffer (the buffer's capacity, not just its length);
//! before its scan it grows to [`MilterConfig::scan_claim`] of the message
//! (the scan's working memory is counted as a multiple of the message's
//! size), and the scan task keeps it until the scan really ends, even after
//! the session gave up on it. Dropping the claim gives the bytes back and
//! wakes whoever waits for room.
//!
//! Large claims may fill the budget only up to [`MemoryBudget::large_ceiling`]
//! (seven eighths); the last eighth is kept for small ones (up to a 64th of
//! the budget each), so a few huge messages waiting for room never hold up
//! ordinary mail. Waiting is not FIFO: whoever fits when room comes takes it,
//! so a small message is never queued behind a large one.
//!
//! [`MilterConfig::scan_claim`]: mxguard_core::config::MilterConfig::scan_claim

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The bytes every session may hold at once.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
    room: Notify,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
            room: Notify::new(),
        })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes claimed now, by every session.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The most a claim may reach: a larger one can never be granted.
    pub fn large_ceiling(&self) -> u64 {
        self.limit - self.limit / 8
    }

    /// Claims up to this size may use the whole budget.
    fn small_claim(&self) -> u64 {
        self.limit / 64
    }

    /// Takes `n` more bytes for a claim that will then hold `held_after`.
    fn try_take(&self, n: u64, held_after: u64) -> bool {
        let ceiling = if held_after <= self.small_claim() {
            self.limit
        } else {
            self.large_ceiling()
        };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&after| after <= ceiling)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
            self.room.notify_waiters();
        }
    }
}

/// What one message holds of the budget; given back when dropped.
#[derive(Debug)]
pub struct Claim {
    budget: Arc<MemoryBudget>,
    held: u64,
}

impl Claim {
    pub fn new(budget: Arc<MemoryBudget>) -> Claim {
        Claim { budget, held: 0 }
    }

    pub fn held(&self) -> u64 {
        self.held
    }

    /// Whether a claim of `total` bytes could ever be granted.
    pub fn could_hold(&self, total: u64) -> bool {
        total <= self.budget.large_ceiling()
    }

    /// Grows the claim to `total` bytes at once, if there is room now.
    pub fn try_grow_to(&mut self, total: u64) -> bool {
        let Some(more) = total.checked_sub(self.held) else {
            return true;
        };
        if more == 0 || self.budget.try_take(more, total) {
            self.held = self.held.max(total);
            true
        } else {
            false
        }
    }

    /// Grows the claim to `total` bytes, waiting for room until `deadline`.
    /// False when there was no room by then, or never can be.
    pub async fn grow_to(&mut self, total: u64, deadline: Instant) -> bool {
        if !self.could_hold(total) {
            return false;
        }
        let budget = self.budget.clone();
        loop {
            // Registered before the check, so a release between the check
            // and the wait is not missed.
            let room = budget.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_grow_to(total) {
                return true;
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return self.try_grow_to(total);
            }
        }
    }

    /// Moves everything this claim holds into a new one (for a task that
    /// outlives the message), leaving this one empty.
    pub fn split_off(&mut self) -> Claim {
        Claim {
            budget: self.budget.clone(),
            held: std::mem::take(&mut self.held),
        }
    }

    /// Gives back everything held above `total` bytes.
    pub fn shrink_to(&mut self, total: u64) {
        if total < self.held {
            self.budget.give_back(self.held - total);
            self.held = total;
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// A repeated fault logged once per burst: the caller logs the first event
/// of a burst ([`Burst::hit`] says when), and when the fault has stopped
/// ([`Burst::calm`] returns the burst's count), one line with the count.
#[derive(Debug)]
pub struct Burst {
    /// In the current burst (0: none going on).
    current: AtomicU64,
    /// Since the start.
    total: AtomicU64,
    /// When the last event came, in milliseconds since `epoch`.
    last: AtomicU64,
    epoch: std::time::Instant,
    /// How long without an event before [`Burst::calm`] ends a burst.
    quiet: std::time::Duration,
}

impl Default for Burst {
    fn default() -> Burst {
        Burst::new(std::time::Duration::ZERO)
    }
}

impl Burst {
    /// A burst ends on the first [`Burst::calm`] at least `quiet` after its
    /// last event, so that successes between failures (small messages
    /// passing while large ones wait) do not log a line per failure.
    pub fn new(quiet: std::time::Duration) -> Burst {
        Burst {
            current: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            quiet,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts one event; true when it starts a burst (log it).
    pub fn hit(&self) -> bool {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.last.store(self.now_ms(), Ordering::Release);
        self.current.fetch_add(1, Ordering::AcqRel) == 0
    }

    /// Ends the burst if one was going on and its last event is at least
    /// the quiet time old: `(events in it, events since the start)`, to log
    /// once.
    pub fn calm(&self) -> Option<(u64, u64)> {
        if self.current.load(Ordering::Acquire) == 0 {
            return None;
        }
        let since = self
            .now_ms()
            .saturating_sub(self.last.load(Ordering::Acquire));
        if u128::from(since) < self.quiet.as_millis() {
            return None;
        }
        let n = self.current.swap(0, Ordering::AcqRel);
        (n > 0).then(|| (n, self.total.load(Ordering::Relaxed)))
    }

    /// Events since the start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn claims_are_counted_and_given_back() {
        let b = MemoryBudget::new(64 << 20);
        let mut a = Claim::new(b.clone());
        assert!(a.try_grow_to(10 << 20));
        assert_eq!(b.used(), 10 << 20);
        a.shrink_to(4 << 20);
        assert_eq!(b.used(), 4 << 20);
        let mut c = Claim::new(b.clone());
        assert!(c.try_grow_to(50 << 20));
        // 54 MiB held: no large claim past 56 MiB, a small one still fits.
        let mut d = Claim::new(b.clone());
        assert!(!d.try_grow_to(3 << 20));
        assert!(d.try_grow_to(1 << 20));
        assert!(!Claim::new(b.clone()).could_hold(57 << 20));
        drop((a, c, d));
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn a_waiting_claim_gets_the_room_given_back() {
        let b = MemoryBudget::new(64 << 20);
        let mut big = Claim::new(b.clone());
        assert!(big.try_grow_to(40 << 20));
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move {
                let mut c = Claim::new(b);
                let ok = c
                    .grow_to(30 << 20, Instant::now() + Duration::from_secs(30))
                    .await;
                (ok, c.held())
            })
        };
        tokio::task::yield_now().await;
        drop(big);
        assert_eq!(waiter.await.unwrap(), (true, 30 << 20));
        // No room by the deadline: false, nothing held.
        let mut full = Claim::new(b.clone());
        assert!(full.try_grow_to(56 << 20));
        let mut late = Claim::new(b.clone());
        assert!(!late.grow_to(2 << 20, Instant::now()).await);
        assert_eq!(late.held(), 0);
    }

    #[test]
    fn bursts_log_their_first_event_and_their_count() {
        let burst = Burst::default();
        assert_eq!(burst.calm(), None);
        assert!(burst.hit());
        assert!(!burst.hit());
        assert!(!burst.hit());
        assert_eq!(burst.calm(), Some((3, 3)));
        assert_eq!(burst.calm(), None);
        assert!(burst.hit());
        assert_eq!(burst.calm(), Some((1, 4)));

        // With a quiet time, a success right after a failure does not end
        // the burst.
        let slow = Burst::new(std::time::Duration::from_secs(3600));
        assert!(slow.hit());
        assert_eq!(slow.calm(), None);
        assert!(!slow.hit());
        assert_eq!(slow.total(), 2);
    }
}
