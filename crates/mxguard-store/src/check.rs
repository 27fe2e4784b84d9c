//! `mxguard store check [--repair]`: is the file sound, and if not, keep
//! what can still be read.
//!
//! The check is the open `mxguard serve` does (redb's integrity check: the
//! checksum of every page, and redb's own recovery after an unclean
//! shutdown), followed by a count of what the file holds.
//!
//! redb repairs what a crash leaves (a torn commit, allocator state); it
//! cannot repair a page damaged outside redb, since its commits are
//! two-phase and it refuses to fall back past a damaged primary. The
//! repair here salvages instead: it reads the damaged file read-only,
//! copies every entry it can still read into a new file, skipping the
//! damaged parts of each table, keeps the damaged file beside it as
//! `mxguard.redb.damaged-<unix time>`, and puts the new file in its place.
//! Entries on damaged pages are lost: greylist triplets are simply
//! greylisted again, counters and history rows are gone, and a classifier
//! model on a damaged page must be learned again (`mxguard learn`).

use crate::file::{CACHE_BYTES, FILE_META, FORMAT, KV, LIST_ITEMS, LIST_META, StoreFile};
use crate::{ErrorKind, Result, StoreError, guard};
use redb::{
    Database, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase,
    ReadableTableMetadata,
};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Entries copied per write transaction while salvaging.
const COPY_BATCH: usize = 10_000;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Every page verified; what the file holds.
    Sound(Contents),
    /// Damaged: what redb said.
    Damaged(String),
}

/// What a store file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    /// String and counter keys (expired ones not yet purged included).
    pub values: u64,
    /// Lists, and the items they hold.
    pub lists: u64,
    pub list_items: u64,
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    /// The file was sound: nothing was changed.
    NothingToDo(Contents),
    /// The file was damaged and has been replaced by what could be read.
    Salvaged {
        /// What redb said was wrong.
        damage: String,
        /// What the new file holds.
        kept: Contents,
        /// Places where a damaged part of a table was skipped.
        skipped: u64,
        /// The damaged file, kept beside the new one.
        damaged_file: PathBuf,
    },
}

/// Checks the store in `dir`. Refused ([`ErrorKind::InUse`]) while another
/// process (`mxguard serve`) holds it.
pub fn check(dir: &Path) -> Result<Checked> {
    guard::install_hook();
    let file = StoreFile::new(dir, None);
    if !file.path.exists() {
        return Err(StoreError::new(
            ErrorKind::Open,
            format!(
                "there is no store at {} (check [store] data_dir or --data-dir)",
                file.path.display()
            ),
        ));
    }
    match file.open() {
        Ok(db) => Ok(Checked::Sound(contents(&db, &file)?)),
        Err(e) if e.kind() == ErrorKind::Corrupt => Ok(Checked::Damaged(e.message().to_string())),
        Err(e) => Err(in_use_hint(e)),
    }
}

