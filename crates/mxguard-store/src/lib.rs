//! mxguard-store: all persistent state, behind one interface.
//!
//! It owns the [`Store`] trait, its embedded backend ([`EmbeddedStore`],
//! redb) and the typed operations built once on top of any backend
//! ([`History`], [`Counters`]). Later: greylist triplets, bans, rate limits
//! and the classifier model use the same primitives. It knows nothing about
//! mail or checks.
//!
//! The primitives are the ones both an embedded file and Redis do well:
//! get/set with a time-to-live, atomic counters with a TTL set on creation
//! (INCRBY + EXPIRE NX), bounded lists (LPUSH + LTRIM), prefix scans for
//! admin listings, and blobs. The trait is async (boxed futures, so it is
//! object-safe as `Arc<dyn Store>`) so that a Redis backend can be added
//! behind it without touching callers.
//!
//! Key naming: `<kind>:<id>`, e.g. `history`, `counter:scanned`,
//! `grey:<client>/<sender>/<rcpt>`, `ban:<ip>`, `rate:<key>:<window>:<bucket>`.
//! A Redis Cluster backend will hash-tag the kind (`{grey}:…`) where
//! multi-key operations need one slot.

mod embedded;
mod typed;

pub use embedded::EmbeddedStore;
pub use typed::{Counters, History, HistoryRow};

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store operation failed. The message names the store and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Keys with their values, from a prefix scan.
pub type Entries = Vec<(String, Vec<u8>)>;

/// The state interface every backend implements.
pub trait Store: Send + Sync {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;
    /// Several keys in one round trip (Redis MGET), in the order asked.
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>>;
    /// Sets a value; `ttl` makes it expire (reads treat it as absent after).
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Removes a key; true if it was there.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;
    /// Adds `by` atomically and returns the new value. The TTL is set only
    /// when the counter is created, so it measures a fixed window.
    fn incr<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>>;
    /// Pushes to the front of a list and keeps at most `max_len` items.
    fn list_push<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
    ) -> BoxFuture<'a, Result<()>>;
    /// Up to `count` items from `start`, newest first.
    fn list_range<'a>(
        &'a self,
        key: &'a str,
        start: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>>>;
    /// Keys (with values) starting with `prefix`, in key order, at most `limit`.
    fn scan_prefix<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, Result<Entries>>;
    /// Removes expired entries; returns how many. Reads already ignore them.
    fn purge_expired(&self) -> BoxFuture<'_, Result<usize>>;
}
