//! The writer thread: group commit, and what it does when writing fails.
//!
//! Each round takes every pending request (up to [`MAX_BATCH`]), applies
//! them in one write transaction, commits once, then answers each. The
//! commit is durable (fsync) unless every request of the round is
//! [`Durability::Relaxed`]: then it is redb's `Durability::None`, and the
//! writer owes a durable commit, which it makes with the next round that
//! holds a durable write, or at the latest `relaxed_window` after the
//! first relaxed commit (an empty durable commit, with or without
//! traffic), and before it exits when the store is closed. redb also frees
//! pages only at durable commits, so this bounds the file's growth too.
//!
//! [`Durability::Relaxed`]: crate::Durability::Relaxed Three things can go wrong, each handled here so that no caller
//! ever waits forever and the daemon never needs a restart:
//!
//! - **The disk refuses a write** (full, quota, I/O error). redb then fails
//!   every later operation ("Previous I/O error occurred") until the file
//!   is closed and opened again. The writer reopens it at once (so reads
//!   work again), fails writes fast with [`ErrorKind::Backend`] and a
//!   message that says what to do, and tries again after a back-off
//!   (doubling up to [`Options::retry_max`]), with or without traffic:
//!   once space is freed, writes work again by themselves. One ERROR line
//!   when writing starts failing, one line with the count when it works
//!   again.
//! - **A damaged page** (garbage written outside redb): redb panics, or
//!   says `Corrupted`. The panic is caught at the request that hit it; the
//!   transaction is abandoned and the batch's requests are retried one per
//!   transaction, so only those that touch the damage fail
//!   ([`ErrorKind::Corrupt`], naming `mxguard store check --repair`); the
//!   others are written. The writer goes on: restarting the daemon would
//!   not help (the restarted daemon finds the damage and refuses to start),
//!   and while it runs, mail keeps flowing with whatever the callers do when
//!   a write fails.
//! - **A panic in this code** (a bug): the round's requests fail (their
//!   callers get [`ErrorKind::Closed`]), and the writer restarts in place
//!   after a back-off.
//!
//! [`Options::retry_max`]: crate::Options::retry_max

use crate::embedded::{Inner, encode, expiry, live, split};
use crate::file::{FILE_META, KV, LIST_ITEMS, LIST_META};
use crate::{Durability, ErrorKind, Purged, Result, StoreError, guard};
use redb::{ReadableTable, StorageError, WriteTransaction};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most requests applied in one transaction, so one huge burst does not
/// hold every caller until it is all written.
const MAX_BATCH: usize = 4096;

/// How long a batch of relaxed writes waits for more before its commit
/// (see `Writer::gather_relaxed`).
const RELAXED_GATHER: Duration = Duration::from_millis(1);

/// A purge looks at most this many entries per entry it may remove, so a
/// chunk stays short even when nearly everything is live.
const PURGE_SCAN_FACTOR: usize = 10;

/// How long a reopen waits for reads in flight to let go of the old file.
const READERS_GRACE: Duration = Duration::from_secs(1);

