//! What bounds the policy server's memory and descriptors: a connection
//! cap (the connection idle longest makes room; with none idle, the new
//! one is closed at once), a byte cap per request counted as received,
//! and a time limit per request.

mod common;

use common::{Client, limits, start_with_limits};
use mxguard_policy::protocol::MAX_LINE;
use mxguard_policy::server::Limits;
use std::time::Duration;

const CONFIG: &str = "[policy]\nmynetworks = []\n";

fn connect_request() -> Vec<(&'static str, &'static str)> {
    vec![
        ("protocol_state", "CONNECT"),
        ("client_address", "192.0.2.1"),
        ("client_name", "unknown"),
    ]
}

fn capped(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        ..limits()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_connections_the_connection_idle_longest_makes_room() {
    let s = start_with_limits(CONFIG, capped(3)).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(s.addr).await;
        assert_eq!(c.ask(&connect_request()).await, "DUNNO");
        clients.push(c);
    }
    // A fourth Postfix process: served, and the first connection, idle
    // longest, is closed (Postfix reconnects on its next request).
    let mut fourth = Client::connect(s.addr).await;
    assert_eq!(fourth.ask(&connect_request()).await, "DUNNO");
    assert!(
        clients[0].closed(Duration::from_secs(10)).await,
        "the connection idle longest is closed to make room"
    );
    for c in &mut clients[1..] {
        assert_eq!(c.ask(&connect_request()).await, "DUNNO");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_connections_with_none_idle_a_new_connection_is_closed_at_once() {
    let s = start_with_limits(CONFIG, capped(2)).await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut c = Client::connect(s.addr).await;
        assert_eq!(c.ask(&connect_request()).await, "DUNNO");
        // The first line of the next request: no longer idle.
        c.send(b"request=smtpd_access_policy\n").await.unwrap();
        busy.push(c);
    }
    // Let the server read those lines (a sync, not a measurement).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut third = Client::connect(s.addr).await;
    assert!(
        third.closed(Duration::from_secs(10)).await,
        "a connection past the cap is closed at once"
    );
    // The requests in progress are still answered.
    for c in &mut busy {
        assert_eq!(c.ask(&connect_request()).await, "DUNNO");
    }
}

/// 255 lines of 8 KiB of 0xFF (6 MiB once each byte became a replacement
/// character): the connection is closed once MAX_REQUEST bytes came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_closes_the_connection() {
    let s = start_with_limits(CONFIG, limits()).await;
    let mut c = Client::connect(s.addr).await;
    let mut sent = 0;
    for i in 0..255 {
        let mut line = format!("a{i:03}=").into_bytes();
        line.resize(MAX_LINE, 0xFF);
        line.push(b'\n');
        if c.send(&line).await.is_err() {
            break;
        }
        sent += line.len();
    }
    assert!(
        c.closed(Duration::from_secs(10)).await,
        "closed after {sent} bytes of an unfinished request"
    );
    let mut fresh = Client::connect(s.addr).await;
    assert_eq!(fresh.ask(&connect_request()).await, "DUNNO");
}

/// A request trickling in keeps no connection for ever: it must be
/// complete within request_timeout of its first line, however short the
/// gaps between its lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_must_be_complete_within_request_timeout() {
    let limits = Limits {
        request_timeout: Duration::from_secs(1),
        ..limits()
    };
    let s = start_with_limits(CONFIG, limits).await;
    let mut c = Client::connect(s.addr).await;
    c.send(b"request=smtpd_access_policy\n").await.unwrap();
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if c.send(format!("x{i}=y\n").as_bytes()).await.is_err() {
                return true;
            }
        }
        false
    };
    let cut = trickle.await;
    assert!(
        cut || c.closed(Duration::from_secs(1)).await,
        "a request trickling in for 10 s is cut at its 1 s limit"
    );
}
