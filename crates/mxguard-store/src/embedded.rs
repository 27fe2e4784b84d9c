//! The embedded backend: one redb file, `mxguard.redb`, in the data directory.
//!
//! Why redb: it is pure Rust (SQLite needs a C build), ACID with durable
//! commits (an acknowledged write survives kill -9 and power loss), keeps
//! everything in one file, runs no background compaction threads (fjall is
//! an LSM tree with compaction threads, built for write-heavy loads we do
//! not have: a few writes per message), and has a small dependency tree.
//!
//! Writes go to one writer thread ([`crate::writer`]), which applies every
//! pending request in one transaction and commits once, durably (group
//! commit): under concurrency one fsync acknowledges many writes. A
//! caller's future resolves only after the commit that holds its write.
//! A batch of [`Durability::Relaxed`] writes only is committed without
//! fsync (redb's `Durability::None`): visible to reads at once, on disk at
//! the next durable commit, which the writer makes at the latest
//! [`Options::relaxed_window`] after the first such commit, and on close.
//! Reads open their own read transactions (MVCC snapshots) and never wait
//! for the writer. They run on the caller's thread: a redb read is a few
//! page lookups, mostly from its cache. A read that hits a damaged page
//! (redb panics on those) fails with [`ErrorKind::Corrupt`] instead.
//!
//! The file is verified when it is opened ([`crate::file`]). After the disk
//! refuses a write, the writer closes and reopens it (redb needs that to
//! clear the error) and retries with back-off; [`EmbeddedStore::writable`]
//! says meanwhile why writes fail.
//!
//! Values carry their expiry (unix ms, 0 = never) in front, so a read can
//! tell an expired entry from a live one without a second lookup; purging
//! only reclaims space, a bounded chunk per transaction so it never holds
//! the writer (and the writes batched with it) for long. Lists are rows
//! keyed by (list key, sequence number) plus a (next, oldest) head per list: a
//! push is two inserts and, when the list is full, one delete, whatever its
//! length.
//!
//! redb locks its file to one process (its default, exclusive mode): a
//! second process opening the same data directory gets
//! [`ErrorKind::InUse`] naming the file and the likely holder,
//! `mxguard serve`.

use crate::absent::KeyFilter;
use crate::disk::DiskFaults;
use crate::file::{KV, LIST_ITEMS, LIST_META, REPAIR_HINT, StoreFile, disk_full};
use crate::writer::{self, Fail, Op, Reply, Request};
use crate::{
    BoxFuture, Durability, Entries, ErrorKind, Purged, Result, Store, StoreError, Write, guard,
};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The default [`Options::relaxed_window`].
pub const RELAXED_WINDOW: Duration = Duration::from_secs(1);

/// After the first damaged page a request hits (logged at once), more hits
/// are counted and logged at most this often.
const DAMAGE_LOG_EVERY: Duration = Duration::from_secs(600);

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
    /// Commits of relaxed writes only ([`Durability::Relaxed`]), with no
    /// fsync.
    pub relaxed_commits: u64,
    /// Write requests all those commits held.
    pub writes: u64,
}

/// How to open an [`EmbeddedStore`]; `Options::default()` is what
/// `mxguard` uses.
#[derive(Clone)]
pub struct Options {
    /// Where TTLs get the time.
    pub clock: Arc<dyn Clock>,
    /// After the disk refuses a write, the first retry comes this much
    /// later; each failed retry doubles the wait, up to `retry_max`.
    /// Writes fail at once in between.
    pub retry_first: Duration,
    /// The longest wait between retries: how long writes may keep failing
    /// after space is freed.
    pub retry_max: Duration,
    /// After writes fail, they must work this long (with no failure) before
    /// the burst counts as over and "writes work again" is logged. A nearly
    /// full disk, where some writes fit and some do not, is then one burst
    /// and one pair of log lines, not a pair per flap. Writes are not held
    /// meanwhile: the first success ends the fail-fast.
    pub recovery_quiet: Duration,
    /// A simulated disk under the file (tests): see [`DiskFaults`].
    pub faults: Option<Arc<DiskFaults>>,
    /// The longest a [`Durability::Relaxed`] write stays off the disk: the
    /// writer makes a durable commit this long after the first relaxed one
    /// still pending, even with no traffic. What a power cut can lose.
    pub relaxed_window: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clock: Arc::new(SystemClock),
            retry_first: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            recovery_quiet: Duration::from_secs(60),
            faults: None,
            relaxed_window: RELAXED_WINDOW,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("retry_first", &self.retry_first)
            .field("retry_max", &self.retry_max)
            .field("recovery_quiet", &self.recovery_quiet)
            .field("faults", &self.faults)
            .field("relaxed_window", &self.relaxed_window)
            .finish_non_exhaustive()
    }
}

