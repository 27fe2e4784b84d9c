//! `Store::write_batch`: several writes of different kinds in one request,
//! each applied or refused on its own, through the embedded store's own
//! implementation and through the trait's default (what a backend without
//! its own, like the coming Redis one, gets).

mod conformance;

use mxguard_store::{
    BoxFuture, Counters, Durability, EmbeddedStore, Entries, History, HistoryRow, ManualClock,
    Purged, Result, Store, Write,
};
use std::sync::Arc;
use std::time::Duration;

/// The embedded store behind the trait's default `write_batch` (it
/// forwards every other method).
struct OneByOne(EmbeddedStore);

impl Store for OneByOne {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        self.0.get(key)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        self.0.get_many(keys)
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        self.0.set(key, value, ttl)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.0.delete(key)
    }
    fn incr<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>> {
        self.0.incr(key, by, ttl)
    }
    fn list_push<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
    ) -> BoxFuture<'a, Result<()>> {
        self.0.list_push(key, value, max_len)
    }
    fn list_range<'a>(
        &'a self,
        key: &'a str,
        start: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>>> {
        self.0.list_range(key, start, count)
    }
    fn list_len<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize>> {
        self.0.list_len(key)
    }
    fn scan_prefix<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, Result<Entries>> {
        self.0.scan_prefix(prefix, limit)
    }
    fn purge_expired(&self, limit: usize) -> BoxFuture<'_, Result<Purged>> {
        self.0.purge_expired(limit)
    }
}

fn both() -> Vec<(tempfile::TempDir, Arc<dyn Store>, &'static str)> {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(a.path()).unwrap());
    let default: Arc<dyn Store> = Arc::new(OneByOne(EmbeddedStore::open(b.path()).unwrap()));
    vec![(a, embedded, "embedded"), (b, default, "default")]
}

/// The trait's default `write_batch` (what a backend without its own
/// gets) passes the conformance suite's batch behaviour, which the
/// embedded store's own implementation passes in tests/store.rs and
/// Redis's in tests/redis.rs.
#[tokio::test]
async fn the_default_write_batch_applies_each_write_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let inner = EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap();
    let h = conformance::Harness {
        store: Arc::new(OneByOne(inner)),
        clock: Some(clock),
        unit: Duration::from_secs(1),
        _keep: Box::new(dir),
    };
    conformance::a_write_batch_applies_each_write_on_its_own(&h).await;
    // An empty batch is nothing to do, by the default and by the embedded
    // store's own implementation.
    h.store.write_batch(&[], Durability::Relaxed).await.unwrap();
    let own_dir = tempfile::tempdir().unwrap();
    let own = EmbeddedStore::open(own_dir.path()).unwrap();
    own.write_batch(&[], Durability::Relaxed).await.unwrap();
}

/// The embedded store sends the whole batch to its writer as one request.
#[tokio::test]
async fn the_embedded_store_makes_one_request_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let before = s.stats();
    let writes: Vec<Write<'_>> = (0..50)
        .map(|_| Write::Incr {
            key: "c",
            by: 1,
            ttl: None,
        })
        .collect();
    s.write_batch(&writes, Durability::Relaxed).await.unwrap();
    let after = s.stats();
    assert_eq!(after.writes - before.writes, 1);
    assert_eq!(s.get("c").await.unwrap().as_deref(), Some(&b"50"[..]));
}

fn row(i: u32, action: &str) -> HistoryRow {
    HistoryRow {
        time: 1_700_000_000.0 + f64::from(i),
        queue_id: Some(format!("Q{i}")),
        action: action.into(),
        ..HistoryRow::default()
    }
}

/// Rows go in oldest first and read back newest first, bounded by the
/// history's size; the counters get the sums they were given.
#[tokio::test]
async fn history_records_rows_and_counts_in_one_batch() {
    for (_dir, s, which) in both() {
        let history = History::new(s.clone(), 3);
        let counters = Counters::new(s.clone());
        let rows: Vec<HistoryRow> = (1..=4)
            .map(|i| row(i, if i % 2 == 0 { "reject" } else { "no action" }))
            .collect();
        history
            .record_relaxed(
                &rows,
                &[
                    ("scanned", 4),
                    ("action:reject", 2),
                    ("action:no action", 2),
                ],
            )
            .await
            .unwrap();
        history
            .record_relaxed(&[row(5, "reject")], &[("scanned", 1), ("action:reject", 1)])
            .await
            .unwrap();
        let ids: Vec<Option<String>> = history
            .recent(10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.queue_id)
            .collect();
        assert_eq!(
            ids,
            vec![Some("Q5".into()), Some("Q4".into()), Some("Q3".into())],
            "{which}"
        );
        assert_eq!(counters.get("scanned").await.unwrap(), 5, "{which}");
        assert_eq!(counters.get("action:reject").await.unwrap(), 3, "{which}");
        assert_eq!(
            counters.get("action:no action").await.unwrap(),
            2,
            "{which}"
        );
    }
}
