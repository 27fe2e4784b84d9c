//! The embedded store on real redb files in temporary directories: the
//! conformance suite every backend passes (tests/conformance), then what
//! only a file store has (purging, reopening, locking, crashes, damage).

#[macro_use]
mod conformance;

use mxguard_store::{EmbeddedStore, ErrorKind, ManualClock, Purged, Store, StoreError};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn open() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    (dir, s)
}

/// The conformance suite's harness: a fresh store, time by hand.
async fn embedded(_test: &str) -> conformance::Harness {
    let (dir, s, clock) = open_clocked();
    conformance::Harness {
        store: s,
        clock: Some(clock),
        unit: Duration::from_secs(1),
        _keep: Box::new(dir),
    }
}

conformance_tests!(embedded);

fn open_clocked() -> (tempfile::TempDir, Arc<EmbeddedStore>, Arc<ManualClock>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let s = Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
    (dir, s, clock)
}

#[tokio::test]
async fn ttl_expiry_is_invisible_before_purge() {
    let (_d, s, clock) = open_clocked();
    s.set("short", b"v", Some(Duration::from_secs(2)))
        .await
        .unwrap();
    s.set("long", b"v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    s.set("forever", b"v", None).await.unwrap();
    s.set("cleared", b"v", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    s.set("cleared", b"w", None).await.unwrap(); // SET without TTL clears it
    clock.advance(Duration::from_millis(1999));
    assert!(s.get("short").await.unwrap().is_some(), "not yet expired");
    clock.advance(Duration::from_millis(1));
    assert_eq!(s.get("short").await.unwrap(), None, "expired at its TTL");
    assert_eq!(
        s.get_many(&["short", "long"]).await.unwrap(),
        vec![None, Some(b"v".to_vec())]
    );
    assert!(s.scan_prefix("short", 10).await.unwrap().is_empty());
    assert_eq!(s.get("cleared").await.unwrap().as_deref(), Some(&b"w"[..]));
    assert!(
        !s.delete("short").await.unwrap(),
        "an expired key is absent"
    );

    s.set("short2", b"v", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        s.purge_expired(usize::MAX).await.unwrap(),
        Purged {
            removed: 1,
            more: false
        },
        "short2; short was deleted"
    );
    assert_eq!(s.purge_expired(usize::MAX).await.unwrap().removed, 0);
    assert!(s.get("long").await.unwrap().is_some());
    assert!(s.get("forever").await.unwrap().is_some());
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        s.purge_expired(usize::MAX).await.unwrap().removed,
        1,
        "long"
    );
    assert!(s.get("forever").await.unwrap().is_some());
}

#[tokio::test]
async fn purge_goes_in_bounded_chunks_and_keeps_live_keys() {
    let (_d, s, clock) = open_clocked();
    // Expired and live keys interleaved, as greylist triplets are.
    for i in 0..2500 {
        s.set(&format!("grey:{i:05}"), b"t", Some(Duration::from_secs(1)))
            .await
            .unwrap();
        if i % 10 == 0 {
            s.set(
                &format!("grey:{i:05}+"),
                b"l",
                Some(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        }
    }
    s.set("forever", b"f", None).await.unwrap();
    s.list_push("history", b"h", 10).await.unwrap();
    clock.advance(Duration::from_secs(2));

    let mut chunks = Vec::new();
    loop {
        let p = s.purge_expired(1000).await.unwrap();
        assert!(p.removed <= 1000, "{p:?}");
        chunks.push(p.removed);
        if !p.more {
            break;
        }
        assert!(chunks.len() < 100, "the pass ends: {chunks:?}");
    }
    assert_eq!(chunks, vec![1000, 1000, 500], "bounded chunks");
    assert_eq!(
        s.purge_expired(1000).await.unwrap(),
        Purged {
            removed: 0,
            more: false
        },
        "nothing left"
    );
    // Gone from the file, not only hidden: with the clock back they would
    // be live again.
    clock.back(Duration::from_secs(2));
    let live = s.scan_prefix("grey:", usize::MAX).await.unwrap();
    assert_eq!(live.len(), 250);
    assert!(live.iter().all(|(k, v)| k.ends_with('+') && v == b"l"));
    clock.advance(Duration::from_secs(2));
    assert_eq!(s.get("forever").await.unwrap().as_deref(), Some(&b"f"[..]));
    assert_eq!(
        s.list_len("history").await.unwrap(),
        1,
        "lists never expire"
    );

    // A chunk also looks at a bounded number of live keys: with one
    // expired key among 250 live ones and a limit of 1 (10 looked at per
    // call), the pass takes many calls, most removing nothing.
    s.set("grey:01234x", b"t", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    let (mut calls, mut removed) = (0, 0);
    loop {
        let p = s.purge_expired(1).await.unwrap();
        calls += 1;
        removed += p.removed;
        if !p.more {
            break;
        }
    }
    assert_eq!(removed, 1);
    assert!(calls >= 25, "{calls} calls for 252 keys");
    assert_eq!(s.scan_prefix("grey:", usize::MAX).await.unwrap().len(), 250);
}

/// Embedded only: a list and a value are separate to reads here, where
/// Redis answers WRONGTYPE (callers never mix them: see the crate doc).
#[tokio::test]
async fn lists_and_values_are_separate_to_reads() {
    let (_d, s) = open();
    s.list_push("l", &[1], 4).await.unwrap();
    assert_eq!(s.get("l").await.unwrap(), None);
    assert_eq!(s.get_many(&["l"]).await.unwrap(), vec![None]);
    assert!(s.delete("l").await.unwrap());
    assert_eq!(s.list_len("l").await.unwrap(), 0);
}

#[tokio::test]
async fn reopen_keeps_data_and_ttls() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    {
        let s = EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap();
        s.set("k", b"v", None).await.unwrap();
        s.set("t", b"v", Some(Duration::from_secs(10)))
            .await
            .unwrap();
        s.incr("n", 7, None).await.unwrap();
        for i in 0..5u8 {
            s.list_push("l", &[i], 3).await.unwrap();
        }
    }
    // Drop joins the writer and closes the file: reopen at once.
    let s = EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.get("t").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.incr("n", 1, None).await.unwrap(), 8);
    assert_eq!(
        s.list_range("l", 0, 10).await.unwrap(),
        vec![vec![4], vec![3], vec![2]]
    );
    s.list_push("l", &[5], 3).await.unwrap();
    assert_eq!(s.list_range("l", 0, 1).await.unwrap(), vec![vec![5]]);
    clock.advance(Duration::from_secs(10));
    assert_eq!(s.get("t").await.unwrap(), None, "the expiry survived");
}

/// Reads skip redb for keys the file never held (the key filter): every
/// key written before a reopen, while the filter fills and after, and
/// every key written since, still reads back; keys never written read as
/// absent.
#[tokio::test]
async fn the_key_filter_never_hides_a_written_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..20_000).map(|i| format!("grey:k{i}")).collect();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let entries: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
        s.set_many(&entries, None, mxguard_store::Durability::Immediate)
            .await
            .unwrap();
        s.delete("grey:k7").await.unwrap();
    }
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let mut rounds = 0;
    loop {
        let ready = s.key_filter_ready();
        for (i, k) in keys.iter().enumerate().step_by(7) {
            let want = (i != 7).then(|| b"v".to_vec());
            assert_eq!(s.get(k).await.unwrap(), want, "{k}");
        }
        rounds += 1;
        if ready {
            break;
        }
        assert!(rounds < 10_000, "the key filter never got ready");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let found = s
        .get_many(&["grey:k19999", "grey:k0", "never:written"])
        .await
        .unwrap();
    assert_eq!(found, vec![Some(b"v".to_vec()), Some(b"v".to_vec()), None]);
    for i in 0..1000 {
        assert_eq!(s.get(&format!("never:{i}")).await.unwrap(), None);
    }
    // Written since the open: created, deleted and created again, counted.
    s.set("new", b"1", None).await.unwrap();
    s.set("grey:k7", b"again", None).await.unwrap();
    assert_eq!(s.incr("counter:new", 3, None).await.unwrap(), 3);
    let found = s
        .get_many(&["new", "grey:k7", "counter:new"])
        .await
        .unwrap();
    assert_eq!(
        found,
        vec![
            Some(b"1".to_vec()),
            Some(b"again".to_vec()),
            Some(b"3".to_vec())
        ]
    );
}