/// Checks the store in `dir`, and if it is damaged, salvages it.
pub fn repair(dir: &Path) -> Result<Repaired> {
    let damage = match check(dir)? {
        Checked::Sound(c) => return Ok(Repaired::NothingToDo(c)),
        Checked::Damaged(what) => what,
    };
    let file = StoreFile::new(dir, None);
    let old = open_damaged(&file)?;
    let new_path = dir.join(format!("{}.repairing", crate::file::FILE_NAME));
    let _ = std::fs::remove_file(&new_path);
    let new_file = StoreFile {
        dir: dir.to_path_buf(),
        path: new_path.clone(),
        faults: None,
    };
    let new = new_file.open()?;
    let skipped = copy(&old, &new, &file, &new_file)?;
    drop(old);
    let kept = contents(&new, &new_file)?;
    drop(new);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let damaged_file = dir.join(format!("{}.damaged-{stamp}", crate::file::FILE_NAME));
    let io = |what: &str, e: std::io::Error| {
        StoreError::new(
            ErrorKind::Backend,
            format!(
                "repairing the store {}: cannot {what}: {e}; the salvaged copy is {}",
                file.path.display(),
                new_path.display()
            ),
        )
    };
    std::fs::rename(&file.path, &damaged_file).map_err(|e| io("move the damaged file aside", e))?;
    std::fs::rename(&new_path, &file.path).map_err(|e| io("put the salvaged file in place", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync the data directory", e))?;
    Ok(Repaired::Salvaged {
        damage,
        kept,
        skipped,
        damaged_file,
    })
}

fn in_use_hint(e: StoreError) -> StoreError {
    if e.kind() == ErrorKind::InUse {
        StoreError::new(
            ErrorKind::InUse,
            format!(
                "{}. The check needs the file to itself: stop `mxguard serve` first (e.g. systemctl stop mxguard), then run it again",
                e.message()
            ),
        )
    } else {
        e
    }
}

/// The damaged file, read-only and without redb's repair (which the damage
/// makes fail).
fn open_damaged(file: &StoreFile) -> Result<ReadOnlyDatabase> {
    let opened = guard::catch(|| {
        Database::builder()
            .set_cache_size(CACHE_BYTES)
            .open_read_only(&file.path)
    });
    let cannot = |why: String| {
        StoreError::new(
            ErrorKind::Corrupt,
            format!(
                "cannot salvage the store {}: {why}; nothing was changed. Move the file aside (mxguard starts an empty store) or restore it from a backup",
                file.path.display()
            ),
        )
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::RepairAborted)) => Err(cannot(
            "redb reads it only after its own repair, which the damage makes fail (the file was not closed cleanly)".into(),
        )),
        Ok(Err(
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch,
        )) => Err(in_use_hint(StoreError::new(
            ErrorKind::InUse,
            format!("the store {} is in use by another mxguard process", file.path.display()),
        ))),
        Ok(Err(e)) => Err(cannot(e.to_string())),
        Err(panic) => Err(cannot(format!("redb panicked opening it: {panic}"))),
    }
}

/// Counts what the (verified) file holds.
fn contents(db: &Database, file: &StoreFile) -> Result<Contents> {
    let counted = guard::catch(|| -> std::result::Result<Contents, redb::Error> {
        let tx = db.begin_read()?;
        Ok(Contents {
            values: tx.open_table(KV)?.len()?,
            lists: tx.open_table(LIST_META)?.len()?,
            list_items: tx.open_table(LIST_ITEMS)?.len()?,
        })
    });
    match counted {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(file.open_failed(e)),
        Err(panic) => Err(file.damaged(&format!("redb panicked: {panic}"))),
    }
}

/// Copies what can be read from `old` into `new`; returns how many damaged
/// places were skipped. Lists' heads are rebuilt from the items kept, so a
/// list never claims items that were lost.
fn copy(
    old: &ReadOnlyDatabase,
    new: &Database,
    old_file: &StoreFile,
    new_file: &StoreFile,
) -> Result<u64> {
    let tx = guard::catch(|| old.begin_read())
        .map_err(|p| old_file.damaged(&p))?
        .map_err(|e| old_file.open_failed(e.into()))?;
    let mut skipped = 0;
    let mut sink = Sink::new(new, new_file);

    if let Some(kv) = open_table(&tx, KV, old_file)? {
        skipped += salvage(
            |from: Bound<&String>, rev, limit, out: &mut Vec<(String, Vec<u8>)>| {
                let from = bound_str(from);
                let range = kv.range::<&str>((from, Bound::Unbounded))?;
                visit(range, rev, limit, out, |k, v| (k.to_string(), v.to_vec()))
            },
            str_successors,
            &mut |k, v| sink.value(k, v),
        )?;
    } else {
        skipped += 1;
    }
    sink.flush()?;

    let mut heads: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    if let Some(items) = open_table(&tx, LIST_ITEMS, old_file)? {
        skipped += salvage(
            |from: Bound<&(String, u64)>, rev, limit, out: &mut Vec<((String, u64), Vec<u8>)>| {
                let from = match from {
                    Bound::Included((k, n)) => Bound::Included((k.as_str(), *n)),
                    Bound::Excluded((k, n)) => Bound::Excluded((k.as_str(), *n)),
                    Bound::Unbounded => Bound::Unbounded,
                };
                let range = items.range::<(&str, u64)>((from, Bound::Unbounded))?;
                visit(range, rev, limit, out, |(k, n), v| {
                    ((k.to_string(), n), v.to_vec())
                })
            },
            item_successors,
            &mut |(k, n), v| {
                let head = heads.entry(k.clone()).or_insert((n + 1, n));
                head.0 = head.0.max(n + 1);
                head.1 = head.1.min(n);
                sink.item(k, n, v)
            },
        )?;
    } else {
        skipped += 1;
    }
    // A head still readable in the old file keeps its sequence going on.
    if let Some(meta) = open_table(&tx, LIST_META, old_file)? {
        for (k, head) in heads.iter_mut() {
            if let Ok(Ok(Some(next))) =
                guard::catch(|| meta.get(k.as_str()).map(|g| g.map(|g| g.value().0)))
            {
                head.0 = head.0.max(next);
            }
        }
    }
    sink.flush()?;
    sink.heads(heads)?;
    Ok(skipped)
}

