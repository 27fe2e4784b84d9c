//! The embedded backend: one redb file, `mxguard.redb`, in the data directory.
//!
//! Why redb: it is pure Rust (SQLite needs a C build), ACID with durable
//! commits (an acknowledged write survives kill -9 and power loss), keeps
//! everything in one file, runs no background compaction threads (fjall is
//! an LSM tree with compaction threads, built for write-heavy loads we do
//! not have: a few writes per message), and has a small dependency tree.
//!
//! Writes go to one writer thread, which takes every pending request,
//! applies them in a single write transaction and commits once, durably
//! (group commit): under concurrency one fsync acknowledges many writes.
//! A caller's future resolves only after the commit that holds its write.
//! Reads open their own read transactions (MVCC snapshots) and never wait
//! for the writer. They run on the caller's thread: a redb read is a few
//! page lookups, mostly from its cache.
//!
//! Values carry their expiry (unix ms, 0 = never) in front, so a read can
//! tell an expired entry from a live one without a second lookup; purging
//! only reclaims space, a bounded chunk per transaction so it never holds
//! the writer (and the writes batched with it) for long. Lists are rows
//! keyed by (list, sequence number) plus a (next, oldest) head per list: a
//! push is two inserts and, when the list is full, one delete, whatever its
//! length.
//!
//! redb locks its file to one process (its default, exclusive mode): a
//! second process opening the same data directory gets
//! [`ErrorKind::InUse`] naming the file and the likely holder,
//! `mxguard serve`.

use crate::{BoxFuture, Entries, ErrorKind, Purged, Result, Store, StoreError};
use redb::{
    Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageError, TableDefinition,
};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The store's file inside the data directory.
const FILE_NAME: &str = "mxguard.redb";

/// key → expiry (unix ms, big-endian, 0 = never) ‖ value
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (list key, sequence number) → item
const LIST_ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("list_items");
/// list key → (next sequence number, oldest kept sequence number)
const LIST_META: TableDefinition<&str, (u64, u64)> = TableDefinition::new("list_meta");
/// Facts about the file itself: `format`.
const FILE_META: TableDefinition<&str, u64> = TableDefinition::new("mxguard_meta");

/// The layout above. A file from a newer mxguard is refused, not misread.
const FORMAT: u64 = 1;

/// redb's page cache. The working set (greylist triplets, counters, recent
/// history) is small, and resident memory matters on a small VPS.
const CACHE_BYTES: usize = 16 << 20;

/// Most requests applied in one transaction, so one huge burst does not
/// hold every caller until it is all written.
const MAX_BATCH: usize = 4096;

/// A purge looks at most this many entries per entry it may remove, so a
/// chunk stays short even when nearly everything is live.
const PURGE_SCAN_FACTOR: usize = 10;

/// Where TTLs get the time. Injectable so tests can expire entries without
/// sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's wall clock (expiries are absolute times, as in Redis).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock moved by hand, for tests of anything that reads time through a
/// [`Clock`] (the store's TTLs, greylisting, the purge task): days pass
/// without sleeping. It starts at the system time it was made at.
#[derive(Debug)]
pub struct ManualClock {
    base: SystemTime,
    offset_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: SystemTime::now(),
            offset_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(ms(by), Ordering::SeqCst);
    }

    /// Moves the clock back.
    pub fn back(&self, by: Duration) {
        self.offset_ms.fetch_sub(ms(by), Ordering::SeqCst);
    }

    /// Sets the clock to `offset` after its start.
    pub fn set(&self, offset: Duration) {
        self.offset_ms.store(ms(offset), Ordering::SeqCst);
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        let off = self.offset_ms.load(Ordering::SeqCst);
        let by = Duration::from_millis(off.unsigned_abs());
        if off >= 0 {
            self.base + by
        } else {
            self.base - by
        }
    }
}

/// What the writer has done since the store was opened. `writes / commits`
/// is the mean group-commit batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Durable commits (one fsync each).
    pub commits: u64,
    /// Write requests those commits held.
    pub writes: u64,
}

