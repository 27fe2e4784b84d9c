//! A store file damaged outside redb (4 KiB of garbage, as a bad sector or
//! a stray write leaves it), as issue 11 found it: near the start (the
//! daemon panicked in table setup), in the middle while running (reads
//! panicked on the caller's thread, the first purge killed the writer),
//! and `mxguard store check --repair`.

use mxguard_store::check::{self, Checked, Repaired};
use mxguard_store::{EmbeddedStore, ErrorKind, Store, StoreError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const TRIPLETS: usize = 30_000;

fn key(i: usize) -> String {
    format!(
        "grey:192.0.{}.{}/sender{i}@example.org/rcpt@example.net",
        i / 256 % 256,
        i % 256
    )
}

fn value(i: usize) -> Vec<u8> {
    format!("{},{}", 1_700_000_000 + i, 1_700_000_300 + i).into_bytes()
}

/// A store holding [`TRIPLETS`] greylist triplets, made once per test
/// binary and copied into each test's directory.
fn filled() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    // On a thread of its own: the callers may be inside a runtime.
    BASE.get_or_init(|| std::thread::spawn(make_filled).join().unwrap())
        .path()
}

fn make_filled() -> tempfile::TempDir {
    {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
            let writers: Vec<_> = (0..64)
                .map(|w| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        for i in (w..TRIPLETS).step_by(64) {
                            s.set(&key(i), &value(i), Some(Duration::from_secs(30 * 86400)))
                                .await
                                .unwrap();
                        }
                    })
                })
                .collect();
            for w in writers {
                w.await.unwrap();
            }
        });
        dir
    }
}

/// A copy of the filled store in a directory of its own.
fn copy_of_filled() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mxguard.redb");
    std::fs::copy(filled().join("mxguard.redb"), &file).unwrap();
    (dir, file)
}

/// 4 KiB of garbage at `offset`, written in place (the file keeps its length).
fn damage(file: &Path, offset: u64) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ offset;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
}

fn assert_damage_message(e: &StoreError, file: &Path) {
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let m = e.to_string();
    assert!(
        m.contains(&file.display().to_string()),
        "names the file: {m}"
    );
    assert!(m.contains("is damaged"), "says what happened: {m}");
    assert!(
        m.contains("mxguard store check --repair") && m.contains("backup"),
        "says what to do: {m}"
    );
}

#[test]
fn damage_near_the_start_is_a_clear_error_at_open() {
    // Every 4 KiB page of the first 128 KiB, one at a time. Before, some of
    // these panicked in table setup (in a release build redb does not walk
    // the tree at open) and one aborted the process (a second panic while
    // the write transaction unwound).
    let mut refused = 0;
    for page in 1..32u64 {
        let (dir, file) = copy_of_filled();
        damage(&file, page * 4096);
        match EmbeddedStore::open(dir.path()) {
            Err(e) => {
                assert_damage_message(&e, &file);
                refused += 1;
            }
            // A free page: nothing uses it, so the file is sound.
            Ok(s) => drop(s),
        }
    }
    assert!(refused > 0, "garbage over pages in use is found at open");
}

/// Reads every triplet; returns how many failed (each must be Corrupt).
async fn read_all(s: &EmbeddedStore, file: &Path) -> usize {
    let mut failed = 0;
    for i in 0..TRIPLETS {
        match s.get(&key(i)).await {
            Ok(v) => assert_eq!(v, Some(value(i)), "{}", key(i)),
            Err(e) => {
                assert_damage_message(&e, file);
                failed += 1;
            }
        }
    }
    failed
}

