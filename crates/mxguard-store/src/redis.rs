//! The Redis backend: one server (TCP or unix socket, optionally a read
//! replica beside it) or a Redis Cluster, so several MX hosts share
//! greylisting, bans, rate limits, the classifier and the history.
//!
//! Why the `redis` crate (1.x, BSD-3-Clause): it is the maintained Rust
//! client, multiplexes concurrent requests on one connection (they are
//! pipelined on the wire without waiting for each other), reconnects by
//! itself (`ConnectionManager`), speaks Redis Cluster (slot routing,
//! MOVED/ASK redirects) and TLS through rustls, and its licence is
//! permissive. A RESP client of our own would have to grow all of that.
//!
//! Every Store primitive is one command or one script on one key, so each
//! is one round trip and atomic, on a single node as on a cluster (a
//! script touches only its own key, hence one slot): `incr` is INCRBY +
//! PEXPIRE-if-no-TTL in a script, `list_push` LPUSH + LTRIM in a script.
//! Multi-key calls (`get_many`, `set_many`) are one MGET or one pipeline
//! on a single node; on a cluster their commands go out at once and each
//! node answers its own keys, still one round trip of wall time. Keys are
//! not hash-tagged by kind: that would put every greylist triplet on one
//! node; each key hashes by itself, and no operation needs two keys in
//! one slot.
//!
//! Failure: every operation, connecting included, is bounded by
//! [`RedisOptions::timeout`]. After a failure (refused, dropped, timed
//! out) operations fail at once for a short back-off (a quarter second,
//! doubling to two seconds) instead of each waiting out the timeout, then
//! one goes through to probe; the first success ends the outage. The
//! first failure of a burst is logged, the rest counted and summed up when
//! Redis answers again. [`Store::writable`] says `Err` during the back-off,
//! so callers answer by their configured store failure without waiting.

use crate::redis_tls::{self, RedisTls};
use crate::{BoxFuture, Durability, Entries, ErrorKind, Purged, Result, Store, StoreError, Write};
use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Script, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// The first back-off after a failure; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// The longest back-off: how long operations may keep failing at once
/// after Redis is back.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Keys fetched per MGET when listing a prefix.
const SCAN_CHUNK: usize = 500;

/// INCRBY, then a TTL if the key has none (EXPIRE NX, on any Redis
/// version), answering the value as text: Lua numbers are doubles and
/// would round counters past 2^53.
const INCR_LUA: &str = r"
redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return redis.call('GET', KEYS[1])
";

/// LPUSH, then keep the newest ARGV[2] items.
const PUSH_LUA: &str = r"
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
";

/// Where and how to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// One URL: a single server (`redis://`, `rediss://`, `unix://`);
    /// several: the seed nodes of a Redis Cluster.
    pub urls: Vec<String>,
    /// A replica of the single server that reads go to.
    pub read_url: Option<String>,
    /// The longest one operation may take, connecting included.
    pub timeout: Duration,
    /// Put in front of every key (a namespace on a shared server).
    pub key_prefix: String,
    /// CA file, client certificate, insecure: for `rediss://` URLs.
    pub tls: RedisTls,
}

impl RedisOptions {
    /// A single server (or a cluster, for several URLs) with the default
    /// timeout (1 s) and no key prefix.
    pub fn new(urls: Vec<String>) -> RedisOptions {
        RedisOptions {
            urls,
            read_url: None,
            timeout: Duration::from_secs(1),
            key_prefix: String::new(),
            tls: RedisTls::default(),
        }
    }
}

/// One connection, to a single server or to a cluster. Both multiplex:
/// clones share the connection.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection with its liveness token (see [`Link::conn`]); dropping the
/// slot ends the task holding the token.
struct Slot {
    conn: Conn,
    alive: Weak<()>,
    _end: tokio::sync::oneshot::Sender<()>,
}

/// How to (re)make a [`Conn`].
enum Connector {
    Single(Box<redis::Client>),
    Cluster(Box<ClusterClient>),
}

/// One server (or the cluster) and its connection, made on first use and
/// again after a failed attempt.
struct Link {
    /// The URL without its password, for messages.
    shown: String,
    connector: Connector,
    /// The connection, and a token held by a task on the runtime that
    /// made it: the connection's driver task lives on that runtime, so
    /// once it has shut down (a CLI command's first runtime) the token is
    /// gone and the next operation connects again.
    conn: Mutex<Option<Slot>>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    timeout: Duration,
    /// Whether this server answers: a replica keeps serving reads while
    /// the primary is down.
    health: Health,
}