/// The embedded store. Cheap to share as `Arc<dyn Store>`; dropping the
/// last handle finishes pending writes and closes the file.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    writer: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// What the store handle and its writer thread share.
struct Inner {
    db: Database,
    path: PathBuf,
    clock: Arc<dyn Clock>,
    commits: AtomicU64,
    writes: AtomicU64,
}

enum Op {
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
    },
    Incr {
        key: String,
        by: i64,
        ttl: Option<Duration>,
    },
    Push {
        key: String,
        value: Vec<u8>,
        max_len: usize,
    },
    Purge {
        limit: usize,
    },
}

enum Reply {
    Unit,
    Bool(bool),
    Int(i64),
    Purged(Purged),
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Reply>>,
}

/// Why applying something failed: the backend itself (the transaction is
/// abandoned), or only this request (nothing of it was written).
enum Fail {
    Storage(redb::Error),
    Request(StoreError),
    /// redb checks sizes before it changes anything: a request failure.
    TooLarge(usize),
}

impl From<redb::Error> for Fail {
    fn from(e: redb::Error) -> Fail {
        match e {
            redb::Error::ValueTooLarge(n) => Fail::TooLarge(n),
            e => Fail::Storage(e),
        }
    }
}

macro_rules! fail_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Fail {
                Fail::from(redb::Error::from(e))
            }
        }
    )*};
}
fail_from!(
    StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

impl EmbeddedStore {
    /// Opens (or creates) `dir/mxguard.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        EmbeddedStore::open_with_clock(dir, Arc::new(SystemClock))
    }

    /// [`EmbeddedStore::open`] with another clock for TTLs (tests).
    pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::new(
                ErrorKind::Open,
                format!(
                    "cannot create the data directory {}: {e}; make it writable by the mxguard user, or set [store] data_dir or --data-dir to one that is",
                    dir.display()
                ),
            )
        })?;
        let path = dir.join(FILE_NAME);
        let db = open_database(&path)?;
        // A new file's directory entry is durable only once the directory
        // is synced; without it a power cut could lose the whole file.
        sync_dir(dir).map_err(|e| {
            StoreError::new(
                ErrorKind::Open,
                format!("cannot sync the data directory {}: {e}", dir.display()),
            )
        })?;
        init_tables(&db, &path)?;
        let inner = Arc::new(Inner {
            db,
            path,
            clock,
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel::<Request>();
        let shared = inner.clone();
        let thread = std::thread::Builder::new()
            .name("mxguard-store-writer".into())
            .spawn(move || run_writer(&shared, &rx))
            .map_err(|e| {
                StoreError::new(
                    ErrorKind::Open,
                    format!("cannot start the store's writer thread: {e}"),
                )
            })?;
        Ok(EmbeddedStore {
            inner,
            writer: Some(tx),
            thread: Some(thread),
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Commits and writes so far, to see how well group commit batches.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            writes: self.inner.writes.load(Ordering::Relaxed),
        }
    }

    /// Hands `op` to the writer and waits for the commit that holds it.
    /// The request is sent when the future is first polled.
    async fn write(&self, op: Op) -> Result<Reply> {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|w| w.send(Request { op, reply: tx }).is_ok());
        if !sent {
            return Err(self.inner.closed());
        }
        rx.await.map_err(|_| self.inner.closed())?
    }

    fn read<T>(&self, f: impl FnOnce(&ReadTransaction, u64) -> Result<T, Fail>) -> Result<T> {
        let inner = &*self.inner;
        let tx = inner
            .db
            .begin_read()
            .map_err(|e| inner.fail(Fail::from(e)))?;
        f(&tx, inner.now_ms()).map_err(|e| inner.fail(e))
    }
}