/// The middle of the file, damaged while the store is open (a sector going
/// bad under a running daemon): what used to drop connections and kill the
/// writer thread.
async fn open_then_damage_the_middle() -> (tempfile::TempDir, PathBuf, Arc<EmbeddedStore>) {
    let (dir, file) = copy_of_filled();
    let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let len = std::fs::metadata(&file).unwrap().len();
    damage(&file, len / 2 / 4096 * 4096);
    (dir, file, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_middle_fails_only_the_reads_that_hit_it() {
    let (_dir, file, s) = open_then_damage_the_middle().await;
    let failed = read_all(&s, &file).await;
    assert!(failed > 0, "the damaged page holds some triplets");
    assert!(failed < TRIPLETS / 10, "{failed} reads failed");
    // A second pass answers the same way: nothing is left broken.
    assert_eq!(read_all(&s, &file).await, failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_middle_does_not_stop_the_writer() {
    let (dir, file, s) = open_then_damage_the_middle().await;
    // The purge pass walks every key: it hits the damage. Before, this
    // panicked the writer thread, and every later write failed.
    let mut purge = Ok(mxguard_store::Purged::default());
    for _ in 0..10 {
        purge = s.purge_expired(100_000).await;
        if purge.as_ref().is_ok_and(|p| !p.more) || purge.is_err() {
            break;
        }
    }
    match purge {
        Err(e) => assert_damage_message(&e, &file),
        Ok(p) => assert!(!p.more, "{p:?}"),
    }

    // Writes batched together: those on damaged pages fail, the others
    // are written; none hangs.
    let writes: Vec<_> = (0..TRIPLETS)
        .step_by(29)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { (i, s.set(&key(i), b"rewritten", None).await) })
        })
        .collect();
    let (mut ok, mut damaged) = (0, 0);
    for w in writes {
        let (i, r) = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .expect("no write hangs")
            .unwrap();
        match r {
            Ok(()) => {
                ok += 1;
                assert_eq!(
                    s.get(&key(i)).await.unwrap().as_deref(),
                    Some(&b"rewritten"[..])
                );
            }
            Err(e) => {
                assert_damage_message(&e, &file);
                damaged += 1;
            }
        }
    }
    assert!(ok > 0 && damaged < ok, "{ok} written, {damaged} failed");
    s.set("new-after-damage", b"1", None).await.unwrap();
    assert_eq!(
        s.get("new-after-damage").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert!(
        s.writable().is_ok(),
        "damage does not make the whole store unwritable"
    );
    drop(s);
    // And after all that, the file can still be salvaged.
    assert!(matches!(
        check::repair(dir.path()).unwrap(),
        Repaired::Salvaged { .. }
    ));
}

#[test]
fn check_says_sound_or_damaged_and_refuses_while_the_store_is_open() {
    let (dir, file) = copy_of_filled();
    match check::check(dir.path()).unwrap() {
        Checked::Sound(c) => assert_eq!(c.values, TRIPLETS as u64),
        other => panic!("{other:?}"),
    }
    {
        let _serving = EmbeddedStore::open(dir.path()).unwrap();
        let e = check::check(dir.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
        assert!(e.to_string().contains("stop `mxguard serve`"), "{e}");
        let e = check::repair(dir.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    }
    let len = std::fs::metadata(&file).unwrap().len();
    damage(&file, len / 2 / 4096 * 4096);
    match check::check(dir.path()).unwrap() {
        Checked::Damaged(what) => assert!(what.contains("mxguard.redb"), "{what}"),
        other => panic!("{other:?}"),
    }
    let e = check::check(&dir.path().join("nowhere")).unwrap_err();
    assert!(e.to_string().contains("there is no store"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_keeps_what_can_be_read_and_the_store_opens_again() {
    for offset in [None, Some(4096 * 3)] {
        let (dir, file) = copy_of_filled();
        let len = std::fs::metadata(&file).unwrap().len();
        damage(&file, offset.unwrap_or(len / 2 / 4096 * 4096));
        if EmbeddedStore::open(dir.path()).is_ok() {
            continue; // a free page: nothing to repair
        }
        let repaired = check::repair(dir.path()).unwrap();
        let Repaired::Salvaged {
            kept,
            skipped,
            damaged_file,
            ..
        } = repaired
        else {
            panic!("{repaired:?}");
        };
        // Damage to redb's own bookkeeping (free-page lists) loses no entry.
        assert_eq!(skipped > 0, kept.values < TRIPLETS as u64, "{kept:?}");
        assert!(damaged_file.exists(), "the damaged file is kept");
        assert!(kept.values > TRIPLETS as u64 * 9 / 10, "{kept:?}");
        assert!(matches!(
            check::check(dir.path()).unwrap(),
            Checked::Sound(_)
        ));

        let s = EmbeddedStore::open(dir.path()).unwrap();
        let mut found = 0;
        for i in 0..TRIPLETS {
            if let Some(v) = s.get(&key(i)).await.unwrap() {
                assert_eq!(v, value(i));
                found += 1;
            }
        }
        assert_eq!(found as u64, kept.values);
        s.set("after-repair", b"1", None).await.unwrap();
        assert!(matches!(
            check::repair(dir.path()),
            Err(e) if e.kind() == ErrorKind::InUse
        ));
        drop(s);
        assert!(matches!(
            check::repair(dir.path()).unwrap(),
            Repaired::NothingToDo(_)
        ));
    }
}