impl Link {
    async fn conn(&self) -> std::result::Result<Conn, RedisError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let c = match &self.connector {
            Connector::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Conn::Single(client.get_connection_manager_with_config(config).await?)
            }
            Connector::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
        };
        let token = Arc::new(());
        let alive = Arc::downgrade(&token);
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _token = token;
            let _ = ended.await;
        });
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(Slot {
            conn: c.clone(),
            alive,
            _end: end,
        });
        Ok(c)
    }

    fn current(&self) -> Option<Conn> {
        let slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(s) if s.alive.strong_count() > 0 => Some(s.conn.clone()),
            _ => None,
        }
    }
}

/// Whether Redis answers, for the back-off, `writable` and the log.
#[derive(Default)]
struct Health {
    /// Set while an outage is open: the fast path of every operation
    /// reads only this.
    down: AtomicBool,
    state: Mutex<Outage>,
    /// Operations that failed on the backend (not on bad requests) since
    /// the store was opened.
    errors: AtomicU64,
}

#[derive(Default)]
struct Outage {
    /// Since when operations fail; `None` while Redis answers.
    since: Option<Instant>,
    /// Until when operations fail at once with `error`.
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Failures in this burst.
    count: u64,
    error: Option<StoreError>,
}

impl Health {
    /// The error to fail with at once during a back-off.
    fn refuse(&self) -> Option<StoreError> {
        if !self.down.load(Ordering::Acquire) {
            return None;
        }
        let o = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match (o.retry_at, &o.error) {
            (Some(t), Some(e)) if Instant::now() < t => Some(e.clone()),
            _ => None,
        }
    }

    fn failed(&self, e: &StoreError, describe: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut o = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        o.count += 1;
        self.down.store(true, Ordering::Release);
        if o.since.is_none() {
            o.since = Some(now);
            o.backoff = BACKOFF_FIRST;
            tracing::error!(
                "{e}; until {describe} answers again, store operations fail at once (the milter and \
                 policy server answer by [policy] store_failure); further failures are counted"
            );
        } else {
            o.backoff = (o.backoff * 2).min(BACKOFF_MAX);
        }
        o.retry_at = Some(now + o.backoff);
        o.error = Some(e.clone());
    }

    fn succeeded(&self, describe: &str) {
        if !self.down.load(Ordering::Acquire) {
            return;
        }
        let mut o = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = o.since.take() {
            tracing::warn!(
                store_errors = o.count,
                "{describe} answers again after {} failed operations in {:.1} s",
                o.count,
                since.elapsed().as_secs_f64()
            );
            *o = Outage::default();
            self.down.store(false, Ordering::Release);
        }
    }

    fn writable(&self) -> Result<()> {
        self.refuse().map_or(Ok(()), Err)
    }
}

/// The Redis store. Cheap to share as `Arc<dyn Store>`.
pub struct RedisStore {
    write: Link,
    /// A replica for reads; `None`: reads go to `write`.
    read: Option<Link>,
    cluster: bool,
    prefix: String,
    timeout: Duration,
    incr_script: Script,
    push_script: Script,
    /// The first URL, to reach a cluster's masters one by one (SCAN).
    seed: String,
    /// For the links to those masters.
    tls: RedisTls,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.write.shown)
            .finish_non_exhaustive()
    }
}

/// `url` with its password replaced by `***`, for logs and messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.split_once('@') {
        Some((a, h)) if !a.contains('/') => (Some(a), h),
        _ => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(a) = auth {
        match a.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:***@")),
            None => out.push_str("***@"),
        }
    }
    // unix:// URLs carry the password as a query parameter.
    match host.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("pass" | "password", _)) => {
                        format!("{}=***", kv.split('=').next().unwrap_or(""))
                    }
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&format!("{path}?{}", q.join("&")));
        }
        None => out.push_str(host),
    }
    out
}

fn open_error(url: &str, e: &RedisError) -> StoreError {
    StoreError::new(
        ErrorKind::Open,
        format!(
            "[store] url: cannot use the Redis URL {}: {e}; write redis://[user:password@]host:port/db, rediss://… (TLS) or unix:///path/to/redis.sock?db=N",
            redact(url)
        ),
    )
}