pub(crate) enum Op {
    Set {
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    },
    SetMany {
        entries: Vec<(String, Vec<u8>)>,
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
    /// [`crate::Store::write_batch`]: each applied or refused on its own.
    Batch(Vec<Op>),
}

pub(crate) enum Reply {
    Unit,
    Bool(bool),
    Int(i64),
    Purged(Purged),
}

pub(crate) struct Request {
    pub op: Op,
    pub durability: Durability,
    pub reply: oneshot::Sender<Result<Reply>>,
}

/// Why applying something failed: the backend itself (the transaction is
/// abandoned), or only this request (nothing of it was written).
pub(crate) enum Fail {
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

/// What one write transaction came to.
enum Outcome {
    /// Committed: each request's own result.
    Done(Vec<Result<Reply>>),
    /// The backend failed; nothing was committed.
    Failed(redb::Error),
    /// redb panicked (a damaged page); nothing was committed.
    Panicked(String),
}

/// Writing has been failing since `since`.
struct Outage {
    since: Instant,
    /// Write requests failed meanwhile.
    failed: u64,
    backoff: Duration,
    retry_at: Instant,
    /// The file must be closed and opened again before the next try.
    reopen: bool,
    /// What writes fail with meanwhile.
    error: StoreError,
    /// Why the last reopen failed, logged when it changes.
    reopen_error: Option<String>,
    /// Writes work again since then; the outage ends (and is logged) once
    /// they have worked for [`Options::recovery_quiet`].
    ///
    /// [`Options::recovery_quiet`]: crate::Options::recovery_quiet
    working_since: Option<Instant>,
}

impl Outage {
    /// When the writer must wake without a request: to retry, or to end a
    /// recovered outage.
    fn wake_at(&self, quiet: Duration) -> Instant {
        match self.working_since {
            Some(t) => t + quiet,
            None => self.retry_at,
        }
    }
}

struct Writer<'a> {
    inner: &'a Inner,
    /// Where the next bounded purge goes on: the first key it has not
    /// looked at yet, `None` to start a new pass at the first key.
    purge_from: Option<String>,
    outage: Option<Outage>,
    /// Since when relaxed commits have been waiting for a durable one.
    unsynced: Option<Instant>,
}

/// The writer thread's body. Returns when every handle to the store is
/// gone and the queue is empty.
pub(crate) fn run(inner: &Inner, rx: &mpsc::Receiver<Request>) {
    let mut writer = Writer {
        inner,
        purge_from: None,
        outage: None,
        unsynced: None,
    };
    let mut restarts = 0u32;
    loop {
        match guard::catch(|| writer.serve(rx)) {
            Ok(()) => return,
            Err(panic) => {
                // A bug here, not in redb (its calls are guarded one by
                // one): the round's requests were dropped, so their callers
                // got an error; start again, without spinning.
                restarts = restarts.saturating_add(1);
                tracing::error!(
                    "store {}: the writer panicked ({panic}); restarted it ({restarts} so far)",
                    inner.file.path.display()
                );
                std::thread::sleep(inner.retry_first.saturating_mul(restarts.min(60)));
            }
        }
    }
}

impl Writer<'_> {
    fn serve(&mut self, rx: &mpsc::Receiver<Request>) {
        loop {
            let quiet = self.inner.recovery_quiet;
            let outage_at = self.outage.as_ref().map(|o| o.wake_at(quiet));
            let flush_at = self.flush_at();
            let wake = match (outage_at, flush_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = match wake {
                None => match rx.recv() {
                    Ok(r) => r,
                    Err(_) => return,
                },
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => {
                        if self.flush_due() {
                            self.flush();
                        } else if outage_at.is_some_and(|a| a <= Instant::now()) {
                            if self
                                .outage
                                .as_ref()
                                .is_some_and(|o| o.working_since.is_some())
                            {
                                self.end_outage();
                            } else {
                                self.probe();
                            }
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        // Closed: what is relaxed goes to disk now.
                        self.flush();
                        return;
                    }
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.gather_relaxed(rx, &mut batch);
            self.handle(batch);
        }
    }

    /// A batch of relaxed writes only waits up to [`RELAXED_GATHER`] for
    /// more (none of its callers waits for the disk, and most do not wait
    /// at all: write-behind). Without an fsync a commit is too quick to
    /// gather many writes by itself, and each small commit copies B-tree
    /// pages that a bigger one shares among its writes: at a steady rate
    /// this keeps the writer's CPU per write near what durable commits
    /// cost. A durable request ends the wait at once.
    fn gather_relaxed(&self, rx: &mpsc::Receiver<Request>, batch: &mut Vec<Request>) {
        if self.outage.is_some() || self.durable(batch) {
            return;
        }
        let until = Instant::now() + RELAXED_GATHER;
        while batch.len() < MAX_BATCH {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return;
            };
            match rx.recv_timeout(left) {
                Ok(r) => {
                    let from = batch.len();
                    batch.push(r);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if batch[from..]
                        .iter()
                        .any(|r| r.durability == Durability::Immediate)
                    {
                        return;
                    }
                }
                // Disconnected: `serve` finds out on its next receive.
                Err(_) => return,
            }
        }
    }

    fn handle(&mut self, batch: Vec<Request>) {
        if let Some(o) = &mut self.outage
            && o.working_since.is_none()
        {
            if Instant::now() < o.retry_at {
                // Fail fast: the disk said no a moment ago.
                o.failed += batch.len() as u64;
                let e = o.error.clone();
                answer_all(batch, &e);
                return;
            }
            if o.reopen && !self.reopen() {
                let e = self.reschedule(batch.len());
                answer_all(batch, &e);
                return;
            }
        }
        let purge_from = self.purge_from.clone();
        let durable = self.durable(&batch);
        match self.transact(&batch, durable) {
            Outcome::Done(results) => {
                self.committed(batch.len(), durable);
                for (r, res) in batch.into_iter().zip(results) {
                    let _ = r.reply.send(res);
                }
            }
            Outcome::Failed(e) if !is_damage(&e) => {
                // Nothing was removed: the next purge looks there again.
                self.purge_from = purge_from;
                let e = self.failed(&e, batch.len());
                answer_all(batch, &e);
            }
            Outcome::Failed(damage) => {
                self.purge_from = purge_from;
                self.one_by_one(batch, &damage.to_string());
            }
            Outcome::Panicked(panic) => {
                self.purge_from = purge_from;
                self.one_by_one(batch, &format!("redb panicked: {panic}"));
            }
        }
    }

    /// After damage failed a batch: each request in its own transaction,
    /// so only the ones that touch the damage fail.
    fn one_by_one(&mut self, batch: Vec<Request>, what: &str) {
        if batch.len() == 1 {
            let e = self.inner.damaged(what);
            answer_all(batch, &e);
            return;
        }
        for r in batch {
            if let Some(o) = &mut self.outage {
                o.failed += 1;
                let _ = r.reply.send(Err(o.error.clone()));
                continue;
            }
            let purge_from = self.purge_from.clone();
            let durable = self.durable(std::slice::from_ref(&r));
            let outcome = self.transact(std::slice::from_ref(&r), durable);
            let result = match outcome {
                Outcome::Done(mut results) => {
                    self.committed(1, durable);
                    results.pop().unwrap_or_else(|| Err(self.inner.closed()))
                }
                Outcome::Failed(e) if !is_damage(&e) => {
                    self.purge_from = purge_from;
                    Err(self.failed(&e, 1))
                }
                Outcome::Failed(damage) => {
                    self.purge_from = purge_from;
                    Err(self.inner.damaged(&damage.to_string()))
                }
                Outcome::Panicked(panic) => {
                    self.purge_from = purge_from;
                    Err(self.inner.damaged(&format!("redb panicked: {panic}")))
                }
            };
            let _ = r.reply.send(result);
        }
    }

    /// One write transaction for `batch` (none: a probe, which only
    /// records the time). Every redb call runs guarded, and the transaction
    /// is abandoned outside the unwinding, so a panic on a damaged page
    /// fails this transaction and nothing else.
    fn transact(&mut self, batch: &[Request], durable: bool) -> Outcome {
        let Some(db) = self.inner.database() else {
            return Outcome::Failed(redb::Error::DatabaseClosed);
        };
        let mut tx = match guard::catch(|| db.try_begin_write()) {
            Ok(Ok(tx)) => tx,
            Ok(Err(e)) => return Outcome::Failed(e.into()),
            Err(panic) => return Outcome::Panicked(panic),
        };
        // Explicit, though Immediate is redb's default: acknowledged means
        // on disk, unless every request of the batch said otherwise.
        let durability = if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        if let Err(e) = tx.set_durability(durability) {
            abandon(tx);
            return Outcome::Failed(e.into());
        }
        match self.fill(&tx, batch) {
            Outcome::Done(results) => match guard::catch(move || tx.commit()) {
                Ok(Ok(())) => Outcome::Done(results),
                Ok(Err(e)) => Outcome::Failed(e.into()),
                Err(panic) => Outcome::Panicked(panic),
            },
            failed => {
                abandon(tx);
                failed
            }
        }
    }

    /// Applies `batch` in `tx`, each request guarded; the tables are closed
    /// before returning, so that the caller can commit or abandon `tx`.
    fn fill(&mut self, tx: &WriteTransaction, batch: &[Request]) -> Outcome {
        let opened = guard::catch(|| -> Result<Tables<'_>, redb::Error> {
            Ok(Tables {
                kv: tx.open_table(KV)?,
                items: tx.open_table(LIST_ITEMS)?,
                meta: tx.open_table(LIST_META)?,
                file: tx.open_table(FILE_META)?,
            })
        });
        let mut t = match opened {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Outcome::Failed(e),
            Err(panic) => return Outcome::Panicked(panic),
        };
        let now = self.inner.now_ms();
        let mut results = Vec::with_capacity(batch.len());
        let mut failure = None;
        for r in batch {
            let purge_from = &mut self.purge_from;
            match guard::catch(|| apply(self.inner, purge_from, &mut t, &r.op, now)) {
                Ok(Ok(reply)) => results.push(Ok(reply)),
                Ok(Err(e @ (Fail::Request(_) | Fail::TooLarge(_)))) => {
                    results.push(Err(self.inner.fail(e)));
                }
                Ok(Err(Fail::Storage(e))) => {
                    failure = Some(Outcome::Failed(e));
                    break;
                }
                Err(panic) => {
                    failure = Some(Outcome::Panicked(panic));
                    break;
                }
            }
        }
        if failure.is_none() && batch.is_empty() {
            failure = match guard::catch(|| t.file.insert("probe", now)) {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(Outcome::Failed(e.into())),
                Err(panic) => Some(Outcome::Panicked(panic)),
            };
        }
        let closed = guard::catch(move || drop(t));
        match (failure, closed) {
            (Some(f), _) => f,
            (None, Err(panic)) => Outcome::Panicked(panic),
            (None, Ok(())) => Outcome::Done(results),
        }
    }

    /// Whether `batch` must be committed durably: any durable request in
    /// it, or relaxed commits waiting for longer than the window.
    fn durable(&self, batch: &[Request]) -> bool {
        self.flush_due() || batch.iter().any(|r| r.durability == Durability::Immediate)
    }

    /// When the relaxed commits waiting must be made durable.
    fn flush_at(&self) -> Option<Instant> {
        self.unsynced
            .and_then(|since| since.checked_add(self.inner.relaxed_window))
    }

    fn flush_due(&self) -> bool {
        self.flush_at().is_some_and(|at| at <= Instant::now())
    }

    /// Makes the relaxed commits waiting durable: an empty durable commit
    /// (it only records the time, as a probe). Nothing to do when none
    /// waits. If it fails, the outage handling takes over: the file is
    /// reopened, and the relaxed writes not yet on disk are lost, as they
    /// would be in a crash; the log says how many commits.
    fn flush(&mut self) {
        if self.unsynced.is_none() {
            return;
        }
        if self.outage.as_ref().is_some_and(|o| o.reopen) {
            // The file was already closed for a reopen: nothing to flush.
            self.unsynced = None;
            return;
        }
        match self.transact(&[], true) {
            Outcome::Done(_) => self.committed(0, true),
            // The reopen that follows says what is lost.
            Outcome::Failed(e) if !is_damage(&e) => {
                self.failed(&e, 0);
            }
            Outcome::Failed(e) => {
                tracing::error!(
                    "store {}: making relaxed writes durable hit a damaged page: {e}",
                    self.inner.file.path.display()
                );
                self.unsynced = None;
            }
            Outcome::Panicked(panic) => {
                tracing::error!(
                    "store {}: making relaxed writes durable hit a damaged page: redb panicked: {panic}",
                    self.inner.file.path.display()
                );
                self.unsynced = None;
            }
        }
    }

    fn committed(&mut self, writes: usize, durable: bool) {
        let inner = self.inner;
        if durable {
            self.unsynced = None;
            inner
                .commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            self.unsynced.get_or_insert_with(Instant::now);
            inner
                .relaxed_commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        inner
            .writes
            .fetch_add(writes as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(o) = &mut self.outage {
            match o.working_since {
                None => {
                    o.working_since = Some(Instant::now());
                    inner.set_unwritable(None);
                }
                Some(t) if t.elapsed() >= inner.recovery_quiet => self.end_outage(),
                Some(_) => {}
            }
        }
    }

    /// Writes have worked long enough: the burst is over.
    fn end_outage(&mut self) {
        if let Some(o) = self.outage.take() {
            self.inner.set_unwritable(None);
            tracing::warn!(
                "store {}: writes work again; {} write requests failed in {} s",
                self.inner.file.path.display(),
                o.failed,
                o.since.elapsed().as_secs()
            );
        }
    }

    /// Writing failed: the first failure of a burst is logged and starts an
    /// outage; the file is reopened at once, so that reads work meanwhile.
    fn failed(&mut self, e: &redb::Error, requests: usize) -> StoreError {
        let now = Instant::now();
        match &mut self.outage {
            None => {
                let error = self.inner.write_error(e);
                tracing::error!(
                    "{error} (writes fail at once until then; retrying every {} s at most)",
                    self.inner.retry_max.as_secs().max(1)
                );
                self.outage = Some(Outage {
                    since: now,
                    failed: requests as u64,
                    backoff: self.inner.retry_first,
                    retry_at: now + self.inner.retry_first,
                    reopen: true,
                    error,
                    reopen_error: None,
                    working_since: None,
                });
            }
            Some(o) => {
                // Within the same burst, even if some writes got through.
                o.working_since = None;
                o.failed += requests as u64;
                o.reopen = true;
                o.backoff = (o.backoff * 2).min(self.inner.retry_max);
                o.retry_at = now + o.backoff;
            }
        }
        let error = self.outage.as_ref().map(|o| o.error.clone());
        self.inner.set_unwritable(error.clone());
        self.reopen();
        error.unwrap_or_else(|| self.inner.closed())
    }

    /// A retry failed before it could write: wait longer.
    fn reschedule(&mut self, requests: usize) -> StoreError {
        let Some(o) = &mut self.outage else {
            return self.inner.closed();
        };
        o.failed += requests as u64;
        o.backoff = (o.backoff * 2).min(self.inner.retry_max);
        o.retry_at = Instant::now() + o.backoff;
        o.error.clone()
    }

    /// The retry time came with no write waiting: try a small write, so the
    /// store finds out (and says, through `writable`) that the disk has
    /// room again without waiting for traffic.
    fn probe(&mut self) {
        let Some(o) = &self.outage else { return };
        if o.reopen && !self.reopen() {
            self.reschedule(0);
            return;
        }
        match self.transact(&[], true) {
            Outcome::Done(_) => self.committed(0, true),
            Outcome::Failed(e) if !is_damage(&e) => {
                self.failed(&e, 0);
            }
            Outcome::Failed(_) | Outcome::Panicked(_) => {
                self.reschedule(0);
            }
        }
    }

    /// Closes the file and opens it again (verified), which clears redb's
    /// latched I/O error. False if it could not be opened: reads then fail
    /// with the outage's error until a later try succeeds.
    fn reopen(&mut self) -> bool {
        let inner = self.inner;
        if let Some(since) = self.unsynced.take() {
            // They lived in redb's memory only, as in a crash.
            tracing::error!(
                "store {}: reopening loses the relaxed writes (history, counters, greylist triplets) of the last {} ms, not yet on disk",
                inner.file.path.display(),
                since.elapsed().as_millis()
            );
        }
        if let Some(mut old) = inner.take_database() {
            // Reads hold the handle for one read; a second open of the file
            // in this process is refused until the old one is closed.
            let deadline = Instant::now() + READERS_GRACE;
            loop {
                match std::sync::Arc::try_unwrap(old) {
                    Ok(db) => {
                        let _ = guard::catch(move || drop(db));
                        break;
                    }
                    Err(still_shared) if Instant::now() < deadline => {
                        old = still_shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(still_shared) => {
                        drop(still_shared);
                        break;
                    }
                }
            }
        }
        match inner.file.open() {
            Ok(db) => {
                inner.put_database(db);
                if let Some(o) = &mut self.outage {
                    o.reopen = false;
                    o.reopen_error = None;
                }
                true
            }
            Err(e) => {
                if let Some(o) = &mut self.outage {
                    o.reopen = true;
                    if o.reopen_error.as_deref() != Some(e.message()) {
                        tracing::error!("store: reopening after the failed write: {e}");
                        o.reopen_error = Some(e.message().to_string());
                    }
                    if e.kind() == ErrorKind::Corrupt {
                        o.error = e.clone();
                        inner.set_unwritable(Some(e));
                    }
                }
                false
            }
        }
    }
}

/// Damage, rather than the disk refusing: retrying elsewhere helps,
/// reopening does not.
fn is_damage(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Corrupted(_))
}

fn answer_all(batch: Vec<Request>, e: &StoreError) {
    for r in batch {
        let _ = r.reply.send(Err(e.clone()));
    }
}

/// Drops a transaction that will not commit, outside any unwinding (a
/// panic while unwinding aborts the process) and guarded itself.
fn abandon(tx: WriteTransaction) {
    let _ = guard::catch(move || {
        let _ = tx.abort();
    });
}

pub(crate) struct Tables<'tx> {
    kv: redb::Table<'tx, &'static str, &'static [u8]>,
    items: redb::Table<'tx, (&'static str, u64), &'static [u8]>,
    meta: redb::Table<'tx, &'static str, (u64, u64)>,
    file: redb::Table<'tx, &'static str, u64>,
}

fn invalid(inner: &Inner, message: String) -> Fail {
    Fail::Request(StoreError::new(
        ErrorKind::Invalid,
        format!("{message} (store {})", inner.file.path.display()),
    ))
}

fn apply(
    inner: &Inner,
    purge_from: &mut Option<String>,
    t: &mut Tables<'_>,
    op: &Op,
    now: u64,
) -> Result<Reply, Fail> {
    Ok(match op {
        Op::Set { key, value, ttl } => {
            let old =
                t.kv.insert(key.as_str(), encode(expiry(now, *ttl), value).as_slice())?;
            held(inner, key, old.is_some());
            Reply::Unit
        }
        Op::SetMany { entries, ttl } => {
            let expires = expiry(now, *ttl);
            // One buffer for the round's rows (expiry and value), not an
            // allocation per key: a round is hundreds of them under load.
            let mut row = Vec::with_capacity(128);
            for (key, value) in entries {
                row.clear();
                row.extend_from_slice(&expires.to_be_bytes());
                row.extend_from_slice(value);
                let old = t.kv.insert(key.as_str(), row.as_slice())?;
                held(inner, key, old.is_some());
            }
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
            let old = t.kv.insert(
                key.as_str(),
                encode(expires, n.to_string().as_bytes()).as_slice(),
            )?;
            held(inner, key, old.is_some());
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
        Op::Purge { limit } => Reply::Purged(purge(purge_from, t, *limit, now)?),
        Op::Batch(ops) => {
            // Each op checks what it can refuse before it changes anything
            // (a request failure writes nothing of it), so the others stand.
            let mut refused = None;
            for op in ops {
                match apply(inner, purge_from, t, op, now) {
                    Ok(_) => {}
                    Err(e @ (Fail::Request(_) | Fail::TooLarge(_))) => {
                        refused.get_or_insert(e);
                    }
                    Err(e @ Fail::Storage(_)) => return Err(e),
                }
            }
            match refused {
                Some(e) => return Err(e),
                None => Reply::Unit,
            }
        }
    })
}

/// A key just put in the values table goes in the key filter (before its
/// commit, so no read can find it committed and the filter without it).
/// One that was there already is in it: from the file at open, or from
/// this when it was created.
fn held(inner: &Inner, key: &str, was_there: bool) {
    if !was_there {
        inner.keys.add(key);
    }
}

/// One bounded step of a pass over the values: goes on where the last step
/// stopped, removes at most `limit` expired entries and looks at no more
/// than [`PURGE_SCAN_FACTOR`] × `limit` of them, so the transaction (and
/// every write batched with it) stays short. Lists never expire.
fn purge(
    purge_from: &mut Option<String>,
    t: &mut Tables<'_>,
    limit: usize,
    now: u64,
) -> Result<Purged, Fail> {
    let limit = limit.max(1);
    let budget = limit.saturating_mul(PURGE_SCAN_FACTOR);
    let mut expired = Vec::new();
    let mut next = None;
    {
        let from = purge_from.take();
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
    *purge_from = next;
    Ok(Purged {
        removed: expired.len(),
        more,
    })
}
