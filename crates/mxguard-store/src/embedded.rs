//! The embedded backend: one redb file in the data directory.
//!
//! Why redb: pure Rust (no C build, unlike SQLite), ACID with durable
//! commits (an acknowledged write survives kill -9 and power loss), one
//! file, no background compaction threads (fjall is an LSM tree built for
//! write-heavy loads we do not have), and a small dependency tree.
//!
//! Writes go to one writer thread, which applies every pending request in a
//! single transaction and commits once (group commit): under concurrency a
//! single fsync acknowledges many writes. A caller's future resolves only
//! after the commit that holds its write. Reads use their own read
//! transactions and never wait for the writer.
//!
//! redb locks its file to one process: a second `mxguard` opening the same
//! data directory gets an error that says so.

use crate::{BoxFuture, Result, Store, StoreError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// key → expiry (unix ms, 0 = never) ‖ value
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (list key, sequence) → item
const LIST_ITEMS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("list_items");
/// list key → (next sequence, oldest sequence)
const LIST_META: TableDefinition<&str, (u64, u64)> = TableDefinition::new("list_meta");

/// redb's page cache.
const CACHE_BYTES: usize = 16 << 20;

/// Writes applied together in one transaction.
const MAX_BATCH: usize = 4096;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn expiry(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| now_ms().saturating_add(t.as_millis().max(1) as u64))
}

