//! DNS-based restrictions against a real DNS server (dnsmasq) on loopback:
//! listed, not listed, the 127.255.255.x error codes, unknown names, a
//! server that never answers, and hostile answer sets (many PTR names,
//! slow answers) that must not hold a request for long.

mod common;

use common::{Client, start};
use std::time::{Duration, Instant};

#[path = "../../mxguard-dns/tests/support/dnsmasq.rs"]
mod dnsmasq_support;
use dnsmasq_support::{dnsmasq, dnsmasq_logging};

const RECORDS: &str = "host-record=50.2.0.192.zen.test,127.0.0.2\n\
host-record=51.2.0.192.zen.test,127.255.255.254\n\
host-record=52.2.0.192.zen.test,10.0.0.1\n\
host-record=53.2.0.192.zen.test,127.0.0.11\n\
host-record=spam.example.dbl.test,127.0.1.2\n\
host-record=mx.known.test,192.0.2.25\n\
mx-host=known.test,mx.known.test,10\n";

fn client_at(ip: &str) -> Vec<(&str, &str)> {
    vec![
        ("protocol_state", "CONNECT"),
        ("client_address", ip),
        ("client_name", "unknown"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbl_and_rhsbl_against_a_real_dns_server() {
    let d = dnsmasq(RECORDS);
    let config = format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"2s\"\nattempts = 2\n[policy.restrictions]\nclient = [\"reject_rbl_client zen.test=127.0.0.[2..10]\"]\nsender = [\"reject_rhsbl_sender dbl.test\"]\nhelo = [\"reject_unknown_helo_hostname\"]\nrecipient = [\"reject_unknown_sender_domain\"]\n",
        d.port
    );
    let s = start(&config).await;
    let mut c = Client::connect(s.addr).await;
    let a = c.ask(&client_at("192.0.2.50")).await;
    assert_eq!(
        a,
        "554 5.7.1 Service unavailable; Client host [192.0.2.50] blocked using zen.test"
    );
    assert_eq!(c.ask(&client_at("192.0.2.99")).await, "DUNNO", "not listed");
    assert_eq!(
        c.ask(&client_at("192.0.2.51")).await,
        "DUNNO",
        "127.255.255.254 is an error, not a listing"
    );
    assert_eq!(
        c.ask(&client_at("192.0.2.52")).await,
        "DUNNO",
        "answers outside 127/8 are not listings"
    );
    assert_eq!(
        c.ask(&client_at("192.0.2.53")).await,
        "DUNNO",
        "outside the =127.0.0.[2..10] filter"
    );
    assert!(
        s.engine
            .stats
            .dns_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2,
        "error answers are counted"
    );

    let mail = |sender| {
        vec![
            ("protocol_state", "MAIL"),
            ("client_address", "192.0.2.9"),
            ("sender", sender),
        ]
    };
    assert!(
        c.ask(&mail("x@spam.example"))
            .await
            .contains("blocked using dbl.test")
    );
    assert_eq!(c.ask(&mail("x@ham.example")).await, "DUNNO");

    let helo = |h| {
        vec![
            ("protocol_state", "EHLO"),
            ("client_address", "192.0.2.9"),
            ("helo_name", h),
        ]
    };
    assert_eq!(c.ask(&helo("mx.known.test")).await, "DUNNO");
    assert!(
        c.ask(&helo("nowhere.test"))
            .await
            .starts_with("450 4.7.1 <nowhere.test>: Helo command rejected: Host not found")
    );

    let rcpt = |sender| {
        vec![
            ("protocol_state", "RCPT"),
            ("client_address", "192.0.2.9"),
            ("sender", sender),
            ("recipient", "r@x.example"),
        ]
    };
    assert_eq!(c.ask(&rcpt("a@known.test")).await, "DUNNO", "has an MX");
    assert!(
        c.ask(&rcpt("a@unknown.test"))
            .await
            .starts_with("450 4.1.8")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_dns_server_gives_the_configured_outcome_never_a_hang() {
    // A UDP socket that reads nothing and answers nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for (outcome, expected) in [("dunno", "DUNNO"), ("defer", "DEFER_IF_PERMIT")] {
        let config = format!(
            "[dns]\nnameservers = [\"127.0.0.1:{port}\"]\ntimeout = \"300ms\"\nattempts = 1\n[policy]\ndns_failure = \"{outcome}\"\n[policy.restrictions]\nclient = [\"reject_rbl_client zen.test\"]\n"
        );
        let s = start(&config).await;
        let mut c = Client::connect(s.addr).await;
        let t = Instant::now();
        let a = c.ask(&client_at("192.0.2.50")).await;
        assert!(a.starts_with(expected), "{outcome}: {a}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "bounded by the time-out: {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_from_the_senders_pool_passes_greylisting() {
    // Two outbound hosts of one provider, in different /24s, with verified
    // PTR names in the same registrable domain (a short second level under
    // a country code: the hand-made guess before the public suffix list
    // took `mx1.web.de` and `mx2.web.de` for two domains); two hosts under
    // a top-level domain the list does not know, which are not taken for
    // one owner; and a sender domain whose SPF record authorises a third
    // network. dnsmasq answers every name: nothing leaves the machine.
    let d = dnsmasq(
        "host-record=mx1.web.de,192.0.2.10\n\
         host-record=mx2.web.de,198.51.100.20\n\
         host-record=out1.mail.bigprovider.test,192.0.2.11\n\
         host-record=out2.mail.bigprovider.test,198.51.100.21\n\
         txt-record=spf.example,\"v=spf1 ip4:203.0.113.0/24 -all\"\n",
    );
    let config = format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"2s\"\nattempts = 2\n[policy]\nmynetworks = []\n[greylist]\ndelay = 1\nauto_whitelist_clients = 0\n",
        d.port
    );
    let s = start(&config).await;
    let mut c = Client::connect(s.addr).await;
    let rcpt = pool_rcpt;
    // Same verified PTR domain: mx1.web.de and mx2.web.de are both web.de.
    // Under an unknown TLD each PTR name is its own domain: no pool.
    for (ip, sender) in [
        ("192.0.2.10", "alice@web.de"),
        ("192.0.2.11", "dave@bigprovider.test"),
    ] {
        let a = c.ask(&rcpt(ip, sender)).await;
        assert!(a.starts_with("DEFER_IF_PERMIT"), "first attempt: {a}");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = c.ask(&rcpt("198.51.100.20", "alice@web.de")).await;
    assert!(
        a.starts_with("PREPEND X-Greylist"),
        "same verified PTR domain passes: {a}"
    );
    let a = c.ask(&rcpt("198.51.100.21", "dave@bigprovider.test")).await;
    assert!(
        a.starts_with("DEFER_IF_PERMIT"),
        "PTR names under an unknown TLD are not one pool: {a}"
    );
    // SPF-authorised network.
    assert!(
        c.ask(&rcpt("192.0.2.99", "carol@spf.example"))
            .await
            .starts_with("DEFER_IF_PERMIT")
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let a = c.ask(&rcpt("203.0.113.7", "carol@spf.example")).await;
    assert!(
        a.starts_with("PREPEND X-Greylist"),
        "SPF-authorised IP passes: {a}"
    );
    // An unrelated IP is not part of the pool.
    let a = c.ask(&rcpt("198.18.5.5", "carol@spf.example")).await;
    assert!(a.starts_with("DEFER_IF_PERMIT"), "not in the pool: {a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_client_hostnames() {
    let d = dnsmasq(
        "host-record=good.client.test,192.0.2.77\nptr-record=78.2.0.192.in-addr.arpa,liar.client.test\n",
    );
    let config = format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"2s\"\nattempts = 2\n[policy.restrictions]\nclient = [\"reject_unknown_client_hostname\"]\nhelo = [\"reject_unknown_reverse_client_hostname\"]\n",
        d.port
    );
    let s = start(&config).await;
    let mut c = Client::connect(s.addr).await;
    // Postfix's own verdict in client_name is used when present.
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "192.0.2.5"),
            ("client_name", "unknown"),
        ])
        .await;
    assert!(
        a.starts_with("450 4.7.25 Client host rejected: cannot find your hostname"),
        "{a}"
    );
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "192.0.2.5"),
            ("client_name", "mx.ok.example"),
        ])
        .await;
    assert_eq!(a, "DUNNO");
    // Without the attribute, mxguard looks it up: forward-confirmed, or not.
    assert_eq!(
        c.ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "192.0.2.77")
        ])
        .await,
        "DUNNO"
    );
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "192.0.2.78"),
        ])
        .await;
    assert!(
        a.starts_with("450 4.7.25"),
        "PTR without a matching A record: {a}"
    );
    let a = c
        .ask(&[("protocol_state", "HELO"), ("client_address", "192.0.2.78")])
        .await;
    assert_eq!(a, "DUNNO", "a PTR name is enough for the reverse check");
    let a = c
        .ask(&[("protocol_state", "HELO"), ("client_address", "192.0.2.79")])
        .await;
    assert!(
        a.starts_with("450 4.7.25 Client host rejected: cannot find your reverse hostname"),
        "{a}"
    );
}

