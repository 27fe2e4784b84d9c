//! The embedded store on real redb files.

use mxguard_store::{Counters, EmbeddedStore, History, HistoryRow, Store};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn open() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    (dir, s)
}

#[tokio::test]
async fn primitives() {
    let (_d, s) = open();
    assert_eq!(s.get("a").await.unwrap(), None);
    s.set("a", b"1", None).await.unwrap();
    assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    s.set("b", b"2", None).await.unwrap();
    let many = s.get_many(&["a", "nope", "b"]).await.unwrap();
    assert_eq!(many, vec![Some(b"1".to_vec()), None, Some(b"2".to_vec())]);
    assert!(s.delete("a").await.unwrap());
    assert!(!s.delete("a").await.unwrap());
    assert_eq!(s.incr("c", 2, None).await.unwrap(), 2);
    assert_eq!(s.incr("c", -5, None).await.unwrap(), -3);
    for i in 0..10u8 {
        s.list_push("l", &[i], 4).await.unwrap();
    }
    let items = s.list_range("l", 0, 100).await.unwrap();
    assert_eq!(
        items,
        vec![vec![9], vec![8], vec![7], vec![6]],
        "bounded, newest first"
    );
    assert_eq!(
        s.list_range("l", 1, 2).await.unwrap(),
        vec![vec![8], vec![7]]
    );
    assert!(s.list_range("none", 0, 5).await.unwrap().is_empty());
    s.set("p:1", b"x", None).await.unwrap();
    s.set("p:2", b"y", None).await.unwrap();
    s.set("q:1", b"z", None).await.unwrap();
    let keys: Vec<String> = s
        .scan_prefix("p:", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec!["p:1", "p:2"]);
    assert_eq!(s.scan_prefix("p:", 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn ttl_expiry_and_purge() {
    let (_d, s) = open();
    s.set("short", b"v", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    s.set("long", b"v", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        s.incr("window", 1, Some(Duration::from_millis(150)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.incr("window", 1, Some(Duration::from_secs(60)))
            .await
            .unwrap(),
        2,
        "TTL is set on creation only"
    );
    assert!(s.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        s.get("short").await.unwrap(),
        None,
        "expired entries are invisible before purge"
    );
    assert_eq!(
        s.incr("window", 1, None).await.unwrap(),
        1,
        "an expired counter starts over"
    );
    assert!(s.scan_prefix("short", 10).await.unwrap().is_empty());
    assert_eq!(s.purge_expired().await.unwrap(), 1);
    assert!(s.get("long").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_exact() {
    let (_d, s) = open();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                s.incr("n", 1, None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.incr("n", 0, None).await.unwrap(), 800);
}

#[tokio::test]
async fn reopen_keeps_data_and_a_second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.set("k", b"v", None).await.unwrap();
        let again = EmbeddedStore::open(dir.path())
            .err()
            .expect("second open must fail");
        assert!(
            again.0.contains("in use by another mxguard process"),
            "{again}"
        );
        assert!(again.0.contains("mxguard.redb"), "{again}");
    }
    // The writer thread holds the database until its channel closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn history_and_counters() {
    let (_d, s) = open();
    let store: Arc<dyn Store> = s.clone();
    let h = History::new(store.clone(), 3);
    for i in 0..5 {
        let row = HistoryRow {
            time: f64::from(i),
            queue_id: Some(format!("Q{i}")),
            ip: None,
            from: None,
            rcpts: vec![],
            subject: None,
            message_id: None,
            action: "no action".into(),
            score: 0.0,
            required_score: 15.0,
            symbols: vec![],
            size: 10,
            scan_time_ms: 0.1,
        };
        h.push(&row).await.unwrap();
    }
    let rows = h.recent(10).await.unwrap();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r.queue_id.as_deref().unwrap())
        .collect();
    assert_eq!(ids, vec!["Q4", "Q3", "Q2"]);
    store.list_push("history", b"not json", 3).await.unwrap();
    assert!(
        h.recent(10).await.is_err(),
        "a corrupt row is an error, not a panic"
    );
    let c = Counters::new(store);
    c.incr("scanned", 3).await.unwrap();
    c.incr("action:reject", 1).await.unwrap();
    let all = c.all().await.unwrap();
    assert_eq!(all.get("scanned"), Some(&3));
    assert_eq!(all.get("action:reject"), Some(&1));
}

/// Child mode: write acknowledged values forever, printing each ack.
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
        let s = EmbeddedStore::open(std::path::Path::new(&dir)).unwrap();
        for i in 0u64.. {
            s.set(&format!("k{i}"), &i.to_be_bytes(), None)
                .await
                .unwrap();
            println!("acked {i}");
        }
    });
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
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
        .unwrap();
    let mut last = None;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("acked ") {
            last = Some(n.parse::<u64>().unwrap());
            if last == Some(300) {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let last = last.expect("the child acknowledged writes");
    let s = EmbeddedStore::open(dir.path()).unwrap();
    for i in 0..=last {
        let v = s.get(&format!("k{i}")).await.unwrap();
        assert_eq!(
            v,
            Some(i.to_be_bytes().to_vec()),
            "acknowledged write k{i} was lost"
        );
    }
}
