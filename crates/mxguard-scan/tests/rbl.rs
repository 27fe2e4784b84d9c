//! DNS lists in the scan against a real DNS server (dnsmasq on loopback)
//! serving list entries: the client address, the first untrusted Received
//! hop and a URL domain that are listed give their rspamd symbols, an
//! unlisted URL domain gives none; a name server that never answers gives
//! each list's `_FAIL` symbol within the check's time-out, and the other
//! checks' symbols stand.

use mxguard_core::Envelope;
use mxguard_core::config::{LoadedConfig, Millis, load_str};
use mxguard_scan::{Pipeline, Services};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../../mxguard-dns/tests/support/dnsmasq.rs"]
mod dnsmasq_support;
use dnsmasq_support::dnsmasq;

/// Spamhaus-style lists on test zones, as an rspamd user writes them.
const LISTS: &str = r#"
[rbl]
timeout = "600ms"

[[rbl.lists]]
zone = "zen.test"
symbol = "SPAMHAUS"
checks = ["from", "received"]
symbols_prefixes = { from = "RBL", received = "RECEIVED" }
returncodes = { SPAMHAUS_SBL = "127.0.0.2", SPAMHAUS_XBL = "127.0.0.[4..7]" }

[[rbl.lists]]
zone = "dbl.test"
symbol = "DBL"
checks = ["urls"]
returncodes = { DBL_SPAM = "127.0.1.2", DBL_PHISH = "127.0.1.4" }
"#;

const MESSAGE: &str = "Received: from relay.example.net (relay.example.net [198.51.100.5])\r\n\
    \tby mx.example.org (Postfix) with ESMTP id 1; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
    From: Shop <news@shop.example.org>\r\n\
    To: you@example.org\r\n\
    Subject: offers\r\n\
    Message-ID: <1@shop.example.org>\r\n\
    Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
    Content-Type: text/html\r\n\r\n\
    <p>Buy at <a href=\"https://www.listed-shop.com/buy\">https://www.listed-shop.com/</a>\r\n\
    or <a href=\"https://clean-shop.org/\">clean-shop.org</a>\r\n\
    or <a href=\"https://paypal.com.evil-site.net/x\">www.paypal.com</a></p>\r\n";

fn pipeline(dns_addr: String, dns_timeout: Millis) -> Pipeline {
    let mut config =
        load_str(LISTS, "t.toml", &mxguard_scan::sections()).unwrap_or_else(|e| panic!("{e:?}"));
    config.dns.nameservers = vec![dns_addr];
    config.dns.timeout = dns_timeout;
    config.dns.attempts = 2;
    // Only the checks under test wait on DNS.
    config.set_section(mxguard_auth::config::SpfConfig {
        enabled: false,
        ..Default::default()
    });
    config.set_section(mxguard_auth::config::DkimConfig {
        enabled: false,
        ..Default::default()
    });
    config.set_section(mxguard_auth::config::DmarcConfig {
        enabled: false,
        ..Default::default()
    });
    config.set_section(mxguard_auth::config::ArcVerifyConfig {
        enabled: false,
        ..Default::default()
    });
    let resolver = mxguard_dns::Dns::new(&config.dns).unwrap();
    let services = Services {
        resolver: Some(Arc::new(resolver)),
        ..Services::default()
    };
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    Pipeline::new(&loaded, &services)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .0
}

fn envelope() -> Envelope {
    Envelope {
        ip: Some("192.0.2.7".parse().unwrap()),
        helo: Some("relay.example.net".into()),
        mail_from: Some("news@shop.example.org".into()),
        rcpts: vec!["you@example.org".into()],
        ..Envelope::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_names_fire_and_unlisted_ones_do_not() {
    let dns = dnsmasq(
        "host-record=7.2.0.192.zen.test,127.0.0.2\n\
         host-record=5.100.51.198.zen.test,127.0.0.4\n\
         host-record=listed-shop.com.dbl.test,127.0.1.2\n",
    );
    let p = pipeline(format!("127.0.0.1:{}", dns.port), Millis(2_000));
    let v = p.scan(&envelope(), MESSAGE.as_bytes()).await;
    let names: Vec<&String> = v.symbols.keys().collect();
    assert_eq!(
        v.symbols["RBL_SPAMHAUS_SBL"].options,
        ["192.0.2.7:from"],
        "{names:?}"
    );
    assert_eq!(
        v.symbols["RECEIVED_SPAMHAUS_XBL"].options,
        ["198.51.100.5:received"],
        "{names:?}"
    );
    assert_eq!(v.symbols["DBL_SPAM"].options, ["listed-shop.com:urls"]);
    assert!(v.symbols["DBL_SPAM"].score > 0.0, "rspamd's weight: {v:?}");
    // clean-shop.org and evil-site.net were asked and are not listed.
    for s in v.symbols.values().filter(|s| s.name != "PHISHING") {
        assert!(
            !s.options
                .iter()
                .any(|o| o.contains("clean-shop") || o.contains("evil-site")),
            "{s:?}"
        );
    }
    assert!(!names.iter().any(|n| n.ends_with("_FAIL")), "{names:?}");

    // An unlisted client and a message without listed URLs: nothing.
    let clean = Envelope {
        ip: Some("192.0.2.8".parse().unwrap()),
        ..envelope()
    };
    let v = p
        .scan(
            &clean,
            b"From: a@example.org\r\nSubject: x\r\n\r\nsee https://clean-shop.org/\r\n",
        )
        .await;
    let names: Vec<&String> = v.symbols.keys().collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("SPAMHAUS") || n.starts_with("DBL") || n.ends_with("_FAIL")),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_name_server_gives_the_fail_symbols_within_the_timeout() {
    // Bound, never answering.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    // The resolver would wait 5 s a try: the check's 600 ms must bound it.
    let p = pipeline(addr, Millis(5_000));
    let started = Instant::now();
    let v = p.scan(&envelope(), MESSAGE.as_bytes()).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_500), "took {took:?}");
    let names: Vec<&String> = v.symbols.keys().collect();
    let fail = &v.symbols["SPAMHAUS_FAIL"].options;
    assert!(
        fail.contains(&"192.0.2.7:from: timeout".to_string()),
        "{fail:?}"
    );
    assert!(
        fail.contains(&"198.51.100.5:received: timeout".to_string()),
        "{fail:?}"
    );
    assert!(
        v.symbols["DBL_FAIL"]
            .options
            .contains(&"listed-shop.com:urls: timeout".to_string()),
        "{names:?}"
    );
    // The inline checks' symbols stand.
    assert!(v.symbols.contains_key("PHISHING"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("SPAMHAUS_SBL")),
        "{names:?}"
    );
}