fn encode(expires: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// The live value of a stored record, or `None` if it has expired.
fn decode(raw: &[u8], now: u64) -> Option<(u64, &[u8])> {
    let (head, value) = raw.split_at_checked(8)?;
    let expires = u64::from_be_bytes(head.try_into().ok()?);
    (expires == 0 || expires > now).then_some((expires, value))
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
    Purge,
}

enum Reply {
    Unit,
    Bool(bool),
    Int(i64),
    Count(usize),
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Reply>>,
}

pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
    writer: mpsc::Sender<Request>,
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/mxguard.redb`.
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError(format!("cannot create the data directory {}: {e}; set [store] data_dir or --data-dir to a writable directory", dir.display()))
        })?;
        let path = dir.join("mxguard.redb");
        // A small page cache: the working set (greylist triplets, counters,
        // history) is small, and RSS matters on a 2 GB VPS.
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError(format!(
                "the store {} is in use by another mxguard process (such as `mxguard serve`); stop it, or use another --data-dir",
                path.display()
            )),
            e => StoreError(format!("cannot open the store {}: {e}", path.display())),
        })?;
        let db = Arc::new(db);
        {
            let tx = db.begin_write().map_err(|e| err(&path, e))?;
            tx.open_table(KV).map_err(|e| err(&path, e))?;
            tx.open_table(LIST_ITEMS).map_err(|e| err(&path, e))?;
            tx.open_table(LIST_META).map_err(|e| err(&path, e))?;
            tx.commit().map_err(|e| err(&path, e))?;
        }
        let (tx, rx) = mpsc::channel::<Request>();
        let wdb = db.clone();
        let wpath = path.clone();
        std::thread::Builder::new()
            .name("mxguard-store".into())
            .spawn(move || writer(wdb, wpath, rx))
            .map_err(|e| StoreError(format!("cannot start the store writer: {e}")))?;
        Ok(EmbeddedStore {
            db,
            path,
            writer: tx,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn write(&self, op: Op) -> Result<Reply> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(Request { op, reply: tx }).map_err(|_| {
            StoreError(format!(
                "the store writer for {} has stopped",
                self.path.display()
            ))
        })?;
        rx.await.map_err(|_| {
            StoreError(format!(
                "the store writer for {} has stopped",
                self.path.display()
            ))
        })?
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let tx = self.db.begin_read().map_err(|e| err(&self.path, e))?;
        f(&tx).map_err(|e| err(&self.path, e))
    }
}

fn err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError(format!("store {}: {}", path.display(), e.into()))
}

/// The writer thread: batches every pending request into one transaction.
fn writer(db: Arc<Database>, path: PathBuf, rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut results: Vec<Result<Reply>> = Vec::with_capacity(batch.len());
        let outcome = (|| -> std::result::Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut kv = tx.open_table(KV)?;
                let mut items = tx.open_table(LIST_ITEMS)?;
                let mut meta = tx.open_table(LIST_META)?;
                let now = now_ms();
                for r in &batch {
                    results.push(
                        apply(&r.op, now, &mut kv, &mut items, &mut meta)
                            .map_err(|e| err(&path, e)),
                    );
                }
            }
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = outcome {
            let e = err(&path, e);
            for r in batch {
                let _ = r.reply.send(Err(e.clone()));
            }
            continue;
        }
        for (r, res) in batch.into_iter().zip(results) {
            let _ = r.reply.send(res);
        }
    }
}

fn apply(
    op: &Op,
    now: u64,
    kv: &mut redb::Table<&str, &[u8]>,
    items: &mut redb::Table<(&str, u64), &[u8]>,
    meta: &mut redb::Table<&str, (u64, u64)>,
) -> std::result::Result<Reply, redb::Error> {
    Ok(match op {
        Op::Set { key, value, ttl } => {
            kv.insert(key.as_str(), encode(expiry(*ttl), value).as_slice())?;
            Reply::Unit
        }
        Op::Delete { key } => {
            let live = kv
                .remove(key.as_str())?
                .is_some_and(|g| decode(g.value(), now).is_some());
            Reply::Bool(live)
        }
        Op::Incr { key, by, ttl } => {
            let current = kv.get(key.as_str())?.and_then(|g| {
                decode(g.value(), now).map(|(exp, v)| {
                    let n = std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .unwrap_or(0);
                    (exp, n)
                })
            });
            let (exp, n) = match current {
                Some((exp, n)) => (exp, n.saturating_add(*by)),
                None => (expiry(*ttl), *by),
            };
            kv.insert(
                key.as_str(),
                encode(exp, n.to_string().as_bytes()).as_slice(),
            )?;
            Reply::Int(n)
        }
        Op::Push {
            key,
            value,
            max_len,
        } => {
            let (next, mut oldest) = meta.get(key.as_str())?.map_or((0, 0), |g| g.value());
            items.insert((key.as_str(), next), value.as_slice())?;
            let next = next + 1;
            while next - oldest > (*max_len).max(1) as u64 {
                items.remove((key.as_str(), oldest))?;
                oldest += 1;
            }
            meta.insert(key.as_str(), (next, oldest))?;
            Reply::Unit
        }
        Op::Purge => {
            let expired: Vec<String> = kv
                .iter()?
                .filter_map(|e| e.ok())
                .filter(|(_, v)| decode(v.value(), now).is_none())
                .map(|(k, _)| k.value().to_string())
                .collect();
            for k in &expired {
                kv.remove(k.as_str())?;
            }
            Reply::Count(expired.len())
        }
    })
}

fn unexpected() -> StoreError {
    StoreError("store writer answered the wrong kind of result".into())
}

impl Store for EmbeddedStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.read(|tx| {
                let t = tx.open_table(KV)?;
                Ok(t.get(key)?
                    .and_then(|g| decode(g.value(), now_ms()).map(|(_, v)| v.to_vec())))
            })
        })
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            self.read(|tx| {
                let t = tx.open_table(KV)?;
                let now = now_ms();
                keys.iter()
                    .map(|k| {
                        Ok(t.get(*k)?
                            .and_then(|g| decode(g.value(), now).map(|(_, v)| v.to_vec())))
                    })
                    .collect()
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
                _ => Err(unexpected()),
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
                _ => Err(unexpected()),
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
            self.read(|tx| {
                let meta = tx.open_table(LIST_META)?;
                let Some((next, oldest)) = meta.get(key)?.map(|g| g.value()) else {
                    return Ok(Vec::new());
                };
                let items = tx.open_table(LIST_ITEMS)?;
                let mut out = Vec::new();
                for e in items
                    .range((key, oldest)..(key, next))?
                    .rev()
                    .skip(start)
                    .take(count)
                {
                    let (_, v) = e?;
                    out.push(v.value().to_vec());
                }
                Ok(out)
            })
        })
    }

    fn scan_prefix<'a>(
        &'a self,
        prefix: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<crate::Entries>> {
        Box::pin(async move {
            self.read(|tx| {
                let t = tx.open_table(KV)?;
                let now = now_ms();
                let mut out = Vec::new();
                for e in t.range(prefix..)? {
                    let (k, v) = e?;
                    if !k.value().starts_with(prefix) || out.len() >= limit {
                        break;
                    }
                    if let Some((_, v)) = decode(v.value(), now) {
                        out.push((k.value().to_string(), v.to_vec()));
                    }
                }
                Ok(out)
            })
        })
    }

    fn purge_expired(&self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            match self.write(Op::Purge).await? {
                Reply::Count(n) => Ok(n),
                _ => Err(unexpected()),
            }
        })
    }
}