impl Drop for EmbeddedStore {
    /// Closing the channel lets the writer finish what is queued and exit;
    /// joining it means the file is closed (and reopenable) on return.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Opens the file. redb may panic on a file damaged outside redb (a bad
/// disk, a stray write): that becomes a full integrity check and repair,
/// and failing that an error, never a crash (with `panic = "unwind"`, the
/// default).
fn open_database(path: &Path) -> Result<Database> {
    let open = |check: bool| {
        catch_unwind(AssertUnwindSafe(|| {
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .set_check_integrity_on_open(check)
                .create(path)
        }))
    };
    let first = match open(false) {
        Ok(r) => r,
        Err(_) => match open(true) {
            Ok(r) => r,
            Err(_) => {
                return Err(StoreError::new(
                    ErrorKind::Corrupt,
                    format!(
                        "the store {} is damaged and cannot be repaired; move it aside (mxguard starts an empty one) or restore it from a backup",
                        path.display()
                    ),
                ));
            }
        },
    };
    first.map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let p = path.display();
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StoreError::new(
                ErrorKind::InUse,
                format!(
                    "the store {p} is in use by another mxguard process (such as `mxguard serve`): only one process may open it at a time; stop that process, or use another data directory (--data-dir)"
                ),
            )
        }
        DatabaseError::RepairAborted => StoreError::new(
            ErrorKind::Corrupt,
            format!(
                "the store {p} needs a repair that could not finish; move it aside (mxguard starts an empty one) or restore it from a backup"
            ),
        ),
        DatabaseError::UpgradeRequired(v) => StoreError::new(
            ErrorKind::Open,
            format!(
                "the store {p} is in an old redb file format ({v}) this mxguard cannot read; move it aside (mxguard starts an empty one)"
            ),
        ),
        e => open_failed(path, e.into()),
    }
}

