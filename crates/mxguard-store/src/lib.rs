//! mxguard-store: all of mxguard's persistent state, behind one interface.
//!
//! It owns the [`Store`] trait, its embedded backend ([`EmbeddedStore`],
//! one redb file) and the typed operations built once on top of any backend
//! ([`History`], [`Counters`]). Greylist triplets, bans, rate limits and the
//! classifier model use the same primitives. It knows nothing about mail or
//! checks: callers decide what a key means, this crate only keeps it safe.
//!
//! The primitives are the ones both an embedded file and Redis do well:
//! get/set with a time-to-live (several keys in one write: MSET), atomic counters whose TTL is set when they
//! are created (INCRBY + EXPIRE NX: a rate-limit window), bounded lists
//! (LPUSH + LTRIM), prefix scans for admin listings, and blobs. The trait
//! is async with boxed futures, so it is object-safe (`Arc<dyn Store>`) and
//! a Redis backend (single node or Cluster) can be added behind it without
//! touching callers.
//!
//! # Keys
//!
//! Keys are UTF-8 strings `<kind>:<id>`, the kind naming the owner:
//!
//! | key | kind of value |
//! |---|---|
//! | `history` | list of JSON [`HistoryRow`]s, newest first |
//! | `counter:<name>` | counter ([`Counters`]) |
//! | `bayes:<…>` | classifier model, version, lock, learned messages |
//! | `grey:<client>/<sender>/<rcpt>` (or its digest) | greylist triplet |
//! | `sgrey:<sha256 hex>` | score greylisting entry of one message (JSON `{first, last, passed}`, `mxguard_scan::greylist`) |
//! | `greyawl:<client>` | greylist auto-whitelist entry (JSON `{count, last}`, as postgrey's clients database) |
//! | `ban:<ip>` | ban record |
//! | `rate:<name>:<value>:<window>:<bucket>` | rate-limit window (an `incr` with a TTL) |
//! | `dmarc:<kind>:<day>:<domain>[:<row>]` | DMARC report rows, counts, policy and send state (`mxguard_auth::report::store`) |
//!
//! A key holds one kind of value: a string/counter or a list, never both
//! (Redis would answer WRONGTYPE). Do not scan a prefix that covers lists.
//!
//! Redis Cluster puts keys in slots by hash. Every primitive touches one
//! key (a single command or a script on that key), so it is atomic on a
//! cluster too. Multi-key calls ([`Store::get_many`], [`Store::set_many`])
//! need no atomicity: the Redis backend sends their per-key commands at
//! once and each node answers its own (see [`redis`]). Keys are not
//! hash-tagged by kind, which would put every greylist triplet on one node.
//! A prefix scan visits every master: it is for admin listings only, never
//! for the per-message path.

mod absent;
pub mod check;
pub mod copy;
mod disk;
mod embedded;
mod error;
mod file;
mod guard;
pub mod redis;
mod redis_tls;
mod typed;
mod writer;

pub use disk::DiskFaults;
pub use embedded::{
    Clock, EmbeddedStore, ManualClock, Options, RELAXED_WINDOW, SystemClock, WriterStats,
};
pub use error::{ErrorKind, StoreError};
pub use redis::{RedisOptions, RedisStore};
pub use redis_tls::RedisTls;
pub use typed::{COUNTER_PREFIX, Counters, HISTORY_KEY, History, HistoryRow};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so [`Store`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Keys with their values, from a prefix scan.
pub type Entries = Vec<(String, Vec<u8>)>;

/// How soon a write must be on disk once it is acknowledged.
///
/// [`Durability::Relaxed`] is for state whose loss in a crash costs little
/// and that is written often: history rows, counters, greylist triplets
/// (a lost triplet is one more deferral, as with postgrey, which does not
/// sync per request). A relaxed write is committed and visible to every
/// read when its future resolves, but not yet on disk: a power cut or a
/// `kill -9` may lose the relaxed writes of the last second or so. A
/// clean close loses nothing. The embedded store makes them durable at the
/// next durable write, at the latest [`Options::relaxed_window`] (1 s)
/// after the first of them, and on close; a backend that cannot relax
/// writes makes them durable at once (the trait's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// On disk when acknowledged (fsynced): the default.
    #[default]
    Immediate,
    /// Acknowledged when committed; on disk within about a second.
    Relaxed,
}

/// One write of a [`Store::write_batch`], with the meaning of the
/// single-write method it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// [`Store::set`]: a value, expiring after `ttl` or never.
    Set {
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    },
    /// [`Store::incr`]: INCRBY + EXPIRE NX.
    Incr {
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
    },
    /// [`Store::list_push`]: LPUSH + LTRIM to `max_len`.
    Push {
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
    },
}

/// What one [`Store::purge_expired`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired entries removed.
    pub removed: usize,
    /// The call stopped at its bound before it had looked at everything:
    /// call again to go on (after letting other work through).
    pub more: bool,
}