/// How many queries for `name` (of type `qtype`, e.g. `A`) dnsmasq logged.
fn queries_logged(log: &std::path::Path, qtype: &str, name_suffix: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.split_once(&format!("query[{qtype}] "))
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|name| name.ends_with(name_suffix))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_ten_ptr_names_are_followed() {
    // 30 PTR names for one address, none of which leads back to it.
    let ptrs: String = (1..=30)
        .map(|i| format!("ptr-record=200.2.0.192.in-addr.arpa,h{i}.many.test\n"))
        .collect();
    let d = dnsmasq_logging(&ptrs);
    let log = d.log.clone().unwrap();
    let config = format!(
        "[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"2s\"\nattempts = 2\n[policy.restrictions]\nclient = [\"reject_unknown_client_hostname\"]\n",
        d.port
    );
    let s = start(&config).await;
    let mut c = Client::connect(s.addr).await;
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "192.0.2.200"),
        ])
        .await;
    assert!(a.starts_with("450 4.7.25"), "no name confirms: {a}");
    // dnsmasq writes its log as it goes; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        queries_logged(&log, "PTR", "in-addr.arpa"),
        1,
        "one PTR query"
    );
    let followed = queries_logged(&log, "A", ".many.test");
    assert!(
        (1..=10).contains(&followed),
        "forward lookups of at most 10 of the 30 PTR names, not {followed}"
    );
}