/// An error while opening or preparing the file.
fn open_failed(path: &Path, e: redb::Error) -> StoreError {
    let p = path.display();
    match e {
        redb::Error::Corrupted(what) => StoreError::new(
            ErrorKind::Corrupt,
            format!(
                "the store {p} is damaged ({what}); move it aside (mxguard starts an empty one) or restore it from a backup"
            ),
        ),
        e => StoreError::new(
            ErrorKind::Open,
            format!(
                "cannot open the store {p}: {e}; check that the mxguard user can read and write it and that the disk has room"
            ),
        ),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Creates the tables and checks the file's format, durably.
fn init_tables(db: &Database, path: &Path) -> Result<()> {
    let redb_err = |e: redb::Error| open_failed(path, e);
    let tx = db.begin_write().map_err(|e| redb_err(e.into()))?;
    {
        let mut meta = tx.open_table(FILE_META).map_err(|e| redb_err(e.into()))?;
        let format = meta
            .get("format")
            .map_err(|e| redb_err(e.into()))?
            .map(|g| g.value());
        match format {
            None => {
                meta.insert("format", FORMAT)
                    .map_err(|e| redb_err(e.into()))?;
            }
            Some(f) if f <= FORMAT => {}
            Some(f) => {
                return Err(StoreError::new(
                    ErrorKind::Open,
                    format!(
                        "the store {} was written by a newer mxguard (store format {f}; this one reads up to {FORMAT}); run that version, or move the file aside",
                        path.display()
                    ),
                ));
            }
        }
        tx.open_table(KV).map_err(|e| redb_err(e.into()))?;
        tx.open_table(LIST_ITEMS).map_err(|e| redb_err(e.into()))?;
        tx.open_table(LIST_META).map_err(|e| redb_err(e.into()))?;
    }
    tx.commit().map_err(|e| redb_err(e.into()))
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn closed(&self) -> StoreError {
        StoreError::new(
            ErrorKind::Closed,
            format!(
                "the writer of the store {} has stopped (see the log for why); restart mxguard",
                self.path.display()
            ),
        )
    }

    fn fail(&self, f: Fail) -> StoreError {
        match f {
            Fail::Request(e) => e,
            Fail::TooLarge(n) => StoreError::new(
                ErrorKind::Invalid,
                format!(
                    "a value of {n} bytes is larger than the store {} accepts (about 3 GiB); nothing was written",
                    self.path.display()
                ),
            ),
            Fail::Storage(redb::Error::Corrupted(what)) => StoreError::new(
                ErrorKind::Corrupt,
                format!(
                    "the store {} is damaged ({what}); restart mxguard to repair it, or move the file aside or restore it from a backup",
                    self.path.display()
                ),
            ),
            Fail::Storage(e) => StoreError::new(
                ErrorKind::Backend,
                format!(
                    "the store {} failed: {e}; check the disk (space, I/O errors) and restart mxguard",
                    self.path.display()
                ),
            ),
        }
    }

    fn corrupt_value(&self, key: &str) -> Fail {
        Fail::Request(StoreError::new(
            ErrorKind::Corrupt,
            format!(
                "the store {} holds a damaged value under `{key}`; delete that key, or restore the store from a backup",
                self.path.display()
            ),
        ))
    }
}

/// What the writer thread keeps between transactions.
#[derive(Default)]
struct WriterState {
    /// Where the next bounded purge goes on: the first key it has not
    /// looked at yet, `None` to start a new pass at the first key.
    purge_from: Option<String>,
}

/// The writer thread: each round takes every pending request (up to
/// [`MAX_BATCH`]), applies them in one transaction, commits once, then
/// answers each.
fn run_writer(inner: &Inner, rx: &mpsc::Receiver<Request>) {
    let mut state = WriterState::default();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let purge_from = state.purge_from.clone();
        match apply_batch(inner, &mut state, &batch) {
            Ok(results) => {
                inner.commits.fetch_add(1, Ordering::Relaxed);
                inner
                    .writes
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (r, res) in batch.into_iter().zip(results) {
                    let _ = r.reply.send(res);
                }
            }
            Err(e) => {
                // Nothing was removed: the next purge looks there again.
                state.purge_from = purge_from;
                for r in batch {
                    let _ = r.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One transaction for the whole batch. A request that cannot be applied
/// gets its own error; a backend failure abandons the transaction and fails
/// them all, since none of them was committed.
fn apply_batch(
    inner: &Inner,
    state: &mut WriterState,
    batch: &[Request],
) -> Result<Vec<Result<Reply>>> {
    let fail = |e: Fail| inner.fail(e);
    let mut tx = inner.db.begin_write().map_err(|e| fail(e.into()))?;
    // Explicit, though it is redb's default: acknowledged means on disk.
    tx.set_durability(Durability::Immediate)
        .map_err(|e| fail(redb::Error::from(e).into()))?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut t = Tables {
            kv: tx.open_table(KV).map_err(|e| fail(e.into()))?,
            items: tx.open_table(LIST_ITEMS).map_err(|e| fail(e.into()))?,
            meta: tx.open_table(LIST_META).map_err(|e| fail(e.into()))?,
        };
        let now = inner.now_ms();
        for r in batch {
            match apply(inner, state, &mut t, &r.op, now) {
                Ok(reply) => results.push(Ok(reply)),
                Err(e @ (Fail::Request(_) | Fail::TooLarge(_))) => results.push(Err(fail(e))),
                Err(e) => return Err(fail(e)),
            }
        }
    }
    tx.commit().map_err(|e| fail(e.into()))?;
    Ok(results)
}

struct Tables<'tx> {
    kv: redb::Table<'tx, &'static str, &'static [u8]>,
    items: redb::Table<'tx, (&'static str, u64), &'static [u8]>,
    meta: redb::Table<'tx, &'static str, (u64, u64)>,
}

/// A record's expiry and value; `None` if it is too short to be one.
fn split(raw: &[u8]) -> Option<(u64, &[u8])> {
    let (head, value) = raw.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*head), value))
}

fn live(expires: u64, now: u64) -> bool {
    expires == 0 || expires > now
}

fn expiry(now: u64, ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| {
        now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
    })
}

fn encode(expires: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// A stored value's bytes if it is live, `None` if expired.
fn live_value<'v>(
    inner: &Inner,
    key: &str,
    raw: &'v [u8],
    now: u64,
) -> Result<Option<&'v [u8]>, Fail> {
    let (expires, value) = split(raw).ok_or_else(|| inner.corrupt_value(key))?;
    Ok(live(expires, now).then_some(value))
}

fn invalid(inner: &Inner, message: String) -> Fail {
    Fail::Request(StoreError::new(
        ErrorKind::Invalid,
        format!("{message} (store {})", inner.path.display()),
    ))
}

