//! A store that cannot read or write: the policy answers by
//! `policy.store_failure` (let through by default, or defer), the same
//! whether the fault began before or after the first request, logs the
//! burst once, and goes back to greylisting when the store works again.
//! A stalled store holds at most `max_pending_writes` writes.

mod common;

use mxguard_core::config::{LoadedConfig, Registry, load_str};
use mxguard_policy::engine::Engine;
use mxguard_policy::protocol::Request;
use mxguard_store::{
    BoxFuture, EmbeddedStore, Entries, ErrorKind, Purged, Result, Store, StoreError,
};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The embedded store, with faults on demand: reads or writes fail (as on
/// a full or failing disk), or writes hang until let go (a stalled disk).
struct FaultyStore {
    inner: EmbeddedStore,
    fail_reads: AtomicBool,
    fail_writes: AtomicBool,
    stall_writes: AtomicBool,
    released: tokio::sync::Notify,
    writes_started: AtomicUsize,
}

impl FaultyStore {
    fn broken(&self, kind: &str) -> StoreError {
        StoreError::new(
            ErrorKind::Backend,
            format!("test store: {kind} fails (No space left on device)"),
        )
    }
}

impl Store for FaultyStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Box::pin(async { Err(self.broken("read")) });
        }
        self.inner.get(key)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Box::pin(async { Err(self.broken("read")) });
        }
        self.inner.get_many(keys)
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        self.writes_started.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            while self.stall_writes.load(Ordering::SeqCst) {
                self.released.notified().await;
            }
            if self.fail_writes.load(Ordering::SeqCst) {
                return Err(self.broken("write"));
            }
            self.inner.set(key, value, ttl).await
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.inner.delete(key)
    }
    fn incr<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Box::pin(async { Err(self.broken("write")) });
        }
        self.inner.incr(key, by, ttl)
    }
    fn list_push<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.list_push(key, value, max_len)
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

struct Setup {
    engine: Engine,
    store: Arc<FaultyStore>,
    _dir: tempfile::TempDir,
}

const GREYLIST: &str = "[greylist]\ndelay = 60\nsender_pools = false\n[policy]\nmynetworks = []\n";

fn setup(config: &str) -> Setup {
    let config =
        load_str(config, "test.toml", &Registry::new()).unwrap_or_else(|e| panic!("{e:?}"));
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FaultyStore {
        inner: EmbeddedStore::open(dir.path()).unwrap(),
        fail_reads: AtomicBool::new(false),
        fail_writes: AtomicBool::new(false),
        stall_writes: AtomicBool::new(false),
        released: tokio::sync::Notify::new(),
        writes_started: AtomicUsize::new(0),
    });
    let (engine, _) = Engine::new(&loaded, store.clone(), None).unwrap_or_else(|e| panic!("{e:?}"));
    Setup {
        engine,
        store,
        _dir: dir,
    }
}

fn request(n: usize) -> Request {
    let mut r = Request::default();
    let sender = format!("s{n}@sender.example");
    for (k, v) in common::rcpt("192.0.2.9", &sender, "rcpt@example.org") {
        r.insert(k, v);
    }
    r
}

impl Setup {
    async fn ask(&self, n: usize) -> String {
        self.engine.decide(&request(n)).await
    }