/// The embedded store. Cheap to share as `Arc<dyn Store>`; dropping the
/// last handle finishes pending writes and closes the file.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    writer: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Fills the key filter from the file once, at open.
    filler: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.file.path)
            .finish_non_exhaustive()
    }
}

/// What the store handle and its writer thread share.
pub(crate) struct Inner {
    /// The open file; `None` while the writer reopens it, or after a
    /// reopen failed.
    db: RwLock<Option<Arc<Database>>>,
    pub(crate) file: StoreFile,
    clock: Arc<dyn Clock>,
    pub(crate) retry_first: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) recovery_quiet: Duration,
    pub(crate) relaxed_window: Duration,
    pub(crate) commits: AtomicU64,
    pub(crate) relaxed_commits: AtomicU64,
    pub(crate) writes: AtomicU64,
    /// Set while writes fail (the error they fail with is in `outage`).
    unwritable: AtomicBool,
    outage: Mutex<Option<StoreError>>,
    damage: DamageLog,
    /// The keys the values table may hold: reads of keys it has never
    /// held skip the read transaction ([`crate::absent`]).
    pub(crate) keys: KeyFilter,
    /// Tells the thread filling `keys` to stop (the store is closing).
    filling_stop: AtomicBool,
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/mxguard.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        EmbeddedStore::open_with(dir, Options::default())
    }

    /// [`EmbeddedStore::open`] with another clock for TTLs (tests).
    pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Result<EmbeddedStore> {
        EmbeddedStore::open_with(
            dir,
            Options {
                clock,
                ..Options::default()
            },
        )
    }

    /// [`EmbeddedStore::open`] with [`Options`].
    ///
    /// The file is verified first (every page's checksum): a damaged file
    /// is an [`ErrorKind::Corrupt`] error that names it and says to run
    /// `mxguard store check --repair`. Opening an existing file writes
    /// nothing but redb's header, in place, so it works on a full disk.
    pub fn open_with(dir: &Path, options: Options) -> Result<EmbeddedStore> {
        guard::install_hook();
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::new(
                ErrorKind::Open,
                format!(
                    "cannot create the data directory {}: {e}; make it writable by the mxguard user, or set [store] data_dir or --data-dir to one that is",
                    dir.display()
                ),
            )
        })?;
        let file = StoreFile::new(dir, options.faults.clone());
        let db = file.open()?;
        // A new file's directory entry is durable only once the directory
        // is synced; without it a power cut could lose the whole file.
        sync_dir(dir).map_err(|e| {
            StoreError::new(
                ErrorKind::Open,
                format!("cannot sync the data directory {}: {e}", dir.display()),
            )
        })?;
        // Sized for what the file holds; filled by a thread of its own.
        let keys = db
            .begin_read()
            .ok()
            .and_then(|tx| tx.open_table(KV).ok()?.len().ok())
            .unwrap_or(0);
        let inner = Arc::new(Inner {
            keys: KeyFilter::new(keys),
            filling_stop: AtomicBool::new(false),
            db: RwLock::new(Some(Arc::new(db))),
            file,
            clock: options.clock,
            retry_first: options.retry_first.max(Duration::from_millis(1)),
            retry_max: options.retry_max.max(options.retry_first),
            recovery_quiet: options.recovery_quiet,
            relaxed_window: options.relaxed_window,
            commits: AtomicU64::new(0),
            relaxed_commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            unwritable: AtomicBool::new(false),
            outage: Mutex::new(None),
            damage: DamageLog::default(),
        });
        let (tx, rx) = mpsc::channel::<Request>();
        let shared = inner.clone();
        let thread = std::thread::Builder::new()
            .name("mxguard-store-writer".into())
            .spawn(move || writer::run(&shared, &rx))
            .map_err(|e| {
                StoreError::new(
                    ErrorKind::Open,
                    format!("cannot start the store's writer thread: {e}"),
                )
            })?;
        let shared = inner.clone();
        // Without the thread the filter stays unready: reads all go to redb.
        let filler = std::thread::Builder::new()
            .name("mxguard-store-keys".into())
            .spawn(move || fill_key_filter(&shared))
            .ok();
        Ok(EmbeddedStore {
            inner,
            writer: Some(tx),
            thread: Some(thread),
            filler,
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.inner.file.path
    }

    /// Whether the key filter answers reads of keys the file never held
    /// (it is filled from the file in the background after open).
    pub fn key_filter_ready(&self) -> bool {
        self.inner.keys.answers()
    }

    /// Commits and writes so far, to see how well group commit batches.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            relaxed_commits: self.inner.relaxed_commits.load(Ordering::Relaxed),
            writes: self.inner.writes.load(Ordering::Relaxed),
        }
    }

    /// Hands `op` to the writer and waits for the commit that holds it
    /// (durable or not, as `durability` asks). The request is sent when
    /// the future is first polled.
    async fn write(&self, op: Op, durability: Durability) -> Result<Reply> {
        let (tx, rx) = oneshot::channel();
        let sent = self.writer.as_ref().is_some_and(|w| {
            w.send(Request {
                op,
                durability,
                reply: tx,
            })
            .is_ok()
        });
        if !sent {
            return Err(self.inner.closed());
        }
        rx.await.map_err(|_| self.inner.closed())?
    }

    /// Runs a read in its own read transaction. A panic in redb (a damaged
    /// page) is caught and becomes [`ErrorKind::Corrupt`].
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction, u64) -> Result<T, Fail>,
    ) -> Result<T> {
        let inner = &*self.inner;
        let Some(db) = inner.database() else {
            return Err(inner.unavailable());
        };
        let now = inner.now_ms();
        let outcome = guard::catch(|| {
            let tx = db.begin_read().map_err(Fail::from)?;
            f(&tx, now)
        });
        match outcome {
            Ok(r) => r.map_err(|e| inner.read_fail(e)),
            Err(panic) => Err(inner.damaged(&format!("redb panicked: {panic}"))),
        }
    }
}

