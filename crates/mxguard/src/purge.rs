//! The store's purge task in `mxguard serve`. Expired entries (greylist
//! triplets, rate-limit windows, locks) are invisible to reads at once but
//! stay in the file until purged: this task reclaims them shortly after
//! start and then every [`INTERVAL`], a bounded chunk per store write, so
//! the greylist's and history's writes get through between chunks.

use mxguard_store::{Store, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The first purge, shortly after start (not at once: startup has its own
/// store work).
pub const FIRST: Duration = Duration::from_secs(30);
/// Then a purge this often.
pub const INTERVAL: Duration = Duration::from_secs(600);
/// Most entries removed per store write (one short transaction).
pub const CHUNK: usize = 10_000;

/// When to purge and how much per store write.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub first: Duration,
    pub every: Duration,
    pub chunk: usize,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            first: FIRST,
            every: INTERVAL,
            chunk: CHUNK,
        }
    }
}

/// Purges on `schedule` until `stop` changes (or its sender is dropped).
/// Errors are logged and the next round tries again: a failed purge costs
/// disk space, never mail.
pub async fn run(store: Arc<dyn Store>, schedule: Schedule, mut stop: watch::Receiver<bool>) {
    let start = tokio::time::Instant::now() + schedule.first;
    let mut tick = tokio::time::interval_at(start, schedule.every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let started = Instant::now();
                match purge_all(&*store, schedule.chunk, &stop).await {
                    Ok((removed, chunks)) => tracing::debug!(
                        removed,
                        chunks,
                        ms = started.elapsed().as_millis() as u64,
                        "store: expired entries purged"
                    ),
                    Err(e) => tracing::warn!("store: purging expired entries failed: {e}"),
                }
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// One pass: chunk after chunk until none remain, yielding between chunks
/// and stopping early when `stop` is set. Returns entries removed and
/// chunks (store writes) used.
pub async fn purge_all(
    store: &dyn Store,
    chunk: usize,
    stop: &watch::Receiver<bool>,
) -> Result<(usize, usize), StoreError> {
    let (mut removed, mut chunks) = (0, 0);
    loop {
        let p = store.purge_expired(chunk).await?;
        removed += p.removed;
        chunks += 1;
        if !p.more || *stop.borrow() {
            return Ok((removed, chunks));
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_store::{EmbeddedStore, ManualClock};

    /// Waits until the store has made `n` commits in all.
    async fn commits_reach(s: &EmbeddedStore, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.stats().commits < n {
            assert!(Instant::now() < deadline, "the purge task did not run");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Keys still in the file, expired or not: read with the clock back at
    /// its start, when nothing the test wrote had expired yet.
    async fn on_disk(s: &EmbeddedStore, clock: &ManualClock, now: Duration) -> Vec<String> {
        clock.set(Duration::ZERO);
        let keys = s.scan_prefix("", usize::MAX).await.unwrap();
        clock.set(now);
        keys.into_iter().map(|(k, _)| k).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_purges_in_chunks_every_interval_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let s = Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
        let short = Some(Duration::from_secs(1));
        for i in 0..1000 {
            s.set(&format!("grey:{i:04}"), b"1", short).await.unwrap();
        }
        for i in 0..10 {
            s.set(&format!("live:{i}"), b"1", Some(Duration::from_secs(3600)))
                .await
                .unwrap();
        }
        s.set("forever", b"1", None).await.unwrap();
        let mut now = Duration::from_secs(2);
        clock.set(now);
        assert_eq!(on_disk(&s, &clock, now).await.len(), 1011, "not yet purged");

        let (stop_tx, stop_rx) = watch::channel(false);
        let schedule = Schedule {
            first: Duration::from_millis(10),
            every: Duration::from_millis(200),
            chunk: 64,
        };
        let base = s.stats().commits;
        let task = tokio::spawn(run(s.clone(), schedule, stop_rx));
        // 1000 expired, 64 a chunk: 16 commits for the first pass.
        commits_reach(&s, base + 16).await;
        let live = on_disk(&s, &clock, now).await;
        assert_eq!(live.len(), 11, "only live keys are left: {live:?}");
        assert!(live.iter().all(|k| !k.starts_with("grey:")), "{live:?}");

        // The next rounds purge what expired since.
        for i in 0..100 {
            s.set(&format!("rate:{i}"), b"1", short).await.unwrap();
        }
        now += Duration::from_secs(2);
        clock.set(now);
        let deadline = Instant::now() + Duration::from_secs(20);
        while on_disk(&s, &clock, now).await.len() > 11 {
            assert!(Instant::now() < deadline, "rate:* not purged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(s.get("live:3").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get("forever").await.unwrap().as_deref(), Some(&b"1"[..]));

        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task stops on the signal")
            .unwrap();
    }
}
