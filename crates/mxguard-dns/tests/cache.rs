//! The `[dns]` cache against a real DNS server (dnsmasq on loopback, its
//! query log counting what reached the wire): negative answers without an
//! SOA cached for `negative_min_ttl`, TTL floors and caps honoured, and
//! identical queries in flight at once sent once.

use mxguard_core::config::{DnsConfig, Seconds};
use mxguard_dns::Dns;
use std::time::{Duration, Instant};

mod support {
    pub mod dnsmasq;
}
use support::dnsmasq::{Dnsmasq, dnsmasq_logging as dnsmasq};

/// What the cache tests ask of the server: its query log, and a resolver
/// pointed at it.
trait CacheTarget {
    async fn txt_queries(&self, name: &str, expected: usize) -> usize;
    fn dns(&self, tune: impl FnOnce(&mut DnsConfig)) -> Dns;
}

impl CacheTarget for Dnsmasq {
    /// How many TXT queries for exactly `name` reached the server, once
    /// its log shows at least `expected` (dnsmasq writes as it goes; a
    /// loaded machine may lag) or two seconds have passed, and a moment
    /// more for any extra query to show.
    async fn txt_queries(&self, name: &str, expected: usize) -> usize {
        let log = self.log.as_deref().expect("started with dnsmasq_logging");
        let count = || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.lines()
                .filter(|l| {
                    l.split_once("query[TXT] ")
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .is_some_and(|n| n == name)
                })
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while count() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        count()
    }

    fn dns(&self, tune: impl FnOnce(&mut DnsConfig)) -> Dns {
        let mut config = DnsConfig {
            nameservers: vec![format!("127.0.0.1:{}", self.port)],
            ..DnsConfig::default()
        };
        tune(&mut config);
        Dns::new(&config).expect("a resolver for dnsmasq")
    }
}

const RECORDS: &str = "txt-record=_dmarc.found.test,\"v=DMARC1; p=none\"\n";

#[tokio::test]
async fn nxdomain_without_an_soa_is_cached_for_the_floor() {
    let d = dnsmasq(RECORDS);
    // The default floor (60 s): the second question is answered from the
    // cache, with the same "no records".
    let dns = d.dns(|_| {});
    for _ in 0..3 {
        assert_eq!(dns.txt("_dmarc.missing.test").await, Ok(vec![]));
    }
    assert_eq!(d.txt_queries("_dmarc.missing.test", 1).await, 1);
    // No floor: dnsmasq gives no TTL, so nothing is cached.
    let dns = d.dns(|c| c.negative_min_ttl = Seconds(0));
    for _ in 0..3 {
        assert_eq!(dns.txt("_dmarc.other.test").await, Ok(vec![]));
    }
    assert_eq!(d.txt_queries("_dmarc.other.test", 3).await, 3);
}

#[tokio::test]
async fn nodata_is_cached_like_nxdomain() {
    // found.test exists (a name below it has a record) but has no TXT
    // record: dnsmasq answers NOERROR with no answer and no SOA (NODATA).
    let d = dnsmasq(RECORDS);
    let dns = d.dns(|_| {});
    assert_eq!(dns.txt("found.test").await, Ok(vec![]));
    assert_eq!(dns.txt("found.test").await, Ok(vec![]));
    assert_eq!(d.txt_queries("found.test", 1).await, 1);
}