/// A UDP DNS relay to `upstream` that answers every query `delay` late:
/// slow but under the resolver's time-out, so every lookup succeeds.
async fn slow_relay(upstream: u16, delay: Duration) -> u16 {
    let sock = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let query = buf[..n].to_vec();
            let sock = sock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                up.send_to(&query, ("127.0.0.1", upstream)).await.unwrap();
                let mut answer = vec![0u8; 4096];
                if let Ok(Ok(m)) =
                    tokio::time::timeout(Duration::from_secs(2), up.recv(&mut answer)).await
                {
                    let _ = sock.send_to(&answer[..m], from).await;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_sender_pool_check_ends_within_one_deadline() {
    // Every answer comes 300 ms late (the time-out is 500 ms, so none fails):
    // 12 PTR names for the retrying IP, none confirming, and an SPF record
    // that walks nine includes. One by one that is seconds of lookups.
    let mut records: String = (1..=12)
        .map(|i| format!("ptr-record=20.100.51.198.in-addr.arpa,h{i}.p.test\n"))
        .collect();
    let includes: String = (1..=9)
        .map(|i| format!(" include:i{i}.pool.test"))
        .collect();
    records.push_str(&format!("txt-record=pool.test,\"v=spf1{includes} -all\"\n"));
    for i in 1..=9 {
        records.push_str(&format!("txt-record=i{i}.pool.test,\"v=spf1 -all\"\n"));
    }
    let d = dnsmasq(&records);
    let relay = slow_relay(d.port, Duration::from_millis(300)).await;
    let config = format!(
        "[dns]\nnameservers = [\"127.0.0.1:{relay}\"]\ntimeout = \"500ms\"\nattempts = 1\ncache_size = 0\n[policy]\nmynetworks = []\n[greylist]\ndelay = 1\nauto_whitelist_clients = 0\n"
    );
    let s = start(&config).await;
    // The first attempt only records the pool: no DNS (a lookup takes 300 ms).
    let ((a, first), (b, took)) = pool_first_and_retry(&s, "alice@pool.test").await;
    assert!(a.starts_with("DEFER_IF_PERMIT"), "{a}");
    assert!(
        first < Duration::from_millis(250),
        "no DNS before a pool record exists: {first:?}"
    );
    // The retry from another IP: PTR names and SPF share one deadline
    // (one lookup's: 500 ms × 2).
    assert!(b.starts_with("DEFER_IF_PERMIT"), "greylisted as usual: {b}");
    assert!(
        took < Duration::from_millis(1700),
        "bounded by the pool check's deadline: {took:?}"
    );
    assert!(
        s.engine
            .stats
            .dns_errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1,
        "the time-out is counted"
    );
}

/// A recipient-stage request from `ip` for mail from `sender` to
/// bob@rcpt.example.
fn pool_rcpt(ip: &'static str, sender: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("protocol_state", "RCPT"),
        ("client_address", ip),
        ("client_name", "unknown"),
        ("sender", sender),
        ("recipient", "bob@rcpt.example"),
    ]
}

/// A sender's first greylisted attempt from 192.0.2.10, then, once the
/// 1 s delay is over, its retry from 198.51.100.20 (another IP of the
/// pool): each answer with how long it took.
async fn pool_first_and_retry(
    s: &common::Server,
    sender: &'static str,
) -> ((String, Duration), (String, Duration)) {
    let mut c = Client::connect(s.addr).await;
    let rcpt = |ip: &'static str| pool_rcpt(ip, sender);
    let t = Instant::now();
    let first = c.ask(&rcpt("192.0.2.10")).await;
    let first_took = t.elapsed();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let t = Instant::now();
    let retry = c.ask(&rcpt("198.51.100.20")).await;
    ((first, first_took), (retry, t.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_pool_check_against_a_silent_dns_server_ends_within_the_deadline() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for outcome in ["dunno", "defer"] {
        let config = format!(
            "[dns]\nnameservers = [\"127.0.0.1:{port}\"]\ntimeout = \"300ms\"\nattempts = 1\n[policy]\nmynetworks = []\ndns_failure = \"{outcome}\"\n[greylist]\ndelay = 1\nauto_whitelist_clients = 0\n"
        );
        let s = start(&config).await;
        let ((a, first), (b, took)) = pool_first_and_retry(&s, "alice@silent.test").await;
        assert!(a.starts_with("DEFER_IF_PERMIT"), "{outcome}: {a}");
        assert!(
            first < Duration::from_millis(250),
            "{outcome}: no DNS for the first attempt: {first:?}"
        );
        // Greylisting defers either way: no pool pass without DNS.
        assert!(b.starts_with("DEFER_IF_PERMIT"), "{outcome}: {b}");
        assert!(
            took < Duration::from_millis(1000),
            "{outcome}: within the deadline (300 ms × 2): {took:?}"
        );
    }
}
