//! A greylisting attempt costs one store write: the first attempt of a
//! triplet, with sender pools on (the default), writes the triplet and the
//! pool record in one request to the store's writer, committed without an
//! fsync (relaxed), unless `max_pending_writes = 0` asks for the strict
//! mode.

mod common;

use mxguard_core::config::{LoadedConfig, Registry, load_str};
use mxguard_policy::engine::Engine;
use mxguard_policy::greylist::{client_key, triplet_key};
use mxguard_policy::protocol::Request;
use mxguard_store::{EmbeddedStore, Store};
use std::sync::Arc;
use std::time::Duration;

fn setup(extra: &str) -> (Engine, Arc<EmbeddedStore>, tempfile::TempDir) {
    let text = format!("[policy]\nmynetworks = []\n{extra}[greylist]\ndelay = 60\n");
    let config = load_str(&text, "test.toml", &Registry::new()).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(config.greylist.sender_pools, "the default is tested");
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    // Sender pools need a resolver; a first attempt makes no lookup.
    let dns = Some(mxguard_dns::Dns::new(&loaded.config.dns).unwrap());
    let (engine, _) = Engine::new(&loaded, store.clone(), dns).unwrap_or_else(|e| panic!("{e:?}"));
    (engine, store, dir)
}

fn request(n: usize) -> Request {
    let mut r = Request::default();
    let sender = format!("s{n}@d{n}.example");
    for (k, v) in common::rcpt("192.0.2.9", &sender, "rcpt@example.org") {
        r.insert(k, v);
    }
    r
}

async fn settled(engine: &Engine) {
    for _ in 0..1000 {
        if engine.pending_writes() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("writes still pending after 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_attempt_is_one_relaxed_store_write() {
    let (engine, store, _dir) = setup("");
    let before = store.stats();
    for n in 0..20 {
        let a = engine.decide(&request(n)).await;
        assert!(a.starts_with("DEFER_IF_PERMIT"), "{a}");
        settled(&engine).await;
    }
    let after = store.stats();
    assert_eq!(after.writes - before.writes, 20, "one write per attempt");
    assert!(after.relaxed_commits > before.relaxed_commits);
    // Both records of each attempt are there.
    let cfg = &engine_config().greylist;
    let client = client_key("192.0.2.9".parse().unwrap(), cfg);
    for n in 0..20 {
        let sender = format!("s{n}@d{n}.example");
        let triplet = triplet_key(&client, &sender, "rcpt@example.org", false);
        let pool = triplet_key("pool", &format!("@d{n}.example"), "rcpt@example.org", false);
        let got = store.get_many(&[&triplet, &pool]).await.unwrap();
        assert!(got.iter().all(Option::is_some), "{n}: {got:?}");
    }
    // A retry of a known triplet (too early) writes the triplet alone.
    let w = store.stats().writes;
    assert!(
        engine
            .decide(&request(3))
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    settled(&engine).await;
    assert_eq!(store.stats().writes - w, 1);
}

fn engine_config() -> mxguard_core::config::Config {
    load_str("[greylist]\ndelay = 60\n", "test.toml", &Registry::new()).unwrap()
}

/// `max_pending_writes = 0`: answers wait for their write, on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_mode_writes_durably() {
    let (engine, store, _dir) = setup("max_pending_writes = 0\n");
    let before = store.stats();
    for n in 0..5 {
        assert!(
            engine
                .decide(&request(n))
                .await
                .starts_with("DEFER_IF_PERMIT")
        );
        assert_eq!(engine.pending_writes(), 0);
    }
    let after = store.stats();
    assert_eq!(after.writes - before.writes, 5);
    assert_eq!(after.relaxed_commits, before.relaxed_commits);
    assert_eq!(after.commits - before.commits, 5);
}

/// Write-behind lets a round gather (`WRITE_GATHER`) before it writes, so
/// requests close together share one store write; the store has the
/// values once the round is written, and reads see them before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_behind_the_answers_gather_before_their_round() {
    let (engine, store, _dir) = setup("");
    let before = store.stats();
    let answered = std::time::Instant::now();
    let a = engine.decide(&request(1)).await;
    assert!(a.starts_with("DEFER_IF_PERMIT"), "{a}");
    assert_eq!(
        engine.pending_writes(),
        2,
        "the triplet and the pool record"
    );
    // Read back before the round: still greylisted, not a new first attempt.
    let again = engine.decide(&request(1)).await;
    assert!(again.starts_with("DEFER_IF_PERMIT"), "{again}");
    let mut written_after = None;
    for _ in 0..2000 {
        if store.stats().writes > before.writes {
            written_after = Some(answered.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let written_after = written_after.expect("the round was written within 2 s");
    assert!(
        written_after >= mxguard_policy::engine::WRITE_GATHER / 2,
        "written {written_after:?} after the answer: no gathering"
    );
    settled(&engine).await;
    assert_eq!(
        store.stats().writes - before.writes,
        1,
        "both requests' values in one round"
    );
    let key = triplet_key(
        &client_key("192.0.2.9".parse().unwrap(), &engine_config().greylist),
        "s1@d1.example",
        "rcpt@example.org",
        false,
    );
    assert!(store.get(&key).await.unwrap().is_some(), "{key}");
}