    /// Waits until no write is on its way to the store.
    async fn settled(&self) {
        for _ in 0..1000 {
            if self.engine.pending_writes() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("writes still pending after 5 s");
    }
}

fn deferred(a: &str) -> bool {
    a.starts_with("DEFER_IF_PERMIT")
}

/// Writes fail from some point on (a full disk): new senders are no
/// longer deferred for ever; once the store writes again, greylisting
/// comes back. The same answers whether the fault began before the first
/// request or after many.
async fn writes_failing(fault_before_first_request: bool) {
    let s = setup(GREYLIST);
    let mut n = 0;
    if !fault_before_first_request {
        for _ in 0..5 {
            n += 1;
            assert!(deferred(&s.ask(n).await), "healthy store greylists");
        }
        s.settled().await;
    }
    s.store.fail_writes.store(true, Ordering::SeqCst);
    // The first write to fail is found after its answer.
    n += 1;
    s.ask(n).await;
    s.settled().await;
    for _ in 0..50 {
        n += 1;
        assert_eq!(
            s.ask(n).await,
            "DUNNO",
            "a deferral the store cannot remember would be repeated for ever"
        );
    }
    // The store works again: a write lands, and greylisting is back.
    s.store.fail_writes.store(false, Ordering::SeqCst);
    n += 1;
    s.ask(n).await;
    s.settled().await;
    n += 1;
    assert!(deferred(&s.ask(n).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_lets_new_senders_through() {
    writes_failing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_when_the_store_could_not_write_from_the_start() {
    writes_failing(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_read_lets_requests_through_then_greylists_again() {
    let s = setup(GREYLIST);
    s.store.fail_reads.store(true, Ordering::SeqCst);
    assert_eq!(s.ask(1).await, "DUNNO");
    s.store.fail_reads.store(false, Ordering::SeqCst);
    assert!(deferred(&s.ask(2).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failure_defer_defers_instead() {
    let s = setup(&format!(
        "{GREYLIST}store_failure = \"defer\"\nrestrictions.recipient = [\"reject_banned_client\", \"rate_limit client_ip 1000/1h\", \"greylist\"]\n"
    ));
    s.store.fail_writes.store(true, Ordering::SeqCst);
    let a = s.ask(1).await;
    assert!(a.starts_with("DEFER_IF_PERMIT 4.3.0 rate_limit:"), "{a}");
    s.store.fail_writes.store(false, Ordering::SeqCst);
    s.store.fail_reads.store(true, Ordering::SeqCst);
    let a = s.ask(2).await;
    assert!(
        a.starts_with("DEFER_IF_PERMIT 4.3.0 reject_banned_client:"),
        "{a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greylisting_defers_when_the_store_cannot_keep_the_triplet_and_store_failure_is_defer() {
    let s = setup(&format!("{GREYLIST}store_failure = \"defer\"\n"));
    s.store.fail_writes.store(true, Ordering::SeqCst);
    s.ask(1).await;
    s.settled().await;
    let a = s.ask(2).await;
    assert!(a.starts_with("DEFER_IF_PERMIT 4.3.0 greylist:"), "{a}");
}

/// A stalled store: writes queue up to `max_pending_writes`; past it a
/// request waits for its write, then answers by `store_failure`; later
/// requests do not wait, and nothing more is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_holds_at_most_max_pending_writes() {
    let s = setup(&format!("{GREYLIST}max_pending_writes = 4\n"));
    s.store.stall_writes.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for n in 1..=40 {
        answers.push(s.ask(n).await);
        assert!(
            s.engine.pending_writes() <= 5,
            "{} writes held after {n} requests",
            s.engine.pending_writes()
        );
    }
    assert!(answers[..4].iter().all(|a| deferred(a)), "{answers:?}");
    assert!(answers[4..].iter().all(|a| a == "DUNNO"), "{answers:?}");
    assert!(s.store.writes_started.load(Ordering::SeqCst) <= 5);
    // The store moves again: what was held lands, greylisting is back.
    s.store.stall_writes.store(false, Ordering::SeqCst);
    s.store.released.notify_waiters();
    s.settled().await;
    assert!(deferred(&s.ask(100).await));
}

/// Captured log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 200 requests on a store that cannot read (two reads each: the ban and
/// the triplet): one log line, not 400; and one more when it works again,
/// with the count.
#[tokio::test(flavor = "current_thread")]
async fn store_errors_are_logged_once_per_burst() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = setup(GREYLIST);
    s.store.fail_reads.store(true, Ordering::SeqCst);
    s.store.fail_writes.store(true, Ordering::SeqCst);
    for n in 0..200 {
        assert_eq!(s.ask(n).await, "DUNNO");
    }
    s.store.fail_reads.store(false, Ordering::SeqCst);
    s.store.fail_writes.store(false, Ordering::SeqCst);
    s.ask(1000).await;
    s.settled().await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("store:")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("No space left on device"), "{}", lines[0]);
    assert!(
        lines[1].contains("working again after 400 errors"),
        "{}",
        lines[1]
    );
    assert_eq!(s.engine.stats.store_errors.load(Ordering::Relaxed), 400);
}

/// `max_pending_writes = 0`: every deferral is in the store before it is
/// answered, and a store that failed is tried again by the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_pending_writes_answers_wait_for_their_writes() {
    let s = setup(&format!("{GREYLIST}max_pending_writes = 0\n"));
    assert!(deferred(&s.ask(1).await));
    let key = "grey:192.0.2.0/24/s1@sender.example/rcpt@example.org";
    assert!(
        s.store.get(key).await.unwrap().is_some(),
        "the triplet is durable when the deferral is answered"
    );
    s.store.fail_writes.store(true, Ordering::SeqCst);
    assert_eq!(s.ask(2).await, "DUNNO");
    assert_eq!(s.ask(3).await, "DUNNO");
    s.store.fail_writes.store(false, Ordering::SeqCst);
    assert!(
        deferred(&s.ask(4).await),
        "the next write found the store working"
    );
    assert_eq!(s.engine.pending_writes(), 0);
}
