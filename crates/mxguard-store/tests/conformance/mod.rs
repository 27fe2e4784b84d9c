//! The one behavioural suite of the `Store` trait, run against every
//! backend: the embedded store (tests/store.rs) and Redis on a single node
//! over TCP and a unix socket and on a three-node cluster (tests/redis.rs).
//! A backend that passes it is a drop-in for the callers.
//!
//! Time goes by a [`Harness`]: the embedded store's hand-moved clock, or
//! real sleeps for Redis (which expires keys by its own clock), in units
//! short enough to keep the suite quick and with margins either side of
//! every expiry.
#![allow(dead_code)]

use mxguard_store::{
    Counters, Durability, ErrorKind, History, HistoryRow, ManualClock, Store, Write,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A backend under test and how its time passes.
pub struct Harness {
    pub store: Arc<dyn Store>,
    /// The embedded store's clock; `None`: real time (Redis).
    pub clock: Option<Arc<ManualClock>>,
    /// One unit of test time: TTLs are a few units.
    pub unit: Duration,
    /// Keeps the backend alive (a temporary directory, a server).
    pub _keep: Box<dyn std::any::Any + Send + Sync>,
}

impl Harness {
    /// `n` units.
    pub fn t(&self, n: u32) -> Duration {
        self.unit * n
    }

    /// Lets `d` pass for the store's TTLs.
    pub async fn pass(&self, d: Duration) {
        match &self.clock {
            Some(c) => c.advance(d),
            None => tokio::time::sleep(d).await,
        }
    }
}

/// Generates one `#[tokio::test]` per behaviour, each on a fresh harness
/// from `$make` (an async fn taking the test's name).
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@each $make;
            get_set_delete_and_get_many,
            values_are_bytes_of_any_size,
            set_many_sets_all_with_one_ttl,
            incr_is_decimal_text_and_rejects_non_integers,
            a_failed_request_does_not_fail_its_batch,
            a_write_batch_applies_each_write_on_its_own,
            ttl_expiry_is_invisible,
            incr_ttl_is_a_fixed_window,
            lists_are_bounded_and_newest_first,
            a_long_list_trims_as_it_goes,
            scan_prefix_lists_keys_in_order_within_the_prefix,
            concurrent_increments_are_exact,
            history_keeps_the_last_rows_and_counters_count,
            damaged_rows_and_counters_are_errors_not_panics,
            a_working_store_is_writable
        );
    };
    (@each $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let h = $make(stringify!($name)).await;
                conformance::$name(&h).await;
            }
        )*
    };
}

fn keys(entries: Vec<(String, Vec<u8>)>) -> Vec<String> {
    entries.into_iter().map(|(k, _)| k).collect()
}

pub fn row(i: u32) -> HistoryRow {
    HistoryRow {
        time: 1_700_000_000.0 + f64::from(i),
        queue_id: Some(format!("Q{i}")),
        ip: Some("192.0.2.7".into()),
        from: Some("a@example.org".into()),
        rcpts: vec!["b@example.net".into(), "c@example.net".into()],
        subject: Some(format!("héllo {i}")),
        message_id: Some(format!("<{i}@example.org>")),
        action: "no action".into(),
        score: 1.5,
        required_score: 15.0,
        symbols: vec!["GTUBE(0.00)".into(), "R_SPF_ALLOW(-0.20)".into()],
        size: 1234,
        scan_time_ms: 0.25,
    }
}

pub async fn get_set_delete_and_get_many(h: &Harness) {
    let s = &h.store;
    assert_eq!(s.get("a").await.unwrap(), None);
    s.set("a", b"1", None).await.unwrap();
    assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    s.set("a", b"one", None).await.unwrap();
    assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
    s.set("empty", b"", None).await.unwrap();
    assert_eq!(
        s.get("empty").await.unwrap(),
        Some(vec![]),
        "empty is not absent"
    );
    s.set("b", b"2", None).await.unwrap();
    let many = s.get_many(&["a", "nope", "b", "a"]).await.unwrap();
    assert_eq!(
        many,
        vec![
            Some(b"one".to_vec()),
            None,
            Some(b"2".to_vec()),
            Some(b"one".to_vec())
        ]
    );
    assert!(s.get_many(&[]).await.unwrap().is_empty());
    assert!(s.delete("a").await.unwrap());
    assert!(!s.delete("a").await.unwrap());
    assert_eq!(s.get("a").await.unwrap(), None);
    assert!(!s.describe().is_empty());
}

