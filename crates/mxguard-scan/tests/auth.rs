//! The authentication checks in the pipeline, against a real DNS server
//! (dnsmasq on loopback): a message ARC-sealed by a list (the ValiMail
//! suite's `cv_pass_i1_1`, read from MXGUARD_TESTDATA) whose author domain
//! publishes `p=reject` and whose SPF fails. Without trust in the sealer
//! DMARC forces a reject; with `trusted_arc_sealers` the sealer's ARC pass
//! overrides the failure and nothing is forced. DMARC reads SPF, DKIM and
//! ARC through their typed values.

use mxguard_auth::config::DmarcConfig;
use mxguard_core::config::{Config, LoadedConfig};
use mxguard_core::{Action, Envelope};
use mxguard_scan::{Pipeline, Services};
use std::path::PathBuf;
use std::sync::Arc;

#[path = "../../mxguard-dns/tests/support/dnsmasq.rs"]
mod dnsmasq_support;
use dnsmasq_support::{Dnsmasq, dnsmasq};

fn arc_suite() -> Option<String> {
    let base = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    let p = base.join("arc-suite/tests/arc-draft-validation-tests.yml");
    match std::fs::read_to_string(&p) {
        Ok(t) => Some(t),
        Err(_) => {
            eprintln!("SKIP: {} is absent (set MXGUARD_TESTDATA)", p.display());
            None
        }
    }
}

/// The block under `key` (a YAML literal or folded scalar), dedented.
fn block_after<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let lines = text.lines().skip_while(|l| l.trim() != key).skip(1);
    let first = lines.clone().next().unwrap_or_default();
    let indent = first.len() - first.trim_start().len();
    lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect()
}

fn pipeline(dns: &Dnsmasq, trusted: &[&str]) -> Pipeline {
    let mut config = Config::default();
    config.dns.nameservers = vec![format!("127.0.0.1:{}", dns.port)];
    config.set_section(DmarcConfig {
        trusted_arc_sealers: trusted.iter().map(|s| s.to_string()).collect(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_arc_sealer_overrides_a_dmarc_reject() {
    let Some(suite) = arc_suite() else { return };
    // The first scenario: its key and its first passing chain.
    let key: String = block_after(&suite, "dummy._domainkey.example.org: >-").join(" ");
    let message_start = suite
        .find("  cv_pass_i1_1:")
        .expect("cv_pass_i1_1 in the suite");
    let message = block_after(&suite[message_start..], "message:     |")
        .into_iter()
        .take_while(|l| !l.starts_with("cv:"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let key_parts: Vec<String> = key
        .trim()
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    let records = format!(
        "txt-record=dummy._domainkey.example.org,{}\n\
         txt-record=d1.example.org,\"v=spf1 ip4:72.52.75.15 -all\"\n\
         txt-record=_dmarc.d1.example.org,\"v=DMARC1; p=reject\"\n",
        key_parts.join(",")
    );
    let dns = dnsmasq(&records);
    // Forwarded by the list from 192.0.2.55: SPF for d1.example.org fails.
    let envelope = Envelope {
        ip: Some("192.0.2.55".parse().unwrap()),
        helo: Some("lists.example.org".into()),
        mail_from: Some("jqd@d1.example.org".into()),
        rcpts: vec!["arc@dmarc.org".into()],
        ..Envelope::default()
    };

    let strict = pipeline(&dns, &[]);
    let v = strict.scan(&envelope, message.as_bytes()).await;
    let names: Vec<&String> = v.symbols.keys().collect();
    assert!(v.symbols.contains_key("R_SPF_FAIL"), "{names:?}");
    assert!(v.symbols.contains_key("ARC_ALLOW"), "{names:?}");
    assert!(v.symbols.contains_key("R_DKIM_NA"), "{names:?}");
    assert!(v.symbols.contains_key("DMARC_POLICY_REJECT"), "{names:?}");
    assert_eq!(v.action, Action::Reject, "{v:?}");
    assert_eq!(v.forced_by.as_deref(), Some("DMARC_POLICY_REJECT"));

    let trusting = pipeline(&dns, &["example.org"]);
    let v = trusting.scan(&envelope, message.as_bytes()).await;
    let names: Vec<&String> = v.symbols.keys().collect();
    assert!(v.symbols.contains_key("DMARC_POLICY_SOFTFAIL"), "{names:?}");
    assert!(!v.symbols.contains_key("DMARC_POLICY_REJECT"), "{names:?}");
    assert_eq!(v.forced_by, None, "{v:?}");
    assert_ne!(v.action, Action::Reject);
    let opt = &v.symbols["DMARC_POLICY_SOFTFAIL"].options;
    assert!(
        opt.iter().any(|o| o.contains("sealed by example.org")),
        "{opt:?}"
    );
}