/// The state interface every backend implements.
///
/// A write future resolves `Ok` only once the write is durable (for the
/// embedded backend: committed and fsynced), unless it asked for
/// [`Durability::Relaxed`]. Requests are sent on the first
/// poll, so dropping a write future after that does not undo the write, as
/// with a command already sent to Redis.
///
/// Expired entries are absent to every read at once; [`Store::purge_expired`]
/// only reclaims their space.
pub trait Store: Send + Sync {
    /// What and where this store is (`embedded store /var/lib/mxguard/mxguard.redb`),
    /// for logs and error messages.
    fn describe(&self) -> String;

    /// The value of a string or counter key.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;

    /// Several keys in one round trip (Redis MGET), in the order asked.
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>>;

    /// Sets a value. `ttl` makes it expire; `None` makes it permanent (and
    /// clears an earlier TTL, like Redis SET).
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Sets several values with one TTL, all in one write (MSET with the
    /// TTL, in one round trip, on Redis): one write request to the
    /// embedded store's writer whatever their number. With
    /// [`Durability::Relaxed`] see its loss window. The default sets them
    /// one by one, durably.
    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
        durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = durability;
        Box::pin(async move {
            for (key, value) in entries {
                self.set(key, value, ttl).await?;
            }
            Ok(())
        })
    }

    /// Several writes of different kinds in one round trip: what a caller
    /// records per event (the scan service: a history row and two
    /// counters per message) costs one request to the embedded store's
    /// writer instead of one each (a Redis backend: one pipeline). Each
    /// write is applied or refused on its own, as in a Redis pipeline (not
    /// MULTI): one that fails (a counter key holding text) does not undo
    /// the others, and the first failure is returned. Counters' new values
    /// are not returned. The default applies them one by one with the
    /// single-write methods, going on past a failure.
    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write<'a>],
        durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut first = Ok(());
            for w in writes {
                let done = match *w {
                    Write::Set { key, value, ttl } => {
                        self.set_many(&[(key, value)], ttl, durability).await
                    }
                    Write::Incr { key, by, ttl } => {
                        self.incr_with(key, by, ttl, durability).await.map(|_| ())
                    }
                    Write::Push {
                        key,
                        value,
                        max_len,
                    } => self.list_push_with(key, value, max_len, durability).await,
                };
                if first.is_ok() {
                    first = done;
                }
            }
            first
        })
    }

    /// Removes a key of any kind (value, counter or list); true if it was there.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Adds `by` atomically and returns the new value; a missing key counts
    /// as 0. `ttl` is applied only when the key has no expiry (in practice,
    /// when it is created), so it measures a fixed window: INCRBY + EXPIRE
    /// NX. Counters are stored as decimal text (Redis-compatible). Errors
    /// ([`ErrorKind::Invalid`]) if the key holds something else or the sum
    /// overflows.
    fn incr<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>>;

    /// [`Store::incr`] with a [`Durability`]; the default is durable.
    fn incr_with<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
        durability: Durability,
    ) -> BoxFuture<'a, Result<i64>> {
        let _ = durability;
        self.incr(key, by, ttl)
    }

    /// [`Store::list_push`] with a [`Durability`]; the default is durable.
    fn list_push_with<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
        durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = durability;
        self.list_push(key, value, max_len)
    }

    /// Pushes to the front of a list and keeps the newest `max_len` items
    /// (at least one): LPUSH + LTRIM.
    fn list_push<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
    ) -> BoxFuture<'a, Result<()>>;

    /// Up to `count` items, newest first, skipping the `start` newest.
    fn list_range<'a>(
        &'a self,
        key: &'a str,
        start: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>>>;

    /// How many items a list holds (0 if it does not exist).
    fn list_len<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize>>;

    /// String and counter keys starting with `prefix`, with their values,
    /// in key order, at most `limit`. For admin listings: it is not cheap on
    /// Redis Cluster.
    fn scan_prefix<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, Result<Entries>>;

    /// Reclaims expired entries, at most `limit` (at least 1) per call, and
    /// says how many and whether to call again. Reads already ignore them;
    /// `mxguard serve` calls this chunk after chunk every few minutes. A
    /// call is one short write: it goes on where the previous one stopped,
    /// so calls until `more` is false make one pass over the store. (Redis
    /// expires keys itself and returns nothing removed, no more.)
    fn purge_expired(&self, limit: usize) -> BoxFuture<'_, Result<Purged>>;

    /// Whether writes are expected to work now: `Err` with the error they
    /// currently fail with (a full disk: [`ErrorKind::Backend`]; a damaged
    /// file found on reopening: [`ErrorKind::Corrupt`]). Cheap (no I/O), so
    /// callers can ask per request, and decide what to answer without
    /// waiting for a write to fail. It turns `Ok` again by itself once the
    /// backend takes writes again. A Redis backend answers from its
    /// connection's state; a backend that cannot tell answers `Ok` (the
    /// default) and lets its writes fail.
    fn writable(&self) -> Result<()> {
        Ok(())
    }
}