impl Drop for EmbeddedStore {
    /// Closing the channel lets the writer finish what is queued and exit;
    /// joining it means the file is closed (and reopenable) on return.
    fn drop(&mut self) {
        self.inner.filling_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.filler.take() {
            let _ = t.join();
        }
        drop(self.writer.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The writer is gone: this is the last handle to the file.
        drop(self.inner.take_database());
    }
}

/// Puts every key of the values table in the key filter, from one
/// snapshot, then marks it ready. Keys written meanwhile are added by the
/// writer, so together nothing the file holds is missed. A failure (a
/// damaged page) leaves the filter unready: reads go to redb as before.
fn fill_key_filter(inner: &Inner) {
    let Some(db) = inner.database() else {
        return;
    };
    let filled = guard::catch(|| -> Result<bool, Fail> {
        let tx = db.begin_read()?;
        let kv = tx.open_table(KV)?;
        for (n, entry) in kv.iter()?.enumerate() {
            if n % 4096 == 0 && inner.filling_stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let (key, _) = entry?;
            inner.keys.add(key.value());
        }
        Ok(true)
    });
    match filled {
        Ok(Ok(true)) => inner.keys.filled(),
        Ok(Ok(false)) => {}
        Ok(Err(_)) | Err(_) => tracing::debug!(
            "store {}: could not list its keys; every read looks in the file",
            inner.file.path.display()
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

/// Damaged pages hit by requests: the first is logged at once, with what
/// redb said; the rest are counted and summed up now and then, so a store
/// with a bad page does not log a line per request.
#[derive(Default)]
struct DamageLog {
    hits: AtomicU64,
    last_line: Mutex<Option<Instant>>,
}

impl DamageLog {
    fn hit(&self, message: &str) {
        let n = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self
            .last_line
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *last {
            None => {
                tracing::error!("{message}");
                *last = Some(Instant::now());
                self.hits.store(0, Ordering::Relaxed);
            }
            Some(t) if t.elapsed() >= DAMAGE_LOG_EVERY => {
                tracing::error!(
                    "{n} more store requests failed on damaged pages in the last {} s; {message}",
                    t.elapsed().as_secs()
                );
                *last = Some(Instant::now());
                self.hits.store(0, Ordering::Relaxed);
            }
            Some(_) => {}
        }
    }
}

impl Inner {
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The open file, if any, for one read or one transaction.
    pub(crate) fn database(&self) -> Option<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether none of `keys` was ever in the file (so each reads as
    /// absent) while the file is open: a closed or reopening store still
    /// answers its reads with the error they always got.
    fn never_held(&self, keys: &[&str]) -> bool {
        self.keys.none_of(keys)
            && self
                .db
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }

    pub(crate) fn take_database(&self) -> Option<Arc<Database>> {
        self.db
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(crate) fn put_database(&self, db: Database) {
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
    }

    /// Records whether (and why) writes fail, for [`EmbeddedStore::writable`].
    pub(crate) fn set_unwritable(&self, error: Option<StoreError>) {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        self.unwritable.store(error.is_some(), Ordering::SeqCst);
        *outage = error;
    }

    fn writable(&self) -> Result<()> {
        if !self.unwritable.load(Ordering::SeqCst) {
            return Ok(());
        }
        match &*self.outage.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Why there is no open file to read.
    fn unavailable(&self) -> StoreError {
        match self.writable() {
            Err(e) => e,
            Ok(()) => self.closed(),
        }
    }

    pub(crate) fn closed(&self) -> StoreError {
        StoreError::new(
            ErrorKind::Closed,
            format!(
                "the writer of the store {} has stopped (see the log for why); restart mxguard",
                self.file.path.display()
            ),
        )
    }

    /// A request hit a damaged page: its error, counted in the log.
    pub(crate) fn damaged(&self, what: &str) -> StoreError {
        let e = self.file.damaged(what);
        self.damage.hit(e.message());
        e
    }

    /// What writes fail with after the disk refused one.
    pub(crate) fn write_error(&self, e: &redb::Error) -> StoreError {
        let p = self.file.path.display();
        let dir = self.file.dir.display();
        let message = match e {
            redb::Error::Io(io) if disk_full(io) => format!(
                "cannot write the store {p}: {io}; free space on the disk holding {dir}: mxguard retries by itself and needs no restart"
            ),
            e => format!(
                "cannot write the store {p}: {e}; check the disk holding {dir} (space, and I/O errors in the kernel log): mxguard retries by itself and needs no restart"
            ),
        };
        StoreError::new(ErrorKind::Backend, message)
    }

    pub(crate) fn fail(&self, f: Fail) -> StoreError {
        match f {
            Fail::Request(e) => e,
            Fail::TooLarge(n) => StoreError::new(
                ErrorKind::Invalid,
                format!(
                    "a value of {n} bytes is larger than the store {} accepts (about 3 GiB); nothing was written",
                    self.file.path.display()
                ),
            ),
            Fail::Storage(redb::Error::Corrupted(what)) => self.damaged(&what),
            Fail::Storage(e) => StoreError::new(
                ErrorKind::Backend,
                format!(
                    "the store {} failed: {e}; check the disk holding {} (space, I/O errors)",
                    self.file.path.display(),
                    self.file.dir.display()
                ),
            ),
        }
    }

    /// A read failed: while writes fail, with their error (redb refuses
    /// pages it has not cached until the writer has reopened the file).
    fn read_fail(&self, f: Fail) -> StoreError {
        match f {
            Fail::Storage(redb::Error::PreviousIo | redb::Error::DatabaseClosed) => {
                self.writable().err().unwrap_or_else(|| self.fail(f))
            }
            f => self.fail(f),
        }
    }

    pub(crate) fn corrupt_value(&self, key: &str) -> Fail {
        Fail::Request(StoreError::new(
            ErrorKind::Corrupt,
            format!(
                "the store {} holds a damaged value under `{key}`; delete that key, or {REPAIR_HINT}",
                self.file.path.display()
            ),
        ))
    }
}

/// A record's expiry and value; `None` if it is too short to be one.
pub(crate) fn split(raw: &[u8]) -> Option<(u64, &[u8])> {
    let (head, value) = raw.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*head), value))
}

pub(crate) fn live(expires: u64, now: u64) -> bool {
    expires == 0 || expires > now
}

pub(crate) fn expiry(now: u64, ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| {
        now.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
    })
}

pub(crate) fn encode(expires: u64, value: &[u8]) -> Vec<u8> {
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

fn unexpected(inner: &Inner) -> StoreError {
    StoreError::new(
        ErrorKind::Backend,
        format!(
            "the writer of the store {} answered the wrong kind of result (a bug)",
            inner.file.path.display()
        ),
    )
}

impl Store for EmbeddedStore {
    fn writable(&self) -> Result<()> {
        self.inner.writable()
    }

    fn describe(&self) -> String {
        format!("embedded store {}", self.inner.file.path.display())
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            if self.inner.never_held(&[key]) {
                return Ok(None);
            }
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
            if self.inner.never_held(keys) {
                return Ok(vec![None; keys.len()]);
            }
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
            self.write(
                Op::Set {
                    key: key.to_string(),
                    value: value.to_vec(),
                    ttl,
                },
                Durability::Immediate,
            )
            .await
            .map(|_| ())
        })
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
        durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let entries = entries
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.to_vec()))
                .collect();
            self.write(Op::SetMany { entries, ttl }, durability)
                .await
                .map(|_| ())
        })
    }

    /// One request to the writer for all of them, applied in one
    /// transaction (each refused or not on its own).
    fn write_batch<'a>(
        &'a self,
        writes: &'a [Write<'a>],
        durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ops = writes
                .iter()
                .map(|w| match *w {
                    Write::Set { key, value, ttl } => Op::Set {
                        key: key.to_string(),
                        value: value.to_vec(),
                        ttl,
                    },
                    Write::Incr { key, by, ttl } => Op::Incr {
                        key: key.to_string(),
                        by,
                        ttl,
                    },
                    Write::Push {
                        key,
                        value,
                        max_len,
                    } => Op::Push {
                        key: key.to_string(),
                        value: value.to_vec(),
                        max_len,
                    },
                })
                .collect();
            self.write(Op::Batch(ops), durability).await.map(|_| ())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            match self
                .write(
                    Op::Delete {
                        key: key.to_string(),
                    },
                    Durability::Immediate,
                )
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
        self.incr_with(key, by, ttl, Durability::Immediate)
    }

    fn incr_with<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        ttl: Option<Duration>,
        durability: Durability,
    ) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            match self
                .write(
                    Op::Incr {
                        key: key.to_string(),
                        by,
                        ttl,
                    },
                    durability,
                )
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
        self.list_push_with(key, value, max_len, Durability::Immediate)
    }

    fn list_push_with<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
        durability: Durability,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.write(
                Op::Push {
                    key: key.to_string(),
                    value: value.to_vec(),
                    max_len,
                },
                durability,
            )
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
            match self
                .write(Op::Purge { limit }, Durability::Immediate)
                .await?
            {
                Reply::Purged(p) => Ok(p),
                _ => Err(unexpected(&self.inner)),
            }
        })
    }
}