fn bound_str(b: Bound<&String>) -> Bound<&str> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_str()),
        Bound::Excluded(k) => Bound::Excluded(k.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn open_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &ReadTransaction,
    def: redb::TableDefinition<K, V>,
    file: &StoreFile,
) -> Result<Option<ReadOnlyTable<K, V>>> {
    match guard::catch(|| tx.open_table(def)) {
        Ok(Ok(t)) => Ok(Some(t)),
        Ok(Err(redb::TableError::TableDoesNotExist(_))) => Ok(None),
        // The table's root is damaged: nothing of it can be read.
        Ok(Err(redb::TableError::Storage(redb::StorageError::Corrupted(_)))) | Err(_) => Ok(None),
        Ok(Err(e)) => Err(file.open_failed(e.into())),
    }
}

/// Reads up to `limit` entries of a range into `out` (forward, or from the
/// end backwards if `rev`), stopping at the first error; what was read
/// before it stays in `out`.
fn visit<K: redb::Key + 'static, OK>(
    range: redb::Range<'_, K, &'static [u8]>,
    rev: bool,
    limit: usize,
    out: &mut Vec<(OK, Vec<u8>)>,
    own: impl Fn(K::SelfType<'_>, &[u8]) -> (OK, Vec<u8>),
) -> std::result::Result<(), redb::Error> {
    let entries: Box<dyn Iterator<Item = _>> = if rev {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    for e in entries.take(limit) {
        let (k, v) = e?;
        out.push(own(k.value(), v.value()));
    }
    Ok(())
}

/// Reads a table in key order, skipping what cannot be read. A scan that
/// fails (redb panics or reports damage) starts again at the nearest key
/// past the damage where a read succeeds (see `successors`); at the end, a
/// scan from the last key backwards picks up what the last skip jumped
/// over. Returns the places skipped.
///
/// `scan(from, rev, limit, out)` reads up to `limit` entries from `from`
/// on (from the end down to `from` if `rev`).
fn salvage<K: Clone + Ord>(
    scan: impl Fn(
        Bound<&K>,
        bool,
        usize,
        &mut Vec<(K, Vec<u8>)>,
    ) -> std::result::Result<(), redb::Error>,
    successors: impl Fn(Option<&K>) -> Vec<K>,
    sink: &mut dyn FnMut(K, Vec<u8>) -> Result<()>,
) -> Result<u64> {
    let mut skipped = 0;
    // Where the next scan starts (included), and the last key copied.
    let mut from: Option<K> = None;
    let mut last: Option<K> = None;
    loop {
        let mut out = Vec::new();
        let start = from.as_ref().map_or(Bound::Unbounded, Bound::Included);
        let read = guard::catch(|| scan(start, false, COPY_BATCH, &mut out));
        let got = out.len();
        for (k, v) in out {
            if last.as_ref().is_none_or(|l| k > *l) {
                last = Some(k.clone());
                sink(k, v)?;
            }
        }
        match read {
            Ok(Ok(())) if got < COPY_BATCH => break,
            Ok(Ok(())) => {
                from = last.clone();
                continue;
            }
            _ => skipped += 1,
        }
        let next = successors(last.as_ref())
            .into_iter()
            .filter(|c| from.as_ref().is_none_or(|f| c > f))
            .find(|c| {
                let mut probe = Vec::new();
                matches!(
                    guard::catch(|| scan(Bound::Included(c), false, 1, &mut probe)),
                    Ok(Ok(()))
                )
            });
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    if skipped > 0 {
        let mut out = Vec::new();
        let end = last.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let _ = guard::catch(|| scan(end, true, usize::MAX, &mut out));
        for (k, v) in out {
            sink(k, v)?;
        }
    }
    Ok(skipped)
}

/// Keys just past `key`, nearest first: `key` + NUL, then `key` cut after
/// each of its characters with that character's successor, from the last
/// one to the first ("ab" → "ab\0", "ac", "b"). Without a key, every
/// printable ASCII character.
fn str_successors(key: Option<&String>) -> Vec<String> {
    let Some(key) = key else {
        return (b'!'..=b'~').map(|c| char::from(c).to_string()).collect();
    };
    let mut out = vec![format!("{key}\0")];
    for (i, c) in key.char_indices().rev() {
        if let Some(next) = (u32::from(c) + 1..=0x10_FFFF).find_map(char::from_u32) {
            out.push(format!("{}{next}", &key[..i]));
        }
    }
    out
}

/// List items past `(list, seq)`: further on in the same list, then in the
/// lists after it.
fn item_successors(key: Option<&(String, u64)>) -> Vec<(String, u64)> {
    let Some((list, seq)) = key else {
        return str_successors(None).into_iter().map(|k| (k, 0)).collect();
    };
    let mut out: Vec<(String, u64)> = [1u64, 64, 4096, 1 << 20]
        .iter()
        .filter_map(|d| seq.checked_add(*d))
        .map(|s| (list.clone(), s))
        .collect();
    out.extend(str_successors(Some(list)).into_iter().map(|k| (k, 0)));
    out
}

/// Writes what is salvaged into the new file, a transaction per
/// [`COPY_BATCH`] entries.
struct Sink<'a> {
    db: &'a Database,
    file: &'a StoreFile,
    values: Vec<(String, Vec<u8>)>,
    items: Vec<(String, u64, Vec<u8>)>,
}

impl<'a> Sink<'a> {
    fn new(db: &'a Database, file: &'a StoreFile) -> Sink<'a> {
        Sink {
            db,
            file,
            values: Vec::new(),
            items: Vec::new(),
        }
    }

    fn value(&mut self, key: String, raw: Vec<u8>) -> Result<()> {
        self.values.push((key, raw));
        if self.values.len() >= COPY_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn item(&mut self, key: String, seq: u64, value: Vec<u8>) -> Result<()> {
        self.items.push((key, seq, value));
        if self.items.len() >= COPY_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let values = std::mem::take(&mut self.values);
        let items = std::mem::take(&mut self.items);
        self.write(|tx| {
            let mut kv = tx.open_table(KV)?;
            for (k, v) in &values {
                kv.insert(k.as_str(), v.as_slice())?;
            }
            let mut t = tx.open_table(LIST_ITEMS)?;
            for (k, n, v) in &items {
                t.insert((k.as_str(), *n), v.as_slice())?;
            }
            Ok(())
        })
    }

    fn heads(&mut self, heads: BTreeMap<String, (u64, u64)>) -> Result<()> {
        self.write(|tx| {
            let mut meta = tx.open_table(LIST_META)?;
            for (k, head) in &heads {
                meta.insert(k.as_str(), *head)?;
            }
            tx.open_table(FILE_META)?.insert("format", FORMAT)?;
            Ok(())
        })
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> std::result::Result<(), redb::Error>,
    ) -> Result<()> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| self.file.open_failed(e.into()))?;
        f(&tx).map_err(|e| self.file.open_failed(e))?;
        tx.commit().map_err(|e| self.file.open_failed(e.into()))
    }
}
