//! Write-behind ordering: the greylist engine answers before its writes
//! reach the store; however those writes finish, the store ends with the
//! newest value of each key.

mod common;

use mxguard_core::config::{LoadedConfig, Registry, load_str};
use mxguard_policy::engine::Engine;
use mxguard_policy::protocol::Request;
use mxguard_store::{BoxFuture, Clock, EmbeddedStore, Entries, ManualClock, Purged, Result, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// A store whose first write to each key is slow: it lands after any
/// write that follows it, as a write on a busy connection can.
struct SlowFirstWrite {
    inner: EmbeddedStore,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
    in_flight: AtomicUsize,
    writes: AtomicUsize,
}

impl Store for SlowFirstWrite {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        self.inner.get(key)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        self.inner.get_many(keys)
    }
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        let first = self.seen.lock().unwrap().insert(key.to_string());
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if first {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let r = self.inner.set(key, value, ttl).await;
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            r
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

fn request(ip: &str, sender: &str, recipient: &str) -> Request {
    let mut r = Request::default();
    for (k, v) in common::rcpt(ip, sender, recipient) {
        r.insert(k, v);
    }
    r
}

struct Setup {
    engine: Engine,
    store: Arc<SlowFirstWrite>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn setup(config: &str) -> Setup {
    let config =
        load_str(config, "test.toml", &Registry::new()).unwrap_or_else(|e| panic!("{e:?}"));
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = Arc::new(SlowFirstWrite {
        inner: EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap(),
        seen: Default::default(),
        in_flight: AtomicUsize::new(0),
        writes: AtomicUsize::new(0),
    });
    let (engine, _) = Engine::new(&loaded, store.clone(), None).unwrap_or_else(|e| panic!("{e:?}"));
    let engine = engine.with_clock(clock.clone());
    Setup {
        engine,
        store,
        clock,
        _dir: dir,
    }
}

impl Setup {
    /// Waits until every write has reached the store and none follows.
    async fn settled(&self) {
        let mut quiet = 0;
        for _ in 0..400 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.store.in_flight.load(Ordering::SeqCst) == 0 {
                quiet += 1;
                if quiet == 20 {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        panic!("writes still in flight after 4 s");
    }

    async fn stored(&self, key: &str) -> serde_json::Value {
        let v = self.store.get(key).await.unwrap().expect("stored");
        serde_json::from_slice(&v).unwrap()
    }
}

const CONFIG: &str = "[greylist]\ndelay = 60\nmax_age = \"10d\"\nretry_window = \"2d\"\nauto_whitelist_clients = 2\nsender_pools = false\n[policy]\nmynetworks = []\n";
const TRIPLET: &str = "grey:192.0.2.0/24/a@s.example/b@r.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_triplet_value_lands_last() {
    let s = setup(CONFIG);
    let req = request("192.0.2.9", "a@s.example", "b@r.example");
    let a = s.engine.decide(&req).await;
    assert!(a.starts_with("DEFER_IF_PERMIT"), "{a}");
    // Many rapid retries while the first write is still on its way.
    s.clock.advance(Duration::from_secs(61));
    let a = s.engine.decide(&req).await;
    assert!(a.starts_with("PREPEND X-Greylist"), "{a}");
    for _ in 0..20 {
        s.clock.advance(Duration::from_secs(1));
        assert_eq!(s.engine.decide(&req).await, "DUNNO");
    }
    s.settled().await;
    let now = s.clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let v = s.stored(TRIPLET).await;
    assert_eq!(v["last"], now, "the newest value is in the store: {v}");
    assert_eq!(v["passed"], true, "{v}");
    // And the engine, now reading the store, still knows the triplet passed.
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(s.engine.decide(&req).await, "DUNNO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_awl_value_lands_last() {
    let s = setup(CONFIG);
    // Two counted deliveries an hour apart whitelist the client.
    for (n, sender) in ["a@one.example", "b@two.example"].into_iter().enumerate() {
        let req = request("192.0.2.9", sender, "b@r.example");
        assert!(s.engine.decide(&req).await.starts_with("DEFER_IF_PERMIT"));
        s.clock.advance(Duration::from_secs(61));
        assert!(s.engine.decide(&req).await.starts_with("PREPEND"), "{n}");
        s.clock.advance(Duration::from_secs(3600));
    }
    // Hourly refreshes of the whitelisted client, faster than the first
    // write of the entry reaches the store.
    for n in 0..10 {
        let req = request("192.0.2.9", &format!("x{n}@fresh.example"), "b@r.example");
        assert_eq!(s.engine.decide(&req).await, "DUNNO", "visit {n}");
        s.clock.advance(Duration::from_secs(3600));
    }
    s.settled().await;
    let v = s.stored("greyawl:192.0.2.0/24").await;
    assert_eq!(v["count"], 12, "the newest count is in the store: {v}");
    assert!(s.store.writes.load(Ordering::SeqCst) > 0);
}