fn single_link(url: &str, timeout: Duration, tls: &RedisTls) -> Result<Link> {
    let client = if url.starts_with("rediss://") {
        tls.client(url)?
    } else {
        redis::Client::open(url).map_err(|e| open_error(url, &e))?
    };
    Ok(Link {
        shown: redact(url),
        connector: Connector::Single(Box::new(client)),
        conn: Mutex::new(None),
        connecting: tokio::sync::Mutex::new(()),
        timeout,
        health: Health::default(),
    })
}

impl RedisStore {
    /// Checks the URLs and makes the store; nothing is connected yet (the
    /// first operation connects), so `serve` starts while Redis is down and
    /// answers by its store-failure setting until it is up. See
    /// [`RedisStore::connect`] to fail at once instead.
    pub fn open(options: RedisOptions) -> Result<RedisStore> {
        let timeout = options.timeout.max(Duration::from_millis(1));
        let Some(first) = options.urls.first().cloned() else {
            return Err(StoreError::new(
                ErrorKind::Open,
                "[store] url names no Redis server; give one URL, or a list of Redis Cluster nodes",
            ));
        };
        let cluster = options.urls.len() > 1;
        let any_tls = options
            .urls
            .iter()
            .chain(options.read_url.as_ref())
            .any(|u| u.starts_with("rediss://"));
        if options.tls.is_set() && !any_tls {
            return Err(StoreError::new(
                ErrorKind::Open,
                "[store] tls_ca_file, tls_cert_file, tls_key_file and tls_insecure are for TLS: give a rediss:// url, or leave them out",
            ));
        }
        if any_tls && options.tls.insecure {
            tracing::warn!(
                "[store] tls_insecure = true: the Redis server's certificate is not checked, anyone between here and Redis can read and change the store; give tls_ca_file instead"
            );
        }
        let write = if cluster {
            let mut builder = redis::cluster::ClusterClientBuilder::new(options.urls.clone())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1);
            if first.starts_with("rediss://") {
                builder = builder.certs(options.tls.certificates()?);
                if options.tls.insecure {
                    builder = builder.tls(redis::TlsMode::Insecure);
                }
            }
            let client = builder
                .build()
                .map_err(|e| open_error(&options.urls.join(", "), &e))?;
            Link {
                shown: format!(
                    "Redis Cluster {}",
                    options
                        .urls
                        .iter()
                        .map(|u| redact(u))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                connector: Connector::Cluster(Box::new(client)),
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                timeout,
                health: Health::default(),
            }
        } else {
            let mut l = single_link(&first, timeout, &options.tls)?;
            l.shown = format!("Redis {}", l.shown);
            l
        };
        let read = match &options.read_url {
            Some(u) if !cluster => {
                let mut l = single_link(u, timeout, &options.tls)?;
                l.shown = format!("Redis replica {}", l.shown);
                Some(l)
            }
            _ => None,
        };
        Ok(RedisStore {
            write,
            read,
            cluster,
            prefix: options.key_prefix,
            timeout,
            incr_script: Script::new(INCR_LUA),
            push_script: Script::new(PUSH_LUA),
            seed: first,
            tls: options.tls,
        })
    }

    /// [`RedisStore::open`], then one PING to the write server (and the
    /// read server): an error names the server and says what to check.
    /// For commands that cannot wait for Redis (`mxguard store copy`).
    pub async fn connect(options: RedisOptions) -> Result<RedisStore> {
        let s = RedisStore::open(options)?;
        s.ping().await?;
        Ok(s)
    }

    /// One PING to every server the store uses.
    pub async fn ping(&self) -> Result<()> {
        let mut links = vec![&self.write];
        links.extend(self.read.as_ref());
        for link in links {
            self.run(link, "PING", "", move |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await?;
        }
        Ok(())
    }

    /// Backend failures (refused, dropped, timed out, Redis errors other
    /// than a bad request) since the store was opened.
    pub fn errors(&self) -> u64 {
        self.write.health.errors.load(Ordering::Relaxed)
            + self
                .read
                .as_ref()
                .map_or(0, |r| r.health.errors.load(Ordering::Relaxed))
    }

    /// The key as stored in Redis.
    fn key(&self, key: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key);
        k
    }

    fn reader(&self) -> &Link {
        self.read.as_ref().unwrap_or(&self.write)
    }