#[tokio::test]
async fn a_second_open_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path()).unwrap();
    s.set("k", b"v", None).await.unwrap();
    let e = EmbeddedStore::open(dir.path()).expect_err("second open must fail");
    assert_in_use(&e);
    drop(s);
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

fn assert_in_use(e: &StoreError) {
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    let m = e.to_string();
    assert!(m.contains("mxguard.redb"), "names the file: {m}");
    assert!(m.contains("another mxguard process"), "{m}");
    assert!(m.contains("mxguard serve"), "{m}");
}

#[test]
fn unusable_data_dirs_and_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    // The data dir path is a file.
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let e = EmbeddedStore::open(&file).expect_err("a file is no dir");
    assert_eq!(e.kind(), ErrorKind::Open, "{e}");
    assert!(e.to_string().contains("data directory"), "{e}");

    // mxguard.redb is not a redb file.
    let junk = dir.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("mxguard.redb"), vec![0x5a; 64 * 1024]).unwrap();
    let e = EmbeddedStore::open(&junk).expect_err("junk is no store");
    assert!(
        matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Open),
        "{e}"
    );
    assert!(e.to_string().contains("mxguard.redb"), "{e}");
}

#[test]
fn a_file_from_a_newer_mxguard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    {
        let db = redb::Database::create(dir.path().join("mxguard.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx
                .open_table(redb::TableDefinition::<&str, u64>::new("mxguard_meta"))
                .unwrap();
            t.insert("format", 99).unwrap();
        }
        tx.commit().unwrap();
    }
    let e = EmbeddedStore::open(dir.path()).expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Open, "{e}");
    assert!(e.to_string().contains("newer mxguard"), "{e}");
}

