//! The greylist flow over the policy socket, with a short delay.

mod common;

use common::{Client, rcpt, start};
use std::time::Duration;

const CONFIG: &str = "[greylist]\ndelay = 2\nauto_whitelist_clients = 2\nsender_pools = false\n[policy]\nmynetworks = []\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_attempt_deferred_early_retry_deferred_late_retry_passes() {
    let s = start(CONFIG).await;
    let mut c = Client::connect(s.addr).await;
    let req = rcpt("192.0.2.10", "alice@sender.example", "bob@rcpt.example");
    let a = c.ask(&req).await;
    assert!(
        a.starts_with("DEFER_IF_PERMIT Greylisted, please try again in 2 seconds"),
        "{a}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = c.ask(&req).await;
    assert!(a.starts_with("DEFER_IF_PERMIT"), "too early: {a}");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    // Same /24, another host of the sender: still the same triplet.
    let later = rcpt("192.0.2.11", "alice@sender.example", "bob@rcpt.example");
    let a = c.ask(&later).await;
    assert!(
        a.starts_with("PREPEND X-Greylist: delayed "),
        "passes with the header: {a}"
    );
    let a = c.ask(&later).await;
    assert_eq!(a, "DUNNO", "a passed triplet passes without a header");
    // Another sender from another network is greylisted on its own.
    let other = rcpt("198.51.100.7", "carol@else.example", "bob@rcpt.example");
    assert!(c.ask(&other).await.starts_with("DEFER_IF_PERMIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_is_auto_whitelisted_after_n_passes() {
    let s = start(CONFIG).await;
    let mut c = Client::connect(s.addr).await;
    for who in ["a@one.example", "b@two.example"] {
        let req = rcpt("203.0.113.5", who, "bob@rcpt.example");
        assert!(c.ask(&req).await.starts_with("DEFER_IF_PERMIT"));
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for who in ["a@one.example", "b@two.example"] {
        let req = rcpt("203.0.113.5", who, "bob@rcpt.example");
        assert!(c.ask(&req).await.starts_with("PREPEND"));
    }
    // The auto-whitelist counter is written behind the answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = rcpt("203.0.113.5", "new@three.example", "zed@rcpt.example");
    assert_eq!(
        c.ask(&fresh).await,
        "DUNNO",
        "after 2 passes the client is whitelisted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitelist_files_and_mynetworks_skip_greylisting() {
    let dir = tempfile::tempdir().unwrap();
    let wc = dir.path().join("whitelist_clients");
    std::fs::write(&wc, "# postgrey format\ngood.example\n192.0.2.0/28\n").unwrap();
    let wr = dir.path().join("whitelist_recipients");
    std::fs::write(&wr, "postmaster@\n").unwrap();
    let config = format!(
        "[greylist]\ndelay = 60\nwhitelist_clients = [\"{}\"]\nwhitelist_recipients = [\"{}\"]\n",
        wc.display(),
        wr.display()
    );
    let s = start(&config).await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(
        c.ask(&rcpt("192.0.2.3", "x@y.example", "u@rcpt.example"))
            .await,
        "DUNNO"
    );
    let mut by_name = rcpt("198.51.100.1", "x@y.example", "u@rcpt.example");
    by_name[3] = ("client_name", "mx1.good.example");
    assert_eq!(c.ask(&by_name).await, "DUNNO");
    assert_eq!(
        c.ask(&rcpt(
            "198.51.100.2",
            "x@y.example",
            "postmaster@rcpt.example"
        ))
        .await,
        "DUNNO"
    );
    assert_eq!(
        c.ask(&rcpt("127.0.0.1", "x@y.example", "u@rcpt.example"))
            .await,
        "DUNNO",
        "permit_mynetworks"
    );
    assert!(
        c.ask(&rcpt("198.51.100.2", "x@y.example", "u@rcpt.example"))
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_max_age() {
    let s = start("[greylist]\ndelay = 1\nmax_age = 2\nretry_window = 1\nauto_whitelist_clients = 0\nsender_pools = false\n[policy]\nmynetworks = []\n").await;
    let mut c = Client::connect(s.addr).await;
    let req = rcpt("192.0.2.20", "a@s.example", "b@r.example");
    assert!(c.ask(&req).await.starts_with("DEFER_IF_PERMIT"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(c.ask(&req).await.starts_with("PREPEND"));
    // Unseen for longer than max_age: forgotten, greylisted again.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert!(c.ask(&req).await.starts_with("DEFER_IF_PERMIT"));
}