    /// Runs `op` on `link`'s connection within the timeout, through the
    /// back-off, turning Redis errors into store errors that name the
    /// server, the operation and the key.
    async fn run<T, F, Fut>(&self, link: &Link, what: &str, key: &str, op: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, RedisError>>,
    {
        if let Some(e) = link.health.refuse() {
            return Err(e);
        }
        let attempt = async {
            let c = link.conn().await?;
            op(c).await
        };
        let outcome = tokio::time::timeout(self.timeout, attempt).await;
        match outcome {
            Ok(Ok(v)) => {
                link.health.succeeded(&link.shown);
                Ok(v)
            }
            Ok(Err(e)) => {
                let (kind, e) = self.error(link, what, key, &e);
                if kind == ErrorKind::Backend {
                    link.health.failed(&e, &link.shown);
                } else {
                    // A bad request: Redis answered, so it works.
                    link.health.succeeded(&link.shown);
                }
                Err(e)
            }
            Err(_) => {
                let e = StoreError::new(
                    ErrorKind::Backend,
                    format!(
                        "{} did not answer {what}{} within {} ms ([store] timeout); check that redis-server runs and is reachable (redis-cli ping): mxguard retries by itself",
                        link.shown,
                        shown_key(key),
                        self.timeout.as_millis()
                    ),
                );
                link.health.failed(&e, &link.shown);
                Err(e)
            }
        }
    }

    fn error(&self, link: &Link, what: &str, key: &str, e: &RedisError) -> (ErrorKind, StoreError) {
        let text = e.to_string();
        let k = shown_key(key);
        if text.contains("WRONGTYPE") {
            return (
                ErrorKind::Invalid,
                StoreError::new(
                    ErrorKind::Invalid,
                    format!(
                        "{what}{k} in {}: the key holds another kind of value (a list where a string is expected, or the reverse); nothing was written; delete the key",
                        link.shown
                    ),
                ),
            );
        }
        if text.contains("not an integer") || text.contains("overflow") {
            return (
                ErrorKind::Invalid,
                StoreError::new(
                    ErrorKind::Invalid,
                    format!(
                        "{what}{k} in {}: the value is not an integer or the sum would overflow ({text}); nothing was written",
                        link.shown
                    ),
                ),
            );
        }
        let hint = if ["NOAUTH", "WRONGPASS", "NOPERM", "uthentication"]
            .iter()
            .any(|w| text.contains(w))
        {
            "check the user and password in [store] url and the ACL of that user (ACL LIST)"
        } else if let Some(h) = redis_tls::hint(&text) {
            h
        } else if text.contains("OOM") {
            "Redis is out of memory: raise its maxmemory or free keys"
        } else {
            "check that redis-server runs and is reachable (redis-cli ping): mxguard retries by itself"
        };
        (
            ErrorKind::Backend,
            StoreError::new(
                ErrorKind::Backend,
                format!("{} failed {what}{k}: {text}; {hint}", link.shown),
            ),
        )
    }

    /// Every string key under `pattern` (a SCAN MATCH pattern) on one
    /// server, visiting the whole keyspace in bounded steps.
    async fn scan_keys(&self, link: &Link, pattern: &str, kind: &str) -> Result<Vec<Vec<u8>>> {
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let pat = pattern.to_string();
            let (next, batch): (u64, Vec<Vec<u8>>) = self
                .run(link, "SCAN", pattern, move |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pat)
                        .arg("COUNT")
                        .arg(1000)
                        .arg("TYPE")
                        .arg(kind)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                return Ok(keys);
            }
        }
    }

    /// Every list key (without the key prefix), sorted: for `store copy`.
    pub(crate) async fn list_keys(&self) -> Result<Vec<String>> {
        let pattern = glob_prefix(&self.prefix);
        let holders;
        let links: Vec<&Link> = if self.cluster {
            holders = self.masters().await?;
            holders.iter().collect()
        } else {
            vec![self.reader()]
        };
        let mut out = Vec::new();
        for link in links {
            for k in self.scan_keys(link, &pattern, "list").await? {
                if let Ok(k) = String::from_utf8(k) {
                    out.push(k.strip_prefix(&self.prefix).unwrap_or(&k).to_string());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// What is left of `key`'s TTL in ms: `None` if it has none, `Some(0)`
    /// if it is gone.
    pub(crate) async fn pttl(&self, key: &str) -> Result<Option<i64>> {
        let k = self.key(key);
        let ms: i64 = self
            .run(&self.write, "PTTL", key, move |mut c| async move {
                redis::cmd("PTTL").arg(&k).query_async(&mut c).await
            })
            .await?;
        Ok(match ms {
            -1 => None,
            -2 => Some(0),
            ms => Some(ms.max(0)),
        })
    }

    /// The masters of the cluster, as links (SCAN visits each).
    async fn masters(&self) -> Result<Vec<Link>> {
        let slots: Value = self
            .run(&self.write, "CLUSTER SLOTS", "", move |mut c| async move {
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await
            })
            .await?;
        let mut addrs: Vec<(String, u16)> = Vec::new();
        if let Value::Array(ranges) = slots {
            for r in ranges {
                let Value::Array(parts) = r else { continue };
                let Some(Value::Array(master)) = parts.get(2) else {
                    continue;
                };
                let host = match master.first() {
                    Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(Value::SimpleString(s)) => s.clone(),
                    _ => continue,
                };
                let Some(Value::Int(port)) = master.get(1) else {
                    continue;
                };
                let Ok(port) = u16::try_from(*port) else {
                    continue;
                };
                if !addrs.contains(&(host.clone(), port)) {
                    addrs.push((host, port));
                }
            }
        }
        addrs
            .into_iter()
            .map(|(h, p)| {
                let url = with_address(&self.seed, &h, p);
                single_link(&url, self.timeout, &self.tls)
            })
            .collect()
    }

    /// Values of `keys` (stored names) from `link`, in order.
    async fn mget(&self, link: &Link, keys: &[String], what: &str) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if !self.cluster {
            let first = keys.first().cloned().unwrap_or_default();
            return self
                .run(link, what, &first, move |mut c| async move {
                    redis::cmd("MGET").arg(keys).query_async(&mut c).await
                })
                .await;
        }
        // Each key on its own slot: the GETs go out together on the
        // multiplexed connection, each node answering its own.
        let gets = keys.iter().map(|k| {
            self.run(link, what, k, move |mut c| async move {
                redis::cmd("GET")
                    .arg(k)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
        });
        join_all(gets).await.into_iter().collect()
    }
}

/// `url` with its host and port replaced (credentials, scheme and
/// database kept): a cluster master reached with the seed's settings.
fn with_address(url: &str, host: &str, port: u16) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("redis://{host}:{port}");
    };
    let (auth, after) = match rest.split_once('@') {
        Some((a, h)) if !a.contains('/') => (format!("{a}@"), h),
        _ => (String::new(), rest),
    };
    let tail = after.find(['/', '?']).map_or("", |i| &after[i..]);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("{scheme}://{auth}{host}:{port}{tail}")
}

fn shown_key(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" on `{key}`")
    }
}

