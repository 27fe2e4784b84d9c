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
