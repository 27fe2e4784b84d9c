//! A simulated full disk under the store's file, for tests.
//!
//! [`DiskFaults`] is a switch handed to [`EmbeddedStore::open_with`]
//! (through [`Options::faults`]); the store's file then goes through a redb
//! storage backend that wraps the ordinary file backend and, while the disk
//! is "full", refuses what a real full disk refuses: writing a block of the
//! file that was never written (a new page, or a hole redb left when it grew
//! the file), with `ENOSPC`. Overwriting a block already on disk (redb's
//! header, a page written before) still works, as on ext4, XFS or tmpfs.
//! Tests of the store and of its callers (the greylist when the store cannot
//! write) use it to fail writes and free space again deterministically.
//!
//! [`EmbeddedStore::open_with`]: crate::EmbeddedStore::open_with
//! [`Options::faults`]: crate::Options::faults

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use std::collections::HashSet;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Block size of the simulated disk.
const BLOCK: u64 = 4096;

/// The switch: `fill()` makes the disk full, `free()` frees space again.
#[derive(Debug, Default)]
pub struct DiskFaults {
    full: AtomicBool,
    refused: AtomicU64,
    syncs: AtomicU64,
    /// Which blocks of the file hold data, kept across reopens of the file
    /// (one switch per store file).
    allocated: Mutex<Option<Allocated>>,
}

impl DiskFaults {
    pub fn new() -> Arc<DiskFaults> {
        Arc::new(DiskFaults::default())
    }

    /// From now on, writes that need a new block fail with `ENOSPC`.
    pub fn fill(&self) {
        self.full.store(true, Ordering::SeqCst);
    }

    /// Space is free again.
    pub fn free(&self) {
        self.full.store(false, Ordering::SeqCst);
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// `fsync`s of the file so far: one per durable commit (tests of
    /// relaxed durability count them).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// Writes refused so far.
    pub fn refused_writes(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

/// The file backend with the simulated disk in front of it.
#[derive(Debug)]
pub(crate) struct FaultyFile {
    inner: FileBackend,
    faults: Arc<DiskFaults>,
}

/// Blocks of the file that hold data on the disk: those below the length
/// the file had when first opened (taken as written), and those written
/// since. A block outside is a hole: writing it needs space.
#[derive(Debug)]
struct Allocated {
    below: u64,
    written: HashSet<u64>,
}

impl FaultyFile {
    pub(crate) fn new(file: std::fs::File, faults: Arc<DiskFaults>) -> io::Result<FaultyFile> {
        let len = file.metadata()?.len();
        faults
            .allocated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| Allocated {
                below: len.div_ceil(BLOCK),
                written: HashSet::new(),
            });
        let inner = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(FaultyFile { inner, faults })
    }

    fn allocated(&self) -> std::sync::MutexGuard<'_, Option<Allocated>> {
        self.faults
            .allocated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn blocks(offset: u64, len: usize) -> std::ops::Range<u64> {
    let end = offset.saturating_add(len as u64);
    offset / BLOCK..end.div_ceil(BLOCK)
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        // Growing makes a hole (no space needed); shrinking frees blocks.
        if let Some(a) = self.allocated().as_mut() {
            let keep = len.div_ceil(BLOCK);
            a.below = a.below.min(keep);
            a.written.retain(|&b| b < keep);
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if let Some(a) = self.allocated().as_mut() {
            let needs_space =
                blocks(offset, data.len()).any(|b| b >= a.below && !a.written.contains(&b));
            if needs_space && self.faults.is_full() {
                self.faults.refused.fetch_add(1, Ordering::SeqCst);
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "No space left on device (simulated)",
                ));
            }
            a.written.extend(blocks(offset, data.len()));
        }
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