pub async fn values_are_bytes_of_any_size(h: &Harness) {
    let s = &h.store;
    let binary: Vec<u8> = (0..=255u8).chain([0, 0, b'\r', b'\n']).collect();
    s.set("bin", &binary, None).await.unwrap();
    assert_eq!(s.get("bin").await.unwrap(), Some(binary.clone()));
    // A classifier model is a few megabytes.
    let blob: Vec<u8> = (0..4 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    s.set("bayes:model", &blob, None).await.unwrap();
    assert_eq!(s.get("bayes:model").await.unwrap(), Some(blob));
    // Keys with spaces, braces (a Redis Cluster hash tag) and non-ASCII.
    for k in ["grey:a b/c", "grey:{x}/y", "grey:{}/z", "grey:é/ü"] {
        s.set(k, k.as_bytes(), None).await.unwrap();
    }
    let got = s
        .get_many(&["grey:a b/c", "grey:{x}/y", "grey:{}/z", "grey:é/ü"])
        .await
        .unwrap();
    assert!(
        got.iter()
            .zip(["grey:a b/c", "grey:{x}/y", "grey:{}/z", "grey:é/ü"])
            .all(|(v, k)| v.as_deref() == Some(k.as_bytes())),
        "{got:?}"
    );
}

pub async fn set_many_sets_all_with_one_ttl(h: &Harness) {
    let s = &h.store;
    let entries: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("grey:m{i}"), format!("v{i}").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    s.set_many(&refs, Some(h.t(4)), mxguard_store::Durability::Relaxed)
        .await
        .unwrap();
    s.set_many(
        &[("forever", b"f")],
        None,
        mxguard_store::Durability::Immediate,
    )
    .await
    .unwrap();
    s.set_many(&[], None, mxguard_store::Durability::Immediate)
        .await
        .unwrap();
    let ks: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    let got = s.get_many(&ks).await.unwrap();
    assert!(
        got.iter()
            .zip(&entries)
            .all(|(g, (_, v))| g.as_deref() == Some(v.as_slice())),
        "every value landed"
    );
    h.pass(h.t(2)).await;
    assert!(s.get("grey:m7").await.unwrap().is_some(), "not yet expired");
    h.pass(h.t(3)).await;
    assert!(
        s.get_many(&ks).await.unwrap().iter().all(Option::is_none),
        "all expired with the one TTL"
    );
    assert_eq!(s.get("forever").await.unwrap().as_deref(), Some(&b"f"[..]));
}

pub async fn incr_is_decimal_text_and_rejects_non_integers(h: &Harness) {
    let s = &h.store;
    assert_eq!(s.incr("c", 2, None).await.unwrap(), 2);
    assert_eq!(s.incr("c", -5, None).await.unwrap(), -3);
    assert_eq!(s.incr("c", 0, None).await.unwrap(), -3);
    assert_eq!(s.get("c").await.unwrap().as_deref(), Some(&b"-3"[..]));
    s.set("d", b"41", None).await.unwrap();
    assert_eq!(s.incr("d", 1, None).await.unwrap(), 42, "set then incr");

    s.set("text", b"hello", None).await.unwrap();
    let e = s.incr("text", 1, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.message().contains("`text`"), "{e}");
    assert_eq!(s.get("text").await.unwrap().as_deref(), Some(&b"hello"[..]));

    s.set("big", i64::MAX.to_string().as_bytes(), None)
        .await
        .unwrap();
    let e = s.incr("big", 1, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert_eq!(
        s.incr("big", 0, None).await.unwrap(),
        i64::MAX,
        "unchanged, exact"
    );
    assert_eq!(
        s.incr("big", -1, None).await.unwrap(),
        i64::MAX - 1,
        "no rounding near i64::MAX"
    );
}

pub async fn a_failed_request_does_not_fail_its_batch(h: &Harness) {
    let s = &h.store;
    s.set("text", b"x", None).await.unwrap();
    // Sent together, so the backend very likely handles them in one batch.
    let (a, b, c) = tokio::join!(
        s.incr("n", 1, None),
        s.incr("text", 1, None),
        s.set("k", b"v", None)
    );
    assert_eq!(a.unwrap(), 1);
    assert_eq!(b.unwrap_err().kind(), ErrorKind::Invalid);
    c.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// `write_batch` (the scan service's history rows and counters in one
/// request; one pipeline on Redis): each write lands as its single-write
/// method would have written it, pushes to one list in a row keep their
/// order and the bound, and a refused write (a counter on text) is
/// returned while the others of the batch stand.
pub async fn a_write_batch_applies_each_write_on_its_own(h: &Harness) {
    let s = &h.store;
    s.set("text", b"not a number", None).await.unwrap();
    s.incr("n", 5, None).await.unwrap();
    let mut writes = vec![
        Write::Set {
            key: "k",
            value: b"v",
            ttl: Some(h.t(2)),
        },
        Write::Incr {
            key: "n",
            by: 2,
            ttl: None,
        },
        Write::Incr {
            key: "window",
            by: 3,
            ttl: Some(h.t(2)),
        },
    ];
    let values: Vec<Vec<u8>> = (0..5).map(|i| format!("item {i}").into_bytes()).collect();
    writes.extend(values.iter().map(|v| Write::Push {
        key: "list",
        value: v,
        max_len: 3,
    }));
    // Another list, then the first one again: each push in its place.
    writes.push(Write::Push {
        key: "other",
        value: b"o",
        max_len: 10,
    });
    writes.push(Write::Push {
        key: "list",
        value: b"last",
        max_len: 3,
    });
    s.write_batch(&writes, Durability::Relaxed).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.get("n").await.unwrap().as_deref(), Some(&b"7"[..]));
    assert_eq!(s.get("window").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(
        s.list_range("list", 0, 10).await.unwrap(),
        vec![b"last".to_vec(), b"item 4".to_vec(), b"item 3".to_vec()],
        "newest first, trimmed to max_len"
    );
    assert_eq!(
        s.list_range("other", 0, 10).await.unwrap(),
        vec![b"o".to_vec()]
    );
    // The batch's TTLs hold: the set value and the new counter expire.
    h.pass(h.t(3)).await;
    assert_eq!(s.get("k").await.unwrap(), None);
    assert_eq!(s.get("window").await.unwrap(), None);
    assert_eq!(s.get("n").await.unwrap().as_deref(), Some(&b"7"[..]));

    let failing = [
        Write::Incr {
            key: "text",
            by: 1,
            ttl: None,
        },
        Write::Incr {
            key: "n",
            by: 1,
            ttl: None,
        },
        Write::Set {
            key: "after",
            value: b"x",
            ttl: None,
        },
    ];
    let e = s
        .write_batch(&failing, Durability::Immediate)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.message().contains("text"), "names the key: {e}");
    assert_eq!(s.get("n").await.unwrap().as_deref(), Some(&b"8"[..]));
    assert_eq!(s.get("after").await.unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(
        s.get("text").await.unwrap().as_deref(),
        Some(&b"not a number"[..]),
        "the refused write changed nothing"
    );
    s.write_batch(&[], Durability::Relaxed).await.unwrap();
}

pub async fn ttl_expiry_is_invisible(h: &Harness) {
    let s = &h.store;
    s.set("short", b"v", Some(h.t(2))).await.unwrap();
    s.set("long", b"v", Some(h.t(100))).await.unwrap();
    s.set("forever", b"v", None).await.unwrap();
    s.set("cleared", b"v", Some(h.t(1))).await.unwrap();
    s.set("cleared", b"w", None).await.unwrap(); // SET without TTL clears it
    h.pass(h.t(1)).await;
    assert!(s.get("short").await.unwrap().is_some(), "not yet expired");
    h.pass(h.t(2)).await;
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
    assert!(s.get("forever").await.unwrap().is_some());
    assert!(s.get("long").await.unwrap().is_some());
}

pub async fn incr_ttl_is_a_fixed_window(h: &Harness) {
    let s = &h.store;
    let w = Some(h.t(4));
    assert_eq!(s.incr("rate", 1, w).await.unwrap(), 1);
    h.pass(h.t(2)).await;
    assert_eq!(s.incr("rate", 1, w).await.unwrap(), 2, "same window");
    h.pass(h.t(1)).await;
    assert_eq!(
        s.incr("rate", 1, w).await.unwrap(),
        3,
        "the TTL was not extended by later increments"
    );
    h.pass(h.t(2)).await;
    assert_eq!(s.get("rate").await.unwrap(), None, "window over");
    assert_eq!(s.incr("rate", 1, w).await.unwrap(), 1, "a new window");

    // EXPIRE NX: a key without a TTL gets one.
    assert_eq!(s.incr("plain", 5, None).await.unwrap(), 5);
    assert_eq!(s.incr("plain", 1, w).await.unwrap(), 6);
    h.pass(h.t(5)).await;
    assert_eq!(s.get("plain").await.unwrap(), None);
}

pub async fn lists_are_bounded_and_newest_first(h: &Harness) {
    let s = &h.store;
    assert!(s.list_range("none", 0, 5).await.unwrap().is_empty());
    assert_eq!(s.list_len("none").await.unwrap(), 0);
    for i in 0..10u8 {
        s.list_push("l", &[i], 4).await.unwrap();
    }
    assert_eq!(s.list_len("l").await.unwrap(), 4);
    let all = s.list_range("l", 0, 100).await.unwrap();
    assert_eq!(all, vec![vec![9], vec![8], vec![7], vec![6]]);
    assert_eq!(
        s.list_range("l", 1, 2).await.unwrap(),
        vec![vec![8], vec![7]]
    );
    assert_eq!(s.list_range("l", 3, 5).await.unwrap(), vec![vec![6]]);
    assert!(s.list_range("l", 4, 5).await.unwrap().is_empty());
    assert!(s.list_range("l", usize::MAX, 5).await.unwrap().is_empty());
    assert!(s.list_range("l", 0, 0).await.unwrap().is_empty());
    assert_eq!(s.list_range("l", 0, usize::MAX).await.unwrap().len(), 4);
    assert_eq!(s.list_range("l", 2, usize::MAX).await.unwrap().len(), 2);

    // A larger bound keeps more from now on; a smaller one trims at once.
    s.list_push("l", &[10], 6).await.unwrap();
    s.list_push("l", &[11], 6).await.unwrap();
    assert_eq!(s.list_len("l").await.unwrap(), 6);
    s.list_push("l", &[12], 2).await.unwrap();
    assert_eq!(
        s.list_range("l", 0, 10).await.unwrap(),
        vec![vec![12], vec![11]]
    );
    s.list_push("one", b"a", 0).await.unwrap();
    s.list_push("one", b"b", 0).await.unwrap();
    assert_eq!(
        s.list_range("one", 0, 10).await.unwrap(),
        vec![b"b".to_vec()],
        "max_len 0 keeps one"
    );

    // Prefix scans list values only; delete removes a list too.
    assert!(s.scan_prefix("l", 10).await.unwrap().is_empty());
    assert!(s.delete("l").await.unwrap());
    assert_eq!(s.list_len("l").await.unwrap(), 0);
    assert!(!s.delete("l").await.unwrap());
    s.list_push("l", &[1], 4).await.unwrap();
    assert_eq!(s.list_range("l", 0, 10).await.unwrap(), vec![vec![1]]);
}

pub async fn a_long_list_trims_as_it_goes(h: &Harness) {
    let s = h.store.clone();
    let pushes = (0..2000u32).map(|i| {
        let s = s.clone();
        async move { s.list_push("h", &i.to_be_bytes(), 100).await }
    });
    for r in futures_util::future::join_all(pushes).await {
        r.unwrap();
    }
    assert_eq!(s.list_len("h").await.unwrap(), 100);
    let items = s.list_range("h", 0, 1000).await.unwrap();
    assert_eq!(items.len(), 100);
    let mut got: Vec<u32> = items
        .iter()
        .map(|b| u32::from_be_bytes(b[..4].try_into().unwrap()))
        .collect();
    // Concurrent pushes land in the order the backend receives them (a
    // cluster connection may reorder them): only their number and identity
    // are the contract; order is tested with sequential pushes above.
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), 100, "100 distinct items kept");
    assert!(got.iter().all(|&i| i < 2000));
    s.list_push("h", &5000u32.to_be_bytes(), 100).await.unwrap();
    assert_eq!(
        s.list_range("h", 0, 1).await.unwrap(),
        vec![5000u32.to_be_bytes().to_vec()],
        "a push after them is the newest"
    );
}

pub async fn scan_prefix_lists_keys_in_order_within_the_prefix(h: &Harness) {
    let s = &h.store;
    for k in [
        "p:2", "p:1", "p:10", "p", "p;", "o:9", "q:1", "p:é", "p*", "p:[x]",
    ] {
        s.set(k, k.as_bytes(), None).await.unwrap();
    }
    s.set("p:0-expiring", b"x", Some(h.t(2))).await.unwrap();
    s.list_push("p:list", b"x", 5).await.unwrap();
    let all = s.scan_prefix("p:", 100).await.unwrap();
    assert_eq!(
        keys(all.clone()),
        vec!["p:0-expiring", "p:1", "p:10", "p:2", "p:[x]", "p:é"]
    );
    assert!(
        all.iter()
            .all(|(k, v)| k == "p:0-expiring" || k.as_bytes() == v)
    );
    h.pass(h.t(3)).await;
    assert_eq!(
        keys(s.scan_prefix("p:", 2).await.unwrap()),
        vec!["p:1", "p:10"],
        "expired entries neither show nor count against the limit"
    );
    assert!(s.scan_prefix("p:", 0).await.unwrap().is_empty());
    assert!(s.scan_prefix("zz", 10).await.unwrap().is_empty());
    assert_eq!(
        keys(s.scan_prefix("p*", 10).await.unwrap()),
        vec!["p*"],
        "glob characters in a prefix are literal"
    );
    assert_eq!(s.scan_prefix("", 100).await.unwrap().len(), 10);
}

pub async fn concurrent_increments_are_exact(h: &Harness) {
    let s = h.store.clone();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                s.incr("n", 1, None).await.unwrap();
                s.incr(&format!("n:{t}"), 1, None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.incr("n", 0, None).await.unwrap(), 1600);
    for t in 0..16 {
        assert_eq!(s.incr(&format!("n:{t}"), 0, None).await.unwrap(), 100);
    }
}

pub async fn history_keeps_the_last_rows_and_counters_count(h: &Harness) {
    let store = h.store.clone();
    let hist = History::new(store.clone(), 3);
    assert!(hist.is_empty().await.unwrap());
    for i in 0..5 {
        hist.push(&row(i)).await.unwrap();
    }
    assert_eq!(hist.len().await.unwrap(), 3);
    let rows = hist.recent(10).await.unwrap();
    assert_eq!(
        rows,
        vec![row(4), row(3), row(2)],
        "every field round-trips"
    );
    assert_eq!(hist.recent(1).await.unwrap(), vec![row(4)]);

    let c = Counters::new(store.clone());
    assert_eq!(c.get("scanned").await.unwrap(), 0);
    c.incr("scanned", 3).await.unwrap();
    c.incr_relaxed("scanned", 1).await.unwrap();
    c.incr("action:reject", 1).await.unwrap();
    assert_eq!(c.get("scanned").await.unwrap(), 4);
    store.set("notacounter", b"7", None).await.unwrap();
    let all = c.all().await.unwrap();
    assert_eq!(
        all,
        BTreeMap::from([("action:reject".to_string(), 1), ("scanned".to_string(), 4)])
    );
}

pub async fn damaged_rows_and_counters_are_errors_not_panics(h: &Harness) {
    let store = h.store.clone();
    let hist = History::new(store.clone(), 10);
    hist.push(&row(1)).await.unwrap();
    store.list_push("history", b"not json", 10).await.unwrap();
    let e = hist.recent(10).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        e.to_string().contains(&store.describe()),
        "names the store: {e}"
    );

    // A row from an older or newer mxguard: missing fields default, unknown ones are ignored.
    store.delete("history").await.unwrap();
    store
        .list_push(
            "history",
            br#"{"time":1.0,"action":"reject","future_field":[1,2]}"#,
            10,
        )
        .await
        .unwrap();
    let rows = hist.recent(10).await.unwrap();
    assert_eq!(rows[0].action, "reject");
    assert!(rows[0].rcpts.is_empty());

    let c = Counters::new(store.clone());
    store.set("counter:bad", b"x", None).await.unwrap();
    assert_eq!(c.all().await.unwrap_err().kind(), ErrorKind::Corrupt);
    assert_eq!(c.get("bad").await.unwrap_err().kind(), ErrorKind::Corrupt);
}

pub async fn a_working_store_is_writable(h: &Harness) {
    h.store.set("w", b"1", None).await.unwrap();
    h.store.writable().unwrap();
    assert_eq!(h.store.purge_expired(10).await.unwrap().removed, 0);
}
