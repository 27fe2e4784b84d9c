//! The greylist flow over the policy socket, with a short delay.

mod common;

use common::{Client, ManualClock, rcpt, start, start_with_clock};
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

/// Auto-whitelisting after 2 counted deliveries, entries kept 10 days after
/// the client was last seen; tests move the clock by hand.
const AWL: &str = "[greylist]\ndelay = 60\nmax_age = \"10d\"\nretry_window = \"2d\"\nauto_whitelist_clients = 2\nsender_pools = false\n[policy]\nmynetworks = []\n";
const CLIENT: &str = "203.0.113.5";
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

/// Lets the writes behind the last answer reach the store before the clock moves.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One message from CLIENT by `sender`: greylisted, then delivered after the delay.
async fn deliver_after_greylisting(c: &mut Client, clock: &ManualClock, sender: &str) {
    let req = rcpt(CLIENT, sender, "bob@rcpt.example");
    let a = c.ask(&req).await;
    assert!(
        a.starts_with("DEFER_IF_PERMIT"),
        "{sender} first attempt: {a}"
    );
    settle().await;
    clock.advance(Duration::from_secs(61));
    let a = c.ask(&req).await;
    assert!(a.starts_with("PREPEND X-Greylist"), "{sender} retry: {a}");
    settle().await;
}

/// Whether a message from a sender never seen before skips greylisting.
async fn whitelisted(c: &mut Client, n: u32) -> bool {
    let sender = format!("new@fresh{n}.example");
    let a = c.ask(&rcpt(CLIENT, &sender, "zed@rcpt.example")).await;
    settle().await;
    match a.as_str() {
        "DUNNO" => true,
        a if a.starts_with("DEFER_IF_PERMIT") => false,
        a => panic!("unexpected answer {a}"),
    }
}

/// Two counted deliveries, an hour apart.
async fn auto_whitelist(c: &mut Client, clock: &ManualClock) {
    deliver_after_greylisting(c, clock, "a@one.example").await;
    clock.advance(HOUR);
    deliver_after_greylisting(c, clock, "b@two.example").await;
    assert!(whitelisted(c, 0).await, "whitelisted after 2 deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_is_auto_whitelisted_after_n_passes_one_per_hour() {
    let clock = ManualClock::new();
    let s = start_with_clock(AWL, clock.clone()).await;
    let mut c = Client::connect(s.addr).await;
    deliver_after_greylisting(&mut c, &clock, "a@one.example").await;
    deliver_after_greylisting(&mut c, &clock, "b@two.example").await;
    assert!(
        !whitelisted(&mut c, 1).await,
        "as in postgrey, two deliveries within the hour count once"
    );
    clock.advance(HOUR);
    deliver_after_greylisting(&mut c, &clock, "c@three.example").await;
    assert!(
        whitelisted(&mut c, 2).await,
        "the second counted delivery whitelists the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_awl_client_stays_whitelisted_past_max_age_after_creation() {
    let clock = ManualClock::new();
    let s = start_with_clock(AWL, clock.clone()).await;
    let mut c = Client::connect(s.addr).await;
    auto_whitelist(&mut c, &clock).await;
    // A message every 3 days for 15 days: more than max_age (10 days) after
    // the entry was created, but never more than 3 days after it was last seen.
    for n in 1..=5 {
        clock.advance(3 * DAY);
        assert!(
            whitelisted(&mut c, n).await,
            "day {}: an active client stays whitelisted",
            3 * n
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_awl_client_is_greylisted_again_after_max_age() {
    let clock = ManualClock::new();
    let s = start_with_clock(AWL, clock.clone()).await;
    let mut c = Client::connect(s.addr).await;
    auto_whitelist(&mut c, &clock).await;
    for n in 1..=3 {
        clock.advance(4 * DAY);
        assert!(whitelisted(&mut c, n).await, "day {}", 4 * n);
    }
    // Day 12; silent for 9 days: still within max_age of the last visit.
    clock.advance(9 * DAY);
    assert!(
        whitelisted(&mut c, 4).await,
        "9 days after it was last seen (21 after it was whitelisted)"
    );
    // Silent for longer than max_age: forgotten, greylisted again.
    clock.advance(10 * DAY + HOUR);
    assert!(
        !whitelisted(&mut c, 5).await,
        "unseen for longer than max_age: greylisted again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_malformed_awl_values_do_not_break_greylisting() {
    let clock = ManualClock::new();
    let s = start_with_clock(AWL, clock.clone()).await;
    let mut c = Client::connect(s.addr).await;
    let key = "greyawl:203.0.113.0/24";
    let ttl = Some(10 * DAY);
    // A bare count, as earlier versions stored it: still whitelisted, and
    // rewritten as count and last-seen time.
    s.store.set(key, b"7", ttl).await.unwrap();
    assert!(
        whitelisted(&mut c, 1).await,
        "an earlier count of 7 is kept"
    );
    let v = s.store.get(key).await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert_eq!(v["count"], 8, "{v}");
    // Then kept alive by activity like any other entry.
    for n in 2..=5 {
        clock.advance(3 * DAY);
        assert!(
            whitelisted(&mut c, n).await,
            "migrated entry, day {}",
            3 * n
        );
    }
    for (i, bad) in [
        &b"\xff\xfe{"[..],
        b"-3",
        b"{\"count\":\"many\",\"last\":1}",
        b"{\"count\":99}",
        b"[]",
        b"",
    ]
    .into_iter()
    .enumerate()
    {
        s.store.set(key, bad, ttl).await.unwrap();
        assert!(
            !whitelisted(&mut c, 10 + i as u32).await,
            "{:?} is no whitelisting",
            String::from_utf8_lossy(bad)
        );
    }
    // A last-seen time far in the future (clock stepped back, or forged)
    // does not keep the entry forever: it is brought back to now.
    let future = serde_json::json!({"count": 5, "last": u64::MAX}).to_string();
    s.store.set(key, future.as_bytes(), ttl).await.unwrap();
    assert!(whitelisted(&mut c, 20).await);
    let v = s.store.get(key).await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert!(v["last"].as_u64().unwrap() < u64::MAX / 2, "{v}");
    clock.advance(10 * DAY + HOUR);
    assert!(!whitelisted(&mut c, 21).await, "then expires as usual");
}
