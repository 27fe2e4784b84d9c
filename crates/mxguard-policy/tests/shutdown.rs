//! Shutdown (SIGTERM in the daemon): no new connections, idle ones closed,
//! a request being answered still gets its answer, all within the grace
//! period.

mod common;

use common::{Client, Daemon};
use std::time::{Duration, Instant};

fn connect_request() -> Vec<(&'static str, &'static str)> {
    vec![
        ("protocol_state", "CONNECT"),
        ("client_address", "192.0.2.1"),
        ("client_name", "unknown"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_answered_and_new_connections_are_refused() {
    let mut d = Daemon::start(
        "[policy]\nmynetworks = []\n[policy.restrictions]\nclient = [\"sleep 1\"]\n",
        Duration::from_secs(10),
    );
    let mut idle = Client::connect(d.addr).await;
    let mut busy = Client::connect(d.addr).await;
    let asking = tokio::spawn(async move {
        let answer = busy.try_ask(&connect_request()).await;
        (answer, busy)
    });
    // The request is in the engine (sleeping) when shutdown begins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    d.begin_shutdown();
    assert!(
        idle.closed(Duration::from_millis(500)).await,
        "a connection between requests is closed at once"
    );
    d.stopped().await;
    let stopped_after = t.elapsed();
    let (answer, mut busy) = asking.await.unwrap();
    assert_eq!(
        answer.as_deref(),
        Some("DUNNO"),
        "the request in flight is answered before the server stops"
    );
    assert!(
        busy.closed(Duration::from_millis(500)).await,
        "then its connection is closed (Postfix reconnects)"
    );
    assert!(
        stopped_after >= Duration::from_millis(500) && stopped_after < Duration::from_secs(5),
        "the server waited for the answer, not for the grace period: {stopped_after:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(d.addr).await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_still_busy_after_the_grace_period_are_cut() {
    let mut d = Daemon::start(
        "[policy]\nmynetworks = []\n[policy.restrictions]\nclient = [\"sleep 30\"]\n",
        Duration::from_millis(500),
    );
    let mut busy = Client::connect(d.addr).await;
    let asking = tokio::spawn(async move { busy.try_ask(&connect_request()).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    d.begin_shutdown();
    d.stopped().await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "bounded by the grace period: {took:?}"
    );
    let answer = tokio::time::timeout(Duration::from_secs(2), asking)
        .await
        .expect("the connection is closed, not left hanging")
        .unwrap();
    assert_eq!(answer, None, "cut without an answer");
}

/// Write-behind gathers a round before writing it; a clean stop writes
/// what is gathering, so the greylisting an answered request started is
/// in the store when the daemon has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_keeps_the_writes_behind_answered_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(
        "[policy]\nmynetworks = []\n[greylist]\ndelay = 60\nsender_pools = false\n",
        Duration::from_secs(10),
        Some(dir.path().to_path_buf()),
    );
    let mut c = common::Client::connect(d.addr).await;
    let answer = c
        .ask(&common::rcpt("192.0.2.7", "a@s.example", "b@r.example"))
        .await;
    assert!(answer.starts_with("DEFER_IF_PERMIT"), "{answer}");
    // At once: the write is still gathering for its round.
    d.begin_shutdown();
    d.stopped().await;
    // The runtime's workers drop the last handles to the store as they
    // exit (`shutdown_timeout(0)` does not wait for them).
    let mut opened = mxguard_store::EmbeddedStore::open(dir.path());
    for _ in 0..500 {
        match &opened {
            Err(e) if e.kind() == mxguard_store::ErrorKind::InUse => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                opened = mxguard_store::EmbeddedStore::open(dir.path());
            }
            _ => break,
        }
    }
    let store = opened.unwrap();
    use mxguard_store::Store;
    let triplet = store
        .get("grey:192.0.2.0/24/a@s.example/b@r.example")
        .await
        .unwrap();
    assert!(
        triplet.is_some(),
        "the answered greylisting was lost at stop"
    );
}