fn apply(
    inner: &Inner,
    state: &mut WriterState,
    t: &mut Tables<'_>,
    op: &Op,
    now: u64,
) -> Result<Reply, Fail> {
    Ok(match op {
        Op::Set { key, value, ttl } => {
            t.kv.insert(key.as_str(), encode(expiry(now, *ttl), value).as_slice())?;
            Reply::Unit
        }
        Op::Delete { key } => {
            let mut found = false;
            if let Some(g) = t.kv.remove(key.as_str())? {
                // A damaged value is still "there": it is gone now.
                let (expires, _) = split(g.value()).unwrap_or((0, &[]));
                found = live(expires, now);
            }
            let head = t.meta.remove(key.as_str())?.map(|g| g.value());
            if let Some((next, oldest)) = head {
                for seq in oldest..next {
                    t.items.remove((key.as_str(), seq))?;
                }
                found |= next > oldest;
            }
            Reply::Bool(found)
        }
        Op::Incr { key, by, ttl } => {
            let current = match t.kv.get(key.as_str())? {
                None => None,
                Some(g) => {
                    let (expires, v) = split(g.value()).ok_or_else(|| inner.corrupt_value(key))?;
                    if live(expires, now) {
                        let n = std::str::from_utf8(v)
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                            .ok_or_else(|| {
                                invalid(
                                    inner,
                                    format!(
                                    "cannot add to `{key}`: it holds a value that is not an integer"
                                ),
                                )
                            })?;
                        Some((expires, n))
                    } else {
                        None
                    }
                }
            };
            let (expires, n) = match current {
                Some((expires, n)) => {
                    let n = n.checked_add(*by).ok_or_else(|| {
                        invalid(inner, format!("adding {by} to `{key}` ({n}) overflows"))
                    })?;
                    // EXPIRE NX: a TTL only for a key without one.
                    let expires = if expires == 0 {
                        expiry(now, *ttl)
                    } else {
                        expires
                    };
                    (expires, n)
                }
                None => (expiry(now, *ttl), *by),
            };
            t.kv.insert(
                key.as_str(),
                encode(expires, n.to_string().as_bytes()).as_slice(),
            )?;
            Reply::Int(n)
        }
        Op::Push {
            key,
            value,
            max_len,
        } => {
            let (next, oldest) = t.meta.get(key.as_str())?.map_or((0, 0), |g| g.value());
            t.items.insert((key.as_str(), next), value.as_slice())?;
            let next = next + 1;
            let keep = u64::try_from(*max_len).unwrap_or(u64::MAX).max(1);
            let new_oldest = next.saturating_sub(keep).max(oldest);
            for seq in oldest..new_oldest {
                t.items.remove((key.as_str(), seq))?;
            }
            t.meta.insert(key.as_str(), (next, new_oldest))?;
            Reply::Unit
        }
        Op::Purge { limit } => Reply::Purged(purge(state, t, *limit, now)?),
    })
}

/// One bounded step of a pass over the values: goes on where the last step
/// stopped, removes at most `limit` expired entries and looks at no more
/// than [`PURGE_SCAN_FACTOR`] × `limit` of them, so the transaction (and
/// every write batched with it) stays short. Lists never expire.
fn purge(
    state: &mut WriterState,
    t: &mut Tables<'_>,
    limit: usize,
    now: u64,
) -> Result<Purged, Fail> {
    let limit = limit.max(1);
    let budget = limit.saturating_mul(PURGE_SCAN_FACTOR);
    let mut expired = Vec::new();
    let mut next = None;
    {
        let from = state.purge_from.take();
        let range = match from.as_deref() {
            Some(from) => t.kv.range::<&str>(from..)?,
            None => t.kv.range::<&str>(..)?,
        };
        for (seen, e) in range.enumerate() {
            let (k, v) = e?;
            if expired.len() >= limit || seen >= budget {
                next = Some(k.value().to_string());
                break;
            }
            // Damaged values are kept: reads report them, an admin decides.
            if split(v.value()).is_some_and(|(expires, _)| !live(expires, now)) {
                expired.push(k.value().to_string());
            }
        }
    }
    for key in &expired {
        t.kv.remove(key.as_str())?;
    }
    let more = next.is_some();
    state.purge_from = next;
    Ok(Purged {
        removed: expired.len(),
        more,
    })
}

