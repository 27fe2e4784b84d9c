//! Opening `mxguard.redb`: verified, without writing when it can, and with
//! errors that say what is wrong and what to do.
//!
//! Every open runs redb's integrity check (the checksum of every page of the
//! committed trees): redb trusts the pages it reads and panics on one
//! damaged outside redb, and a panic while a write transaction unwinds can
//! abort the whole process. A file that passes is safe to use; one that does
//! not is refused with a message naming `mxguard store check --repair`. The
//! check reads the whole file (a few hundred MB/s) and writes only redb's
//! header in place, which a full disk allows on ext4, XFS and tmpfs.
//!
//! Table setup writes only for a new file: an existing one is checked with
//! a read transaction, so `mxguard serve` starts on a full disk.

use crate::disk::{DiskFaults, FaultyFile};
use crate::guard;
use crate::{ErrorKind, Result, StoreError};
use redb::{Database, DatabaseError, ReadableDatabase, TableDefinition, TableError, TableHandle};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The store's file inside the data directory.
pub(crate) const FILE_NAME: &str = "mxguard.redb";

/// key → expiry (unix ms, big-endian, 0 = never) ‖ value
pub(crate) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (list key, sequence number) → item
pub(crate) const LIST_ITEMS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("list_items");
/// list key → (next sequence number, oldest kept sequence number)
pub(crate) const LIST_META: TableDefinition<&str, (u64, u64)> = TableDefinition::new("list_meta");
/// Facts about the file itself: `format`, and `probe` (the time of the last
/// write that tested whether the disk takes writes again).
pub(crate) const FILE_META: TableDefinition<&str, u64> = TableDefinition::new("mxguard_meta");

/// The layout above. A file from a newer mxguard is refused, not misread.
pub(crate) const FORMAT: u64 = 1;

/// redb's page cache. The working set (greylist triplets, counters, recent
/// history) is small, and resident memory matters on a small VPS.
pub(crate) const CACHE_BYTES: usize = 16 << 20;

/// What to say about damage: what to run, or what to restore.
pub(crate) const REPAIR_HINT: &str = "stop mxguard and run `mxguard store check --repair` (it keeps every entry that can still be read), or restore the file from a backup";

/// Where the store lives, and how to open it.
#[derive(Debug, Clone)]
pub(crate) struct StoreFile {
    pub dir: PathBuf,
    pub path: PathBuf,
    pub faults: Option<Arc<DiskFaults>>,
}

impl StoreFile {
    pub(crate) fn new(dir: &Path, faults: Option<Arc<DiskFaults>>) -> StoreFile {
        StoreFile {
            dir: dir.to_path_buf(),
            path: dir.join(FILE_NAME),
            faults,
        }
    }

    /// Opens (creating if needed) and verifies the file, and makes sure its
    /// tables exist.
    pub(crate) fn open(&self) -> Result<Database> {
        let db = self.open_raw(true)?;
        match guard::catch(|| init_tables(&db, self)) {
            Ok(r) => r.map(|()| db),
            Err(panic) => Err(self.damaged(&format!("redb panicked: {panic}"))),
        }
    }

    /// Opens the file with redb, verifying it if `verify`.
    pub(crate) fn open_raw(&self, verify: bool) -> Result<Database> {
        let opened = guard::catch(|| {
            let mut builder = Database::builder();
            builder
                .set_cache_size(CACHE_BYTES)
                .set_check_integrity_on_open(verify);
            match &self.faults {
                None => builder.create(&self.path),
                Some(faults) => {
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&self.path)?;
                    builder.create_with_backend(FaultyFile::new(file, faults.clone())?)
                }
            }
        });
        match opened {
            Ok(r) => r.map_err(|e| self.open_error(e)),
            Err(panic) => Err(self.damaged(&format!("redb panicked: {panic}"))),
        }
    }

    /// The file is damaged: what happened and what to do.
    pub(crate) fn damaged(&self, what: &str) -> StoreError {
        StoreError::new(
            ErrorKind::Corrupt,
            format!(
                "the store {} is damaged ({what}); {REPAIR_HINT}",
                self.path.display()
            ),
        )
    }

    fn open_error(&self, e: DatabaseError) -> StoreError {
        let p = self.path.display();
        match e {
            DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                StoreError::new(
                    ErrorKind::InUse,
                    format!(
                        "the store {p} is in use by another mxguard process (such as `mxguard serve`): only one process may open it at a time; stop that process, or use another data directory (--data-dir)"
                    ),
                )
            }
            DatabaseError::RepairAborted => {
                self.damaged("redb could not finish repairing it after an unclean shutdown")
            }
            DatabaseError::UpgradeRequired(v) => StoreError::new(
                ErrorKind::Open,
                format!(
                    "the store {p} is in an old redb file format ({v}) this mxguard cannot read; move it aside (mxguard starts an empty one)"
                ),
            ),
            e => self.open_failed(e.into()),
        }
    }

    /// An error while opening or preparing the file.
    pub(crate) fn open_failed(&self, e: redb::Error) -> StoreError {
        let p = self.path.display();
        match e {
            redb::Error::Corrupted(what) => self.damaged(&what),
            redb::Error::Io(io) if disk_full(&io) => StoreError::new(
                ErrorKind::Backend,
                format!(
                    "cannot open the store {p}: {io}; free space on the disk holding {}, then start mxguard again",
                    self.dir.display()
                ),
            ),
            e => StoreError::new(
                ErrorKind::Open,
                format!(
                    "cannot open the store {p}: {e}; check that the mxguard user can read and write it and that the disk holding {} has room",
                    self.dir.display()
                ),
            ),
        }
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub(crate) fn disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Checks the file's format and that every table exists, with a read
/// transaction; only a new (or older) file gets a write transaction that
/// creates what is missing.
fn init_tables(db: &Database, file: &StoreFile) -> Result<()> {
    let redb_err = |e: redb::Error| file.open_failed(e);
    let tx = db.begin_read().map_err(|e| redb_err(e.into()))?;
    let format = match tx.open_table(FILE_META) {
        Ok(meta) => meta
            .get("format")
            .map_err(|e| redb_err(e.into()))?
            .map(|g| g.value()),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(redb_err(e.into())),
    };
    if let Some(f) = format.filter(|&f| f > FORMAT) {
        return Err(StoreError::new(
            ErrorKind::Open,
            format!(
                "the store {} was written by a newer mxguard (store format {f}; this one reads up to {FORMAT}); run that version, or move the file aside",
                file.path.display()
            ),
        ));
    }
    let names: Vec<String> = tx
        .list_tables()
        .map_err(|e| redb_err(e.into()))?
        .map(|t| t.name().to_string())
        .collect();
    let complete = format.is_some()
        && [KV.name(), LIST_ITEMS.name(), LIST_META.name()]
            .iter()
            .all(|n| names.iter().any(|have| have == n));
    drop(tx);
    if complete {
        return Ok(());
    }
    let tx = db.begin_write().map_err(|e| redb_err(e.into()))?;
    {
        let mut meta = tx.open_table(FILE_META).map_err(|e| redb_err(e.into()))?;
        if format.is_none() {
            meta.insert("format", FORMAT)
                .map_err(|e| redb_err(e.into()))?;
        }
        tx.open_table(KV).map_err(|e| redb_err(e.into()))?;
        tx.open_table(LIST_ITEMS).map_err(|e| redb_err(e.into()))?;
        tx.open_table(LIST_META).map_err(|e| redb_err(e.into()))?;
    }
    tx.commit().map_err(|e| redb_err(e.into()))
}
