//! The greylist flow over the policy socket, with a short delay.

mod common;

use common::{Client, rcpt, start, start_with_clock};
use mxguard_store::ManualClock;
use std::time::Duration;

const CONFIG: &str = "[greylist]\ndelay = 2\nauto_whitelist_clients = 2\nsender_pools = false\n[policy]\nmynetworks = []\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_attempt_deferred_early_retry_deferred_late_retry_passes() {
    let s = start(CONFIG).await;
    let mut c = Client::connect(s.addr).await;
    let req = rcpt("192.0.2.10", "alice@sender.example", "bob@rcpt.example");
    let a = c.ask(&req).await;
    assert_eq!(
        a,
        "DEFER_IF_PERMIT 4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/rcpt.example.html",
        "postgrey's default answer"
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
    let s = start("[greylist]\ndelay = 1\nmax_age = 2\nretry_window = 2\nauto_whitelist_clients = 0\nsender_pools = false\n[policy]\nmynetworks = []\n").await;
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

/// postgrey's retry window, counted from the first attempt: with delay 60
/// and a one-hour window a retry passes up to 3600 s after the first
/// attempt; at 3601 s the triplet starts over (mxguard used to let retries
/// pass until 3660 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_window_ends_retry_window_seconds_after_the_first_attempt() {
    let config = "[greylist]\ndelay = 60\nretry_window = \"1h\"\nauto_whitelist_clients = 0\nsender_pools = false\n[policy]\nmynetworks = []\n";
    let clock = ManualClock::new();
    let s = start_with_clock(config, clock.clone()).await;
    let mut c = Client::connect(s.addr).await;
    let on_time = rcpt("192.0.2.30", "a@s.example", "b@r.example");
    let late = rcpt("192.0.2.30", "late@s.example", "b@r.example");
    for req in [&on_time, &late] {
        assert!(c.ask(req).await.starts_with("DEFER_IF_PERMIT"));
    }
    settle().await;
    clock.advance(Duration::from_secs(3600));
    assert!(
        c.ask(&on_time)
            .await
            .starts_with("PREPEND X-Greylist: delayed 3600 seconds"),
        "the last second of the window"
    );
    clock.advance(Duration::from_secs(1));
    let a = c.ask(&late).await;
    assert!(a.starts_with("DEFER_IF_PERMIT"), "a second late: {a}");
    assert!(a.contains("/help/r.example.html"), "{a}");
    settle().await;
    // Started over: first seen now, so it passes one delay later.
    clock.advance(Duration::from_secs(59));
    assert!(c.ask(&late).await.starts_with("DEFER_IF_PERMIT"));
    settle().await;
    clock.advance(Duration::from_secs(1));
    assert!(
        c.ask(&late)
            .await
            .starts_with("PREPEND X-Greylist: delayed 60 seconds")
    );
}

/// greylist_action and greylist_text as postgrey's --greylist-action and
/// --greylist-text: the action as given, the first %s and %r replaced, and
/// no 4.2.0 before a text that brings its own code or without etrn_domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greylist_action_and_text_as_postgrey_s_options() {
    let config = "[greylist]\ndelay = 60\ngreylist_action = \"DEFER\"\ngreylist_text = \"wait %s s (%s) at %r\"\nsender_pools = false\n[policy]\nmynetworks = []\n";
    let s = start(config).await;
    let mut c = Client::connect(s.addr).await;
    let req = rcpt("192.0.2.40", "a@s.example", "b@r.example");
    assert_eq!(c.ask(&req).await, "DEFER 4.2.0 wait 60 s (%s) at r.example");
    let old_postfix: Vec<_> = rcpt("192.0.2.41", "a@s.example", "b@r.example")
        .into_iter()
        .filter(|(k, _)| *k != "etrn_domain")
        .collect();
    assert_eq!(
        c.ask(&old_postfix).await,
        "DEFER wait 60 s (%s) at r.example"
    );
    let coded = "[greylist]\ndelay = 60\ngreylist_text = \"4.7.1 Greylisted for %s seconds\"\nsender_pools = false\n[policy]\nmynetworks = []\n";
    let s = start(coded).await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(
        c.ask(&req).await,
        "DEFER_IF_PERMIT 4.7.1 Greylisted for 60 seconds"
    );
}

/// Senders that postgrey keeps apart are different triplets, senders it
/// takes as one are the same triplet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_are_the_same_triplet_exactly_when_postgrey_s_are() {
    let config = "[greylist]\ndelay = 60\nauto_whitelist_clients = 0\nsender_pools = false\n[policy]\nmynetworks = []\n";
    let clock = ManualClock::new();
    let s = start_with_clock(config, clock.clone()).await;
    let mut c = Client::connect(s.addr).await;
    for sender in [
        "user1@s.example",
        "list-17@s.example",
        "prvs=0123456789=bob@s.example",
    ] {
        assert!(
            c.ask(&rcpt("192.0.2.50", sender, "b@r.example"))
                .await
                .starts_with("DEFER_IF_PERMIT")
        );
    }
    settle().await;
    clock.advance(Duration::from_secs(61));
    for (sender, same) in [
        ("user2@s.example", false),
        ("list-18@s.example", true),
        ("LIST-19+x@S.example", true),
        ("prvs=9876543210=bob@s.example", true),
        ("prvs=bob=abcdefghij@s.example", true),
        ("SRS0=ab=12=s.example=user1@s.example", false),
    ] {
        let a = c.ask(&rcpt("192.0.2.50", sender, "b@r.example")).await;
        // The same triplet passes (PREPEND the first time, then DUNNO).
        assert_eq!(!a.starts_with("DEFER_IF_PERMIT"), same, "{sender}: {a}");
    }
}
