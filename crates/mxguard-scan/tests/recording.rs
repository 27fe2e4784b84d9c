//! Verdicts recorded behind the answer (as `serve` records them): every
//! scanned message reaches the store's history and counters, through the
//! recorder task that writes many of them per store request, and a store
//! that stops answering holds no answer up and no more than the queue's
//! bound of rows.

use mxguard_core::Envelope;
use mxguard_core::config::{Config, load_str};
use mxguard_core::shared::Shared;
use mxguard_scan::{Pipeline, Recording, ScanInput, ScanService};
use mxguard_store::{
    BoxFuture, Counters, Durability, EmbeddedStore, Entries, History, Purged, Result, Store, Write,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[[rules]]
name = "SUBJ_LOTTERY"
target = "subject"
pattern = "/you won/i"
score = 100.0
"#;

fn service(store: Arc<dyn Store>, history_size: usize) -> Arc<ScanService> {
    let config: Config = load_str(CONFIG, "test.toml", &mxguard_scan::sections()).unwrap();
    let (pipeline, _) = Pipeline::from_config(config).unwrap();
    Arc::new(
        ScanService::new(Arc::new(Shared::new(pipeline)), 4).with_recording(Recording {
            history: History::new(store.clone(), history_size),
            counters: Counters::new(store),
            wait: false,
        }),
    )
}

fn message(i: usize) -> Vec<u8> {
    let subject = if i.is_multiple_of(3) {
        "you won"
    } else {
        "minutes"
    };
    format!("From: a@example.com\r\nSubject: {subject} {i}\r\n\r\nbody {i}\r\n").into_bytes()
}

async fn scan_all(service: &Arc<ScanService>, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let service = service.clone();
        tasks.spawn(async move {
            let env = Envelope {
                queue_id: Some(format!("Q{i}")),
                ..Envelope::default()
            };
            let raw = message(i);
            service
                .scan_message(ScanInput {
                    envelope: &env,
                    raw: &raw,
                    mta_name: None,
                })
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verdict_reaches_history_and_counters() {
    const N: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let s = service(store.clone(), 1000);
    scan_all(&s, N).await;
    let counters = Counters::new(store.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while counters.get("scanned").await.unwrap() < N as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counters.get("scanned").await.unwrap(), N as i64);
    let rejected = (0..N).filter(|i| i % 3 == 0).count() as i64;
    assert_eq!(counters.get("action:reject").await.unwrap(), rejected);
    // The others' action is whatever the default checks make of them:
    // every message is counted under exactly one action.
    let by_action: i64 = counters
        .all()
        .await
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("action:"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(by_action, N as i64);
    let history = History::new(store.clone(), 1000);
    let rows = history.recent(N + 10).await.unwrap();
    assert_eq!(rows.len(), N);
    let mut ids: Vec<String> = rows.into_iter().filter_map(|r| r.queue_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N, "each message once");
    assert_eq!(s.unrecorded(), 0);
}

/// A store whose writes never finish: the recorder waits on its first
/// request forever.
struct Stalled {
    inner: EmbeddedStore,
    batches: AtomicUsize,
}

impl Store for Stalled {
    fn describe(&self) -> String {
        "a stalled store".into()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        self.inner.get(key)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        self.inner.get_many(keys)
    }
    fn set<'a>(
        &'a self,
        _: &'a str,
        _: &'a [u8],
        _: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(std::future::pending())
    }
    fn write_batch<'a>(&'a self, _: &'a [Write<'a>], _: Durability) -> BoxFuture<'a, Result<()>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(std::future::pending())
    }
    fn incr<'a>(&'a self, _: &'a str, _: i64, _: Option<Duration>) -> BoxFuture<'a, Result<i64>> {
        Box::pin(std::future::pending())
    }
    fn list_push<'a>(&'a self, _: &'a str, _: &'a [u8], _: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(std::future::pending())
    }
    fn list_range<'a>(
        &'a self,
        key: &'a str,
        start: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>>> {
        self.inner.list_range(key, start, count)
    }
    fn list_len<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize>> {
        self.inner.list_len(key)
    }
    fn scan_prefix<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, Result<Entries>> {
        self.inner.scan_prefix(prefix, limit)
    }
    fn purge_expired(&self, limit: usize) -> BoxFuture<'_, Result<Purged>> {
        self.inner.purge_expired(limit)
    }
}

/// Scans are answered while the store hangs; what does not fit in the
/// recorder's queue is dropped and counted, not kept without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_holds_no_answer_and_bounded_rows() {
    const N: usize = 9000;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Stalled {
        inner: EmbeddedStore::open(dir.path()).unwrap(),
        batches: AtomicUsize::new(0),
    });
    let s = service(store.clone(), 100);
    tokio::time::timeout(Duration::from_secs(120), scan_all(&s, N))
        .await
        .expect("every scan answered while the store hangs");
    assert_eq!(store.batches.load(Ordering::SeqCst), 1, "one request out");
    let dropped = s.unrecorded();
    // The queue holds 8192 and the stalled request took the first batch.
    assert!(dropped > 0 && dropped < (N - 8192) as u64 + 1, "{dropped}");
}