/// A SCAN MATCH pattern for keys starting with `prefix`.
fn glob_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 2);
    for ch in prefix.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('*');
    p
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store for RedisStore {
    fn describe(&self) -> String {
        match &self.read {
            Some(r) => format!("{} (reads from {})", self.write.shown, r.shown),
            None => self.write.shown.clone(),
        }
    }

    fn writable(&self) -> Result<()> {
        self.write.health.writable()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let k = self.key(key);
            self.run(self.reader(), "GET", key, move |mut c| async move {
                redis::cmd("GET").arg(&k).query_async(&mut c).await
            })
            .await
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            let stored: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
            self.mget(self.reader(), &stored, "MGET").await
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let k = self.key(key);
            self.run(&self.write, "SET", key, move |mut c| async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&k).arg(value);
                if let Some(t) = ttl {
                    cmd.arg("PX").arg(ttl_ms(t));
                }
                cmd.query_async::<()>(&mut c).await
            })
            .await
        })
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
        _durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(());
            }
            let set = |k: &str, v: &[u8]| {
                let mut cmd = redis::cmd("SET");
                cmd.arg(k).arg(v);
                if let Some(t) = ttl {
                    cmd.arg("PX").arg(ttl_ms(t));
                }
                cmd
            };
            if self.cluster {
                let sets = entries.iter().map(|(k, v)| {
                    let cmd = set(&self.key(k), v);
                    self.run(&self.write, "SET", k, move |mut c| async move {
                        cmd.query_async::<()>(&mut c).await
                    })
                });
                return join_all(sets).await.into_iter().collect();
            }
            let mut pipe = redis::pipe();
            for (k, v) in entries {
                pipe.add_command(set(&self.key(k), v)).ignore();
            }
            let first = entries.first().map_or("", |(k, _)| *k);
            self.run(
                &self.write,
                "SET (pipelined)",
                first,
                move |mut c| async move { pipe.query_async::<()>(&mut c).await },
            )
            .await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let k = self.key(key);
            let n: i64 = self
                .run(&self.write, "DEL", key, move |mut c| async move {
                    redis::cmd("DEL").arg(&k).query_async(&mut c).await
                })
                .await?;
            Ok(n > 0)
        })
    }

    fn incr<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let k = self.key(key);
            let ms = ttl.map_or(0, ttl_ms);
            let text: Vec<u8> = self
                .run(&self.write, "INCRBY", key, move |mut c| async move {
                    self.incr_script
                        .key(&k)
                        .arg(by)
                        .arg(ms)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            std::str::from_utf8(&text)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    StoreError::new(
                        ErrorKind::Corrupt,
                        format!(
                            "{} answered INCRBY on `{key}` with something not a number; delete that key",
                            self.write.shown
                        ),
                    )
                })
        })
    }

    /// One pipeline on a single server, whatever the number of writes (the
    /// trait's default would make one round trip each: the scan service's
    /// batch of a hundred history rows and its counters cost a hundred
    /// round trips). Each command is applied or refused on its own, as the
    /// trait asks; the first refusal is returned. Pushes in a row to one
    /// list with one bound become one LPUSH of them all (oldest first, so
    /// the last ends newest, as one by one) and one LTRIM; counters run the
    /// `incr` script by EVAL. On a cluster they go one by one (each key on
    /// its own node).
    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write<'a>],
        _durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if writes.is_empty() {
                return Ok(());
            }
            if self.cluster {
                // Keys live on their own nodes: one by one, in order (as
                // the trait's default), so pushes to one list keep theirs.
                let mut first = Ok(());
                for w in writes {
                    let done = match *w {
                        Write::Set { key, value, ttl } => self.set(key, value, ttl).await,
                        Write::Incr { key, by, ttl } => self.incr(key, by, ttl).await.map(|_| ()),
                        Write::Push {
                            key,
                            value,
                            max_len,
                        } => self.list_push(key, value, max_len).await,
                    };
                    if first.is_ok() {
                        first = done;
                    }
                }
                return first;
            }
            let mut pipe = redis::pipe();
            // The write each pipeline command belongs to, by its key: a
            // refusal names the key it was about.
            let mut keys: Vec<&str> = Vec::with_capacity(writes.len() + 1);
            let mut rest = writes;
            while let Some((w, after)) = rest.split_first() {
                rest = after;
                match *w {
                    Write::Set { key, value, ttl } => {
                        let cmd = pipe.cmd("SET").arg(self.key(key)).arg(value);
                        if let Some(t) = ttl {
                            cmd.arg("PX").arg(ttl_ms(t));
                        }
                        cmd.ignore();
                        keys.push(key);
                    }
                    Write::Incr { key, by, ttl } => {
                        pipe.cmd("EVAL")
                            .arg(INCR_LUA)
                            .arg(1)
                            .arg(self.key(key))
                            .arg(by)
                            .arg(ttl.map_or(0, ttl_ms))
                            .ignore();
                        keys.push(key);
                    }
                    Write::Push {
                        key,
                        value,
                        max_len,
                    } => {
                        let k = self.key(key);
                        let push = pipe.cmd("LPUSH").arg(&k).arg(value);
                        while let Some((
                            Write::Push {
                                key: next,
                                value,
                                max_len: bound,
                            },
                            after,
                        )) = rest.split_first()
                            && *next == key
                            && *bound == max_len
                        {
                            push.arg(*value);
                            rest = after;
                        }
                        push.ignore();
                        let keep = u64::try_from(max_len.max(1))
                            .unwrap_or(u64::MAX)
                            .min(i64::MAX as u64);
                        pipe.cmd("LTRIM").arg(&k).arg(0).arg(keep - 1).ignore();
                        keys.extend([key, key]);
                    }
                }
            }
            let shown = keys.first().copied().unwrap_or("");
            const WHAT: &str = "a batch of writes (pipelined)";
            // Redis answering a command with an error is a refusal of that
            // write, not a fault of the link.
            let refused = self
                .run(&self.write, WHAT, shown, move |mut c| async move {
                    match pipe.query_async::<()>(&mut c).await {
                        Ok(()) => Ok(None),
                        Err(e) => match e.clone().into_server_errors() {
                            Some(errors) if !errors.is_empty() => Ok(Some(errors[0].clone())),
                            _ => Err(e),
                        },
                    }
                })
                .await?;
            match refused {
                None => Ok(()),
                Some((at, e)) => {
                    let key = keys.get(at).copied().unwrap_or(shown);
                    Err(self.error(&self.write, WHAT, key, &RedisError::from(e)).1)
                }
            }
        })
    }

    fn list_push<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let k = self.key(key);
            let keep = u64::try_from(max_len.max(1))
                .unwrap_or(u64::MAX)
                .min(i64::MAX as u64);
            self.run(&self.write, "LPUSH", key, move |mut c| async move {
                self.push_script
                    .key(&k)
                    .arg(value)
                    .arg(keep)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            })
            .await
        })
    }

    fn list_range<'a>(
        &'a self,
        key: &'a str,
        start: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let Ok(first) = i64::try_from(start) else {
                return Ok(Vec::new());
            };
            if count == 0 {
                return Ok(Vec::new());
            }
            let last = i64::try_from(count - 1)
                .ok()
                .and_then(|c| first.checked_add(c))
                .unwrap_or(-1);
            let k = self.key(key);
            self.run(self.reader(), "LRANGE", key, move |mut c| async move {
                redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(first)
                    .arg(last)
                    .query_async(&mut c)
                    .await
            })
            .await
        })
    }

    fn list_len<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move {
            let k = self.key(key);
            self.run(self.reader(), "LLEN", key, move |mut c| async move {
                redis::cmd("LLEN").arg(&k).query_async(&mut c).await
            })
            .await
        })
    }

    fn scan_prefix<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, Result<Entries>> {
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let pattern = glob_prefix(&self.key(prefix));
            let holders;
            let links: Vec<&Link> = if self.cluster {
                holders = self.masters().await?;
                holders.iter().collect()
            } else {
                vec![self.reader()]
            };
            let mut out = Vec::new();
            for link in links {
                let mut keys: Vec<String> = self
                    .scan_keys(link, &pattern, "string")
                    .await?
                    .into_iter()
                    // A foreign key that is not UTF-8 is no key of ours.
                    .filter_map(|k| String::from_utf8(k).ok())
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                for chunk in keys.chunks(SCAN_CHUNK) {
                    let values = if self.cluster {
                        // Not one MGET: the keys of one master span slots.
                        let gets = chunk.iter().map(|k| {
                            self.run(link, "GET", k, move |mut c| async move {
                                redis::cmd("GET")
                                    .arg(k)
                                    .query_async::<Option<Vec<u8>>>(&mut c)
                                    .await
                            })
                        });
                        join_all(gets)
                            .await
                            .into_iter()
                            .collect::<Result<Vec<_>>>()?
                    } else {
                        self.mget(link, chunk, "MGET").await?
                    };
                    for (k, v) in chunk.iter().zip(values) {
                        // Gone (expired) since the scan: not listed.
                        if let Some(v) = v {
                            let key = k.strip_prefix(&self.prefix).unwrap_or(k).to_string();
                            out.push((key, v));
                        }
                    }
                    if !self.cluster && out.len() >= limit {
                        break;
                    }
                }
            }
            out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.truncate(limit);
            Ok(out)
        })
    }

    /// Redis expires keys by itself: nothing to do.
    fn purge_expired(&self, _limit: usize) -> BoxFuture<'_, Result<Purged>> {
        Box::pin(async { Ok(Purged::default()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://mx:secret@10.0.0.1:6379/2"),
            "redis://mx:***@10.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(
            redact("unix:///run/redis.sock?db=1&pass=secret&user=mx"),
            "unix:///run/redis.sock?db=1&pass=***&user=mx"
        );
    }

    #[test]
    fn cluster_masters_keep_the_seed_settings() {
        assert_eq!(
            with_address("redis://u:p@127.0.0.1:7001/0", "10.1.1.1", 7002),
            "redis://u:p@10.1.1.1:7002/0"
        );
        assert_eq!(
            with_address("rediss://h:7001", "::1", 7003),
            "rediss://[::1]:7003"
        );
    }

    #[test]
    fn scan_patterns_match_the_prefix_literally() {
        assert_eq!(glob_prefix("grey:"), "grey:*");
        assert_eq!(glob_prefix("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }
}
