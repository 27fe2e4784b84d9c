//! Relaxed durability: writes acknowledged once committed, made durable by
//! the next durable commit, within `relaxed_window`, and on close. The
//! simulated disk counts the file's fsyncs.

use mxguard_store::{
    Counters, DiskFaults, Durability, EmbeddedStore, History, HistoryRow, Options, Store,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A window no test waits out by accident.
const LONG: Duration = Duration::from_secs(3600);

fn open(dir: &std::path::Path, window: Duration) -> (EmbeddedStore, Arc<DiskFaults>) {
    let faults = DiskFaults::new();
    let s = EmbeddedStore::open_with(
        dir,
        Options {
            faults: Some(faults.clone()),
            relaxed_window: window,
            ..Options::default()
        },
    )
    .unwrap();
    (s, faults)
}

async fn relaxed_writes(s: &EmbeddedStore) {
    s.set_many(
        &[("grey:a", b"1"), ("grey:b", b"2")],
        Some(Duration::from_secs(86400)),
        Durability::Relaxed,
    )
    .await
    .unwrap();
    assert_eq!(
        s.incr_with("counter:scanned", 2, None, Durability::Relaxed)
            .await
            .unwrap(),
        2
    );
    s.list_push_with("history", b"row", 10, Durability::Relaxed)
        .await
        .unwrap();
}

async fn assert_relaxed_values(s: &EmbeddedStore) {
    assert_eq!(
        s.get_many(&["grey:a", "grey:b"]).await.unwrap(),
        vec![Some(b"1".to_vec()), Some(b"2".to_vec())]
    );
    assert_eq!(s.get("counter:scanned").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(
        s.list_range("history", 0, 10).await.unwrap(),
        vec![b"row".to_vec()]
    );
}

#[tokio::test]
async fn relaxed_writes_are_readable_at_once_without_an_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (s, faults) = open(dir.path(), LONG);
    let (syncs, before) = (faults.syncs(), s.stats());
    relaxed_writes(&s).await;
    assert_relaxed_values(&s).await;
    let after = s.stats();
    assert_eq!(faults.syncs(), syncs, "a relaxed commit does not fsync");
    assert_eq!(after.commits, before.commits);
    assert_eq!(after.relaxed_commits - before.relaxed_commits, 3);
    assert_eq!(after.writes - before.writes, 3);
    // A durable write still waits for its fsync.
    s.set("ban:192.0.2.1", b"x", None).await.unwrap();
    assert!(faults.syncs() > syncs);
}

#[tokio::test]
async fn relaxed_writes_survive_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let (s, faults) = open(dir.path(), LONG);
    relaxed_writes(&s).await;
    let syncs = faults.syncs();
    drop(s);
    assert!(faults.syncs() > syncs, "closing made them durable");
    let (s, _) = open(dir.path(), LONG);
    assert_relaxed_values(&s).await;
}

/// A durable commit carries every relaxed commit before it: the data is
/// on disk whatever happens next.
#[tokio::test]
async fn a_durable_write_makes_earlier_relaxed_ones_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (s, faults) = open(dir.path(), LONG);
    relaxed_writes(&s).await;
    let (syncs, before) = (faults.syncs(), s.stats());
    s.set("ban:192.0.2.1", b"x", None).await.unwrap();
    let after = s.stats();
    assert_eq!(after.commits - before.commits, 1);
    assert!(faults.syncs() > syncs);
    // Nothing is owed any more: no flush comes later.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.stats().commits - before.commits, 1);
    drop(s);
    let (s, _) = open(dir.path(), LONG);
    assert_relaxed_values(&s).await;
}

/// The writer makes a durable commit `relaxed_window` after a relaxed one,
/// with no other traffic, and only then.
#[tokio::test]
async fn relaxed_writes_are_flushed_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_millis(50);
    let (s, faults) = open(dir.path(), window);
    let before = s.stats();
    let syncs = faults.syncs();
    let start = Instant::now();
    s.set_many(&[("grey:a", b"1")], None, Durability::Relaxed)
        .await
        .unwrap();
    let deadline = start + Duration::from_secs(10);
    while s.stats().commits == before.commits {
        assert!(
            Instant::now() < deadline,
            "no durable commit after {window:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(start.elapsed() >= window, "flushed before the window ended");
    assert_eq!(s.stats().commits - before.commits, 1);
    assert!(faults.syncs() > syncs);
    // One flush per window, not one per wake-up.
    tokio::time::sleep(window * 3).await;
    assert_eq!(s.stats().commits - before.commits, 1);
}

/// Under steady relaxed traffic the writer never waits for an idle moment:
/// a batch that comes after the window is committed durably itself.
#[tokio::test]
async fn steady_relaxed_traffic_still_gets_a_durable_commit_each_window() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_millis(30);
    let (s, _faults) = open(dir.path(), window);
    let before = s.stats();
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed() < window * 5 {
        s.set_many(&[(&format!("k{i}"), b"v")], None, Durability::Relaxed)
            .await
            .unwrap();
        i += 1;
    }
    let after = s.stats();
    assert!(after.relaxed_commits > before.relaxed_commits);
    assert!(
        (2..=10).contains(&(after.commits - before.commits)),
        "{} durable commits in 5 windows",
        after.commits - before.commits
    );
}

#[tokio::test]
async fn history_and_counters_relaxed() {
    let dir = tempfile::tempdir().unwrap();
    let (s, faults) = open(dir.path(), LONG);
    let s: Arc<dyn Store> = Arc::new(s);
    let syncs = faults.syncs();
    let h = History::new(s.clone(), 2);
    let c = Counters::new(s.clone());
    for i in 0..3 {
        h.push_relaxed(&HistoryRow {
            action: format!("a{i}"),
            ..Default::default()
        })
        .await
        .unwrap();
        c.incr_relaxed("scanned", 1).await.unwrap();
    }
    assert_eq!(faults.syncs(), syncs);
    let rows = h.recent(10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["a2", "a1"]
    );
    assert_eq!(c.get("scanned").await.unwrap(), 3);
}

/// Concurrent relaxed writes share commits, as durable ones do, though a
/// commit without an fsync is quick: the writer gathers them briefly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_relaxed_writes_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _faults) = open(dir.path(), LONG);
    let s = Arc::new(s);
    let before = s.stats();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let key = format!("k{i}");
                s.set_many(&[(&key, b"v")], None, Durability::Relaxed).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let after = s.stats();
    assert_eq!(after.writes - before.writes, 200);
    let commits = after.relaxed_commits - before.relaxed_commits;
    assert!(
        commits <= 20,
        "200 concurrent relaxed writes took {commits} commits"
    );
}