fn unexpected(inner: &Inner) -> StoreError {
    StoreError::new(
        ErrorKind::Backend,
        format!(
            "the writer of the store {} answered the wrong kind of result (a bug)",
            inner.path.display()
        ),
    )
}

impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded store {}", self.inner.path.display())
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.read(|tx, now| {
                let t = tx.open_table(KV)?;
                let Some(g) = t.get(key)? else {
                    return Ok(None);
                };
                Ok(live_value(&self.inner, key, g.value(), now)?.map(<[u8]>::to_vec))
            })
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            self.read(|tx, now| {
                let t = tx.open_table(KV)?;
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    out.push(match t.get(*key)? {
                        None => None,
                        Some(g) => {
                            live_value(&self.inner, key, g.value(), now)?.map(<[u8]>::to_vec)
                        }
                    });
                }
                Ok(out)
            })
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.write(Op::Set {
                key: key.to_string(),
                value: value.to_vec(),
                ttl,
            })
            .await
            .map(|_| ())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            match self
                .write(Op::Delete {
                    key: key.to_string(),
                })
                .await?
            {
                Reply::Bool(b) => Ok(b),
                _ => Err(unexpected(&self.inner)),
            }
        })
    }

    fn incr<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            match self
                .write(Op::Incr {
                    key: key.to_string(),
                    by,
                    ttl,
                })
                .await?
            {
                Reply::Int(n) => Ok(n),
                _ => Err(unexpected(&self.inner)),
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
            self.write(Op::Push {
                key: key.to_string(),
                value: value.to_vec(),
                max_len,
            })
            .await
            .map(|_| ())
        })
    }

    fn list_range<'a>(
        &'a self,
        key: &'a str,
        start: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>>> {
        Box::pin(async move {
            self.read(|tx, _| {
                let meta = tx.open_table(LIST_META)?;
                let Some((next, oldest)) = meta.get(key)?.map(|g| g.value()) else {
                    return Ok(Vec::new());
                };
                let start = u64::try_from(start).unwrap_or(u64::MAX);
                let count = u64::try_from(count).unwrap_or(u64::MAX);
                // Newest is next - 1: skip `start` of them, take `count`.
                let hi = next.saturating_sub(start);
                let lo = hi.saturating_sub(count).max(oldest);
                if hi <= lo {
                    return Ok(Vec::new());
                }
                let items = tx.open_table(LIST_ITEMS)?;
                let mut out = Vec::new();
                for e in items.range((key, lo)..(key, hi))?.rev() {
                    let (_, v) = e?;
                    out.push(v.value().to_vec());
                }
                Ok(out)
            })
        })
    }

    fn list_len<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move {
            self.read(|tx, _| {
                let meta = tx.open_table(LIST_META)?;
                let len = meta.get(key)?.map_or(0, |g| {
                    let (next, oldest) = g.value();
                    next.saturating_sub(oldest)
                });
                Ok(usize::try_from(len).unwrap_or(usize::MAX))
            })
        })
    }

    fn scan_prefix<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, Result<Entries>> {
        Box::pin(async move {
            self.read(|tx, now| {
                let t = tx.open_table(KV)?;
                let mut out = Vec::new();
                for e in t.range(prefix..)? {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = e?;
                    let key = k.value();
                    if !key.starts_with(prefix) {
                        break;
                    }
                    if let Some(v) = live_value(&self.inner, key, v.value(), now)? {
                        out.push((key.to_string(), v.to_vec()));
                    }
                }
                Ok(out)
            })
        })
    }

    fn purge_expired(&self, limit: usize) -> BoxFuture<'_, Result<Purged>> {
        Box::pin(async move {
            match self.write(Op::Purge { limit }).await? {
                Reply::Purged(p) => Ok(p),
                _ => Err(unexpected(&self.inner)),
            }
        })
    }
}