#[tokio::test]
async fn a_negative_answer_expires_at_its_cap() {
    let d = dnsmasq(RECORDS);
    let dns = d.dns(|c| {
        c.negative_min_ttl = Seconds(1);
        c.negative_max_ttl = Seconds(1);
    });
    assert_eq!(dns.txt("_dmarc.gone.test").await, Ok(vec![]));
    assert_eq!(dns.txt("_dmarc.gone.test").await, Ok(vec![]));
    assert_eq!(d.txt_queries("_dmarc.gone.test", 1).await, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(dns.txt("_dmarc.gone.test").await, Ok(vec![]));
    assert_eq!(d.txt_queries("_dmarc.gone.test", 2).await, 2, "asked again");
}

#[tokio::test]
async fn found_records_honour_the_floor_and_the_cap() {
    // dnsmasq serves its own records with TTL 0 by default: as served,
    // they are never cached.
    let d = dnsmasq(RECORDS);
    let want = Ok(vec!["v=DMARC1; p=none".to_string()]);
    let dns = d.dns(|_| {});
    assert_eq!(dns.txt("_dmarc.found.test").await, want);
    assert_eq!(dns.txt("_dmarc.found.test").await, want);
    assert_eq!(d.txt_queries("_dmarc.found.test", 2).await, 2);
    // A floor keeps them.
    let dns = d.dns(|c| c.positive_min_ttl = Seconds(60));
    assert_eq!(dns.txt("_dmarc.found.test").await, want);
    assert_eq!(dns.txt("_dmarc.found.test").await, want);
    assert_eq!(d.txt_queries("_dmarc.found.test", 3).await, 3);
    // A ten-minute TTL, capped at one second.
    let long = dnsmasq(&format!("local-ttl=600\n{RECORDS}"));
    let dns = long.dns(|c| c.positive_max_ttl = Seconds(1));
    assert_eq!(dns.txt("_dmarc.found.test").await, want);
    assert_eq!(dns.txt("_dmarc.found.test").await, want);
    assert_eq!(long.txt_queries("_dmarc.found.test", 1).await, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(dns.txt("_dmarc.found.test").await, want);
    assert_eq!(
        long.txt_queries("_dmarc.found.test", 2).await,
        2,
        "asked again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_queries_in_flight_are_sent_once() {
    let d = dnsmasq(RECORDS);
    // No cache at all: only the sharing of queries in flight can save the
    // 49 repeats (50 sessions asking for one sender's record at once).
    let dns = d.dns(|c| c.cache_size = 0);
    let answers =
        futures_util::future::join_all((0..50).map(|_| dns.txt("_dmarc.found.test"))).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_deref() == Ok(&["v=DMARC1; p=none".to_string()][..])),
        "{answers:?}"
    );
    assert_eq!(d.txt_queries("_dmarc.found.test", 1).await, 1);
    // Without a cache, later questions go to the wire again.
    dns.txt("_dmarc.found.test").await.unwrap();
    assert_eq!(d.txt_queries("_dmarc.found.test", 2).await, 2);
}

#[tokio::test]
async fn a_parsed_answer_is_made_once_and_lives_as_long_as_the_answer() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let parses = AtomicUsize::new(0);
    let parse = |txt: &[String]| {
        parses.fetch_add(1, Ordering::Relaxed);
        txt.join("|").len()
    };
    // Kept one second (the cap): parsed once, asked once, until then.
    let d = dnsmasq(&format!("local-ttl=600\n{RECORDS}"));
    let dns = d.dns(|c| c.positive_max_ttl = Seconds(1));
    for _ in 0..3 {
        let got = dns.txt_parsed("_dmarc.found.test", parse).await;
        assert_eq!(got.as_deref(), Ok(&"v=DMARC1; p=none".len()));
    }
    assert_eq!(parses.load(Ordering::Relaxed), 1);
    assert_eq!(d.txt_queries("_dmarc.found.test", 1).await, 1);
    // The plain records are the same answer, unchanged by the parse.
    assert_eq!(
        dns.txt("_dmarc.found.test").await,
        Ok(vec!["v=DMARC1; p=none".to_string()])
    );
    // Expired with the answer: asked and parsed again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dns.txt_parsed("_dmarc.found.test", parse).await.unwrap();
    assert_eq!(parses.load(Ordering::Relaxed), 2);
    assert_eq!(d.txt_queries("_dmarc.found.test", 2).await, 2);
    // "No records" is parsed (once) too; another type made of the same
    // answer is made anew rather than mistaken for the first.
    let none = dns.txt_parsed("_dmarc.missing.test", parse).await;
    assert_eq!(none.as_deref(), Ok(&0));
    let other = dns
        .txt_parsed("_dmarc.missing.test", |t: &[String]| t.is_empty())
        .await;
    assert_eq!(other.as_deref(), Ok(&true));
    // No cache: every question parsed anew.
    let off = d.dns(|c| c.cache_size = 0);
    let before = parses.load(Ordering::Relaxed);
    off.txt_parsed("_dmarc.found.test", parse).await.unwrap();
    off.txt_parsed("_dmarc.found.test", parse).await.unwrap();
    assert_eq!(parses.load(Ordering::Relaxed), before + 2);
}