#[tokio::test]
async fn concurrent_writes_share_commits() {
    let (_d, s) = open();
    let before = s.stats();
    let writes = (0..200).map(|i| {
        let s = s.clone();
        async move { s.set(&format!("k{i}"), b"v", None).await }
    });
    for r in futures_join_all(writes).await {
        r.unwrap();
    }
    let after = s.stats();
    let (commits, writes) = (after.commits - before.commits, after.writes - before.writes);
    assert_eq!(writes, 200);
    assert!(
        commits <= 20,
        "200 concurrent writes took {commits} commits: group commit is not batching"
    );
}

/// Child mode of `acknowledged_writes_survive_kill_9` (does nothing in a
/// normal run): four concurrent writers each do a set, a list push and an
/// incr, and print `acked <writer> <i>` once all three are acknowledged.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os("MXGUARD_STORE_CRASH_DIR") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Arc::new(EmbeddedStore::open(std::path::Path::new(&dir)).unwrap());
        let writers = (0..4u64).map(|w| {
            let s = s.clone();
            async move {
                // Bounded, in case the parent dies without killing us.
                for i in 0..100_000u64 {
                    s.set(&format!("k:{w}:{i}"), &i.to_be_bytes(), None)
                        .await
                        .unwrap();
                    s.list_push(&format!("log:{w}"), &i.to_be_bytes(), usize::MAX)
                        .await
                        .unwrap();
                    s.incr(&format!("n:{w}"), 1, None).await.unwrap();
                    println!("acked {w} {i}");
                }
            }
        });
        futures_join_all(writers).await;
    });
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MXGUARD_STORE_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new();
    let mut total = 0;
    let mut checked_in_use = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("acked ") else {
            continue;
        };
        let (w, i) = rest.split_once(' ').unwrap();
        let (w, i): (u64, u64) = (w.parse().unwrap(), i.parse().unwrap());
        acked.insert(w, i);
        total += 1;
        if !checked_in_use {
            // Another process holds the store now.
            assert_in_use(&EmbeddedStore::open(dir.path()).expect_err("in use"));
            checked_in_use = true;
        }
        if total == 300 {
            break;
        }
    }
    assert_eq!(total, 300, "the child acknowledged writes");
    child.0.kill().unwrap(); // SIGKILL, mid-write
    child.0.wait().unwrap();

    let s = EmbeddedStore::open(dir.path()).unwrap();
    for (&w, &last) in &acked {
        for i in 0..=last {
            assert_eq!(
                s.get(&format!("k:{w}:{i}")).await.unwrap(),
                Some(i.to_be_bytes().to_vec()),
                "acknowledged set k:{w}:{i} was lost"
            );
        }
        let n = s.incr(&format!("n:{w}"), 0, None).await.unwrap();
        assert!(n > last as i64, "writer {w}: counter {n}, acked {last}");
        let len = s.list_len(&format!("log:{w}")).await.unwrap() as u64;
        assert!(len > last, "writer {w}: list of {len}, acked {last}");
        // Newest first; anything beyond the last ack was simply not acknowledged.
        let items = s
            .list_range(&format!("log:{w}"), 0, usize::MAX)
            .await
            .unwrap();
        let got: Vec<u64> = items
            .iter()
            .rev()
            .map(|b| u64::from_be_bytes(b[..8].try_into().unwrap()))
            .collect();
        assert_eq!(got[..=last as usize], (0..=last).collect::<Vec<_>>()[..]);
    }
}

/// Polls futures together on this task (like `futures::join_all`, without
/// the dependency), so their store requests are in flight at once.
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test]
async fn a_damaged_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let sets = (0..2000u32).map(|i| {
            let s = s.clone();
            async move { s.set(&format!("key{i}"), &[7u8; 100], None).await }
        });
        for r in futures_join_all(sets).await {
            r.unwrap();
        }
    }
    // Garbage over every page but the header: a plain redb open panics on
    // such a file; the store reports it instead.
    let path = dir.path().join("mxguard.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in &mut bytes[4096..] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = EmbeddedStore::open(dir.path()).expect_err("a damaged store does not open");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("mxguard.redb"), "{e}");
    assert!(
        e.to_string().contains("mxguard store check --repair"),
        "{e}"
    );
}
