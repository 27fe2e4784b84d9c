//! Unit tests across the report modules: aggregation in a real embedded
//! store, the XML against RFC 7489's schema (xmllint) and mail-auth's
//! parser, and the send state machine against a scripted SMTP peer (the
//! end-to-end test with real Postfix is in `crates/mxguard/tests`).

use super::authz::tests::Table;
use super::period::Period;
use super::send::{Outcome, Reporter, SendState, State};
use super::store::{self, Recorded};
use super::*;
use crate::config::DmarcReportConfig;
use mxguard_core::config::Seconds;
use mxguard_store::{EmbeddedStore, Store};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// 2026-12-06 12:00 UTC, and the day after at 01:00 (reports due).
const NOON: u64 = 1_796_558_400;
const NEXT_DAY: u64 = NOON + 13 * 3600;

fn config(relay: &str) -> DmarcReportConfig {
    DmarcReportConfig {
        enabled: true,
        send_reports: true,
        org_name: "Example Receiver".into(),
        domain: "mx.receiver.example".into(),
        email: "dmarc-noreply@receiver.example".into(),
        relay: relay.into(),
        max_tries: 3,
        retry_interval: Seconds(60),
        ..Default::default()
    }
}

fn policy(domain: &str, form: RecordForm, rua: &[&str]) -> PublishedPolicy {
    PublishedPolicy {
        domain: domain.into(),
        form,
        p: Policy::Reject,
        sp: None,
        np: Some(Policy::Quarantine),
        pct: (form == RecordForm::Rfc7489).then_some(100),
        testing: false,
        adkim: Alignment::Relaxed,
        aspf: Alignment::Strict,
        fo: None,
        rua: rua.iter().map(|s| s.to_string()).collect(),
        discovery: if form == RecordForm::DmarcBis {
            Discovery::Treewalk
        } else {
            Discovery::Psl
        },
    }
}

fn eval(ip: &str, pass: bool, p: &PublishedPolicy) -> Evaluation {
    let ip: IpAddr = ip.parse().unwrap_or(IpAddr::from([192, 0, 2, 1]));
    Evaluation {
        time: NOON,
        source_ip: ip,
        header_from: p.domain.clone(),
        envelope_from: if pass {
            p.domain.clone()
        } else {
            "bounce.other.example".into()
        },
        envelope_to: Some("receiver.example".into()),
        spf: vec![SpfAuth {
            domain: if pass {
                p.domain.clone()
            } else {
                "bounce.other.example".into()
            },
            scope: SpfScope::Mfrom,
            result: if pass {
                SpfResult::Pass
            } else {
                SpfResult::Softfail
            },
        }],
        dkim: if pass {
            vec![DkimAuth {
                domain: p.domain.clone(),
                selector: "s1".into(),
                result: DkimResult::Pass,
            }]
        } else {
            Vec::new()
        },
        spf_aligned: pass,
        dkim_aligned: pass,
        policy: p.clone(),
        disposition: if pass {
            Disposition::Pass
        } else {
            Disposition::Reject
        },
        overrides: Vec::new(),
    }
}

fn open_store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    (dir, Arc::new(store))
}

/// Records a day: 5 passing from one IP, 3 failing from another, 1 from v6.
async fn record_day(store: &dyn Store, c: &DmarcReportConfig, p: &PublishedPolicy) {
    for _ in 0..5 {
        record_evaluation(store, c, &eval("192.0.2.10", true, p))
            .await
            .expect("record");
    }
    for _ in 0..3 {
        record_evaluation(store, c, &eval("198.51.100.7", false, p))
            .await
            .expect("record");
    }
    record_evaluation(store, c, &eval("2001:db8::25", true, p))
        .await
        .expect("record");
}

#[tokio::test]
async fn aggregation_counts_rows_not_messages() {
    let (_d, store) = open_store();
    let c = config("127.0.0.1:1");
    let p = policy(
        "example.com",
        RecordForm::Rfc7489,
        &["mailto:dmarc@example.com"],
    );
    record_day(&*store, &c, &p).await;
    let day = store::load(&*store, Period::of(NOON), "example.com", 100)
        .await
        .expect("load")
        .expect("recorded");
    assert_eq!(day.rows.len(), 3);
    assert_eq!(day.messages(), 9);
    let mut counts: Vec<u64> = day.rows.iter().map(|(_, n)| *n).collect();
    counts.sort();
    assert_eq!(counts, [1, 3, 5]);
    assert_eq!(day.policy.rua, ["mailto:dmarc@example.com"]);
    assert_eq!(
        store::domains(&*store, Period::of(NOON), 10)
            .await
            .expect("domains"),
        ["example.com"]
    );
    // Another day is another report.
    let mut later = eval("192.0.2.10", true, &p);
    later.time = NOON + 86_400;
    record_evaluation(&*store, &c, &later)
        .await
        .expect("record");
    let next = store::load(&*store, Period::of(NOON + 86_400), "example.com", 100)
        .await
        .expect("load")
        .expect("recorded");
    assert_eq!(next.messages(), 1);
}

#[tokio::test]
async fn caps_bound_rows_and_domains() {
    let (_d, store) = open_store();
    let c = DmarcReportConfig {
        max_rows_per_domain: 2,
        max_domains: 2,
        ..config("127.0.0.1:1")
    };
    let p = policy("example.com", RecordForm::Rfc7489, &[]);
    assert_eq!(
        record_evaluation(&*store, &c, &eval("192.0.2.1", true, &p))
            .await
            .ok(),
        Some(Recorded::NewRow)
    );
    assert_eq!(
        record_evaluation(&*store, &c, &eval("192.0.2.1", true, &p))
            .await
            .ok(),
        Some(Recorded::Counted)
    );
    assert_eq!(
        record_evaluation(&*store, &c, &eval("192.0.2.2", true, &p))
            .await
            .ok(),
        Some(Recorded::NewRow)
    );
    assert_eq!(
        record_evaluation(&*store, &c, &eval("192.0.2.3", true, &p))
            .await
            .ok(),
        Some(Recorded::OverCap)
    );
    // Existing rows still count once the cap is reached.
    assert_eq!(
        record_evaluation(&*store, &c, &eval("192.0.2.2", true, &p))
            .await
            .ok(),
        Some(Recorded::Counted)
    );
    let day = store::load(&*store, Period::of(NOON), "example.com", 100)
        .await
        .expect("load")
        .expect("day");
    assert_eq!((day.rows.len(), day.messages(), day.over_cap), (2, 4, 1));
    // Domains: two kept, the third counted only.
    for d in ["b.example", "c.example"] {
        let r = record_evaluation(
            &*store,
            &c,
            &eval("192.0.2.1", true, &policy(d, RecordForm::Rfc7489, &[])),
        )
        .await;
        assert_eq!(
            r.ok(),
            Some(if d == "b.example" {
                Recorded::NewRow
            } else {
                Recorded::OverCap
            })
        );
    }
    // Nothing is kept while reporting is off.
    let off = DmarcReportConfig {
        enabled: false,
        ..c.clone()
    };
    assert_eq!(
        record_evaluation(&*store, &off, &eval("192.0.2.1", true, &p))
            .await
            .ok(),
        Some(Recorded::Disabled)
    );
    // A policy domain that is not a name is not kept.
    let bad = policy("exa mple:com", RecordForm::Rfc7489, &[]);
    assert_eq!(
        record_evaluation(&*store, &c, &eval("192.0.2.1", true, &bad))
            .await
            .ok(),
        Some(Recorded::Invalid)
    );
}

fn xmllint() -> Option<std::path::PathBuf> {
    ["/usr/bin/xmllint", "/usr/local/bin/xmllint"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// Validates `xml` against RFC 7489's schema with xmllint.
fn validate_7489(xml: &str) -> Result<(), String> {
    let Some(lint) = xmllint() else {
        println!(
            "SKIP schema validation: xmllint not installed (Debian libxml2-utils; scripts/peers.sh installs it)"
        );
        return Ok(());
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    let xsd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rfc7489-appendix-c.xsd"
    );
    let out = std::process::Command::new(lint)
        .args(["--noout", "--schema", xsd])
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn built_xml(form: RecordForm, overrides: bool) -> String {
    let (_d, store) = open_store();
    let c = config("127.0.0.1:1");
    let mut p = policy("example.com", form, &["mailto:dmarc@example.com"]);
    p.fo = Some("1".into());
    record_day(&*store, &c, &p).await;
    if overrides {
        let mut e = eval("203.0.113.9", false, &p);
        e.disposition = Disposition::None;
        e.overrides = vec![Override {
            kind: OverrideKind::MailingList,
            comment: Some("list <lists@example.org> & \"friends\"".into()),
        }];
        e.spf.clear();
        e.envelope_to = None;
        record_evaluation(&*store, &c, &e).await.expect("record");
    }
    let r = Reporter::new(store, Arc::new(Table(HashMap::new())), c, None);
    let built = r
        .build(Period::of(NOON), "example.com", NEXT_DAY)
        .await
        .expect("build")
        .expect("built");
    built.xml
}

#[tokio::test]
async fn rfc7489_report_is_valid_against_the_schema() {
    let xml = built_xml(RecordForm::Rfc7489, true).await;
    validate_7489(&xml)
        .unwrap_or_else(|e| panic!("invalid against RFC 7489 appendix C: {e}\n{xml}"));
    assert!(xml.contains("<feedback>\n"));
    assert!(
        xml.contains("<pct>100</pct>")
            && xml.contains("<sp>reject</sp>")
            && xml.contains("<fo>1</fo>")
    );
    // pass is `none` in this form; IPv6 in full for the schema's pattern.
    assert!(!xml.contains("<disposition>pass</disposition>"));
    assert!(xml.contains("<source_ip>2001:db8:0:0:0:0:0:25</source_ip>"));
    assert!(
        xml.contains("<comment>list &lt;lists@example.org&gt; &amp; &quot;friends&quot;</comment>")
    );
    // The schema check can fail: a report without pct is rejected.
    if xmllint().is_some() {
        let broken = xml.replace("<pct>100</pct>", "");
        assert!(
            validate_7489(&broken).is_err(),
            "the schema check accepts anything"
        );
        let broken = xml.replace("<result>softfail</result>", "<result>maybe</result>");
        assert!(validate_7489(&broken).is_err());
    }
}

#[tokio::test]
async fn both_forms_parse_with_mail_auth_and_count_right() {
    for form in [RecordForm::Rfc7489, RecordForm::DmarcBis] {
        let xml = built_xml(form, false).await;
        let report = mail_auth::report::Report::parse_xml(xml.as_bytes())
            .unwrap_or_else(|e| panic!("{form:?}: mail-auth cannot parse it: {e}\n{xml}"));
        let total: u32 = report.records().iter().map(|r| r.count()).sum();
        assert_eq!(total, 9, "{form:?}");
        assert_eq!(report.records().len(), 3);
        assert_eq!(report.domain(), "example.com");
        assert_eq!(
            report.report_id(),
            "2026-12-06.example.com@mx.receiver.example"
        );
        assert_eq!(report.date_range_begin(), Period::of(NOON).begin());
        assert_eq!(report.date_range_end(), Period::of(NOON).end());
    }
}

#[tokio::test]
async fn dmarcbis_report_has_the_rfc9990_shape() {
    let xml = built_xml(RecordForm::DmarcBis, true).await;
    assert!(xml.contains("<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">"));
    for tag in [
        "<np>quarantine</np>",
        "<testing>n</testing>",
        "<discovery_method>treewalk</discovery_method>",
        "<disposition>pass</disposition>",
        "<generator>mxguard ",
    ] {
        assert!(xml.contains(tag), "{tag} missing:\n{xml}");
    }
    assert!(!xml.contains("<pct>"));
    assert!(xml.contains("<source_ip>2001:db8::25</source_ip>"));
    // Well-formed, and the element order the RFC 9990 schema's sequences
    // require, checked with an independent XML parser.
    let script = r#"
import sys, xml.etree.ElementTree as ET
ns = '{urn:ietf:params:xml:ns:dmarc-2.0}'
root = ET.fromstring(sys.stdin.read())
assert root.tag == ns + 'feedback', root.tag
top = [c.tag[len(ns):] for c in root]
assert top[:3] == ['version', 'report_metadata', 'policy_published'], top
assert set(top[3:]) == {'record'} and len(top) > 3, top
for rec in root.iter(ns + 'record'):
    assert [c.tag[len(ns):] for c in rec] == ['row', 'identifiers', 'auth_results']
    row = [c.tag[len(ns):] for c in rec.find(ns + 'row')]
    assert row == ['source_ip', 'count', 'policy_evaluated'], row
    pe = [c.tag[len(ns):] for c in rec.find(ns + 'row').find(ns + 'policy_evaluated')]
    assert pe[:3] == ['disposition', 'dkim', 'spf'] and set(pe[3:]) <= {'reason'}, pe
    ar = [c.tag[len(ns):] for c in rec.find(ns + 'auth_results')]
    assert ar == sorted(ar), ar  # every dkim before every spf
print('ok')
"#;
    let python = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("-c")
            .arg("pass")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        println!("SKIP structure check: no python3");
        return;
    };
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(xml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the scripted SMTP peer does.
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Accept,
    /// 451 to every RCPT.
    TempFailRcpt,
    /// Reads the message and the dot, then closes without a reply.
    DropAfterDot,
}

#[derive(Default)]
struct Seen {
    connections: usize,
    messages: Vec<(Vec<String>, String)>,
}

/// A scripted SMTP peer on loopback (this is a unit test: the behaviour of
/// a real relay is tested with Postfix in crates/mxguard/tests).
async fn peer(mode: Peer) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            s.lock().map(|mut g| g.connections += 1).ok();
            let s = s.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 peer ESMTP\r\n").await;
                let mut rcpts = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_string();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-peer\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("MAIL") {
                        b"250 ok\r\n"
                    } else if let Some(rcpt) = cmd.strip_prefix("RCPT TO:") {
                        if mode == Peer::TempFailRcpt {
                            b"451 4.3.0 try later\r\n"
                        } else {
                            rcpts.push(rcpt.trim_matches(|c| c == '<' || c == '>').to_string());
                            b"250 ok\r\n"
                        }
                    } else if cmd == "DATA" {
                        let _ = w.write_all(b"354 go\r\n").await;
                        let mut body = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            body.push_str(&line);
                        }
                        if mode == Peer::DropAfterDot {
                            return;
                        }
                        s.lock()
                            .map(|mut g| g.messages.push((rcpts.clone(), body)))
                            .ok();
                        b"250 queued\r\n"
                    } else if cmd == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"500 what\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (addr, seen)
}

fn connections(seen: &Arc<Mutex<Seen>>) -> usize {
    seen.lock().map(|g| g.connections).unwrap_or(usize::MAX)
}

#[tokio::test]
async fn sent_once_then_never_again() {
    let (relay, seen) = peer(Peer::Accept).await;
    let (_d, store) = open_store();
    let c = config(&relay);
    let p = policy(
        "example.com",
        RecordForm::Rfc7489,
        &["mailto:dmarc@example.com", "https://x.example/r"],
    );
    record_day(&*store, &c, &p).await;
    let r = Reporter::new(store.clone(), Arc::new(Table(HashMap::new())), c, None);
    // Not due during its own day.
    assert!(r.tick(NOON + 3600).await.is_empty());
    let first = r.tick(NEXT_DAY).await;
    assert_eq!(first.len(), 1);
    assert!(
        matches!(&first[0].2, Outcome::Sent { to, .. } if to == &["dmarc@example.com"]),
        "{first:?}"
    );
    let again = r.tick(NEXT_DAY + 60).await;
    assert_eq!(again[0].2, Outcome::Done(State::Sent));
    assert_eq!(connections(&seen), 1);
    let (rcpts, body) = seen.lock().expect("lock").messages[0].clone();
    assert_eq!(rcpts, ["dmarc@example.com"]);
    assert!(body.contains("Subject: Report Domain: example.com Submitter: mx.receiver.example Report-ID: <2026-12-06.example.com@mx.receiver.example>"));
    assert!(
        body.contains("filename=\"mx.receiver.example!example.com!1796515200!1796601599.xml.gz\"")
    );
    let counters = mxguard_store::Counters::new(store.clone());
    assert_eq!(counters.get("dmarc_reports_sent").await.ok(), Some(1));
    assert_eq!(
        counters.get("dmarc_report_destinations_dropped").await.ok(),
        Some(1)
    );
}

#[tokio::test]
async fn failures_retry_with_backoff_then_give_up() {
    let (relay, seen) = peer(Peer::TempFailRcpt).await;
    let (_d, store) = open_store();
    let c = config(&relay);
    record_day(
        &*store,
        &c,
        &policy(
            "example.com",
            RecordForm::Rfc7489,
            &["mailto:dmarc@example.com"],
        ),
    )
    .await;
    let r = Reporter::new(store.clone(), Arc::new(Table(HashMap::new())), c, None);
    let o = r.tick(NEXT_DAY).await;
    let Outcome::Retry { next_try, .. } = &o[0].2 else {
        panic!("{o:?}")
    };
    assert_eq!(*next_try, NEXT_DAY + 60);
    assert_eq!(r.tick(NEXT_DAY + 30).await[0].2, Outcome::NotYet);
    let o = r.tick(NEXT_DAY + 60).await;
    assert!(
        matches!(&o[0].2, Outcome::Retry { next_try, .. } if *next_try == NEXT_DAY + 60 + 120),
        "{o:?}"
    );
    let o = r.tick(NEXT_DAY + 180).await;
    assert!(
        matches!(&o[0].2, Outcome::GaveUp(e) if e.contains("451")),
        "{o:?}"
    );
    assert_eq!(
        r.tick(NEXT_DAY + 10_000).await[0].2,
        Outcome::Done(State::Failed)
    );
    assert_eq!(connections(&seen), 3);
    let counters = mxguard_store::Counters::new(store);
    assert_eq!(counters.get("dmarc_reports_given_up").await.ok(), Some(1));
    assert_eq!(
        counters.get("dmarc_report_send_failures").await.ok(),
        Some(3)
    );
}

#[tokio::test]
async fn broken_after_the_dot_is_never_resent() {
    let (relay, seen) = peer(Peer::DropAfterDot).await;
    let (_d, store) = open_store();
    let c = config(&relay);
    record_day(
        &*store,
        &c,
        &policy(
            "example.com",
            RecordForm::Rfc7489,
            &["mailto:dmarc@example.com"],
        ),
    )
    .await;
    let r = Reporter::new(store.clone(), Arc::new(Table(HashMap::new())), c, None);
    assert!(matches!(&r.tick(NEXT_DAY).await[0].2, Outcome::Unknown(_)));
    assert_eq!(
        r.tick(NEXT_DAY + 86_400).await[0].2,
        Outcome::Done(State::Unknown)
    );
    assert_eq!(connections(&seen), 1);
}

#[tokio::test]
async fn crash_between_sending_and_sent_is_never_resent() {
    let (relay, seen) = peer(Peer::Accept).await;
    let (dir, store) = open_store();
    let c = config(&relay);
    record_day(
        &*store,
        &c,
        &policy(
            "example.com",
            RecordForm::Rfc7489,
            &["mailto:dmarc@example.com"],
        ),
    )
    .await;
    // What a process killed after the relay's 354 leaves behind.
    let period = Period::of(NOON);
    let left = SendState {
        state: State::Sending,
        tries: 0,
        next_try: 0,
        last_error: None,
        recipients: vec!["dmarc@example.com".into()],
        updated: NEXT_DAY,
    };
    store
        .set(
            &store::state_key(period, "example.com"),
            &serde_json::to_vec(&left).expect("json"),
            None,
        )
        .await
        .expect("set");
    // "Restart": a new store handle and reporter on the same file.
    drop(store);
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).expect("reopen"));
    let r = Reporter::new(store.clone(), Arc::new(Table(HashMap::new())), c, None);
    assert!(matches!(
        &r.tick(NEXT_DAY + 5).await[0].2,
        Outcome::Unknown(_)
    ));
    assert_eq!(
        r.tick(NEXT_DAY + 65).await[0].2,
        Outcome::Done(State::Unknown)
    );
    assert_eq!(
        connections(&seen),
        0,
        "a report possibly sent was sent again"
    );
    let counters = mxguard_store::Counters::new(store);
    assert_eq!(counters.get("dmarc_reports_unknown").await.ok(), Some(1));
}

#[tokio::test]
async fn destinations_size_limits_and_authorisation() {
    let (relay, seen) = peer(Peer::Accept).await;
    let (_d, store) = open_store();
    let c = config(&relay);
    let rua = [
        "mailto:tiny@example.com!100",
        "mailto:ok@example.com!1m",
        "mailto:rua@reports.vendor.example",
        "mailto:rua@stranger.example",
    ];
    record_day(
        &*store,
        &c,
        &policy("example.com", RecordForm::Rfc7489, &rua),
    )
    .await;
    let mut t = HashMap::new();
    t.insert(
        "example.com._report._dmarc.reports.vendor.example".to_string(),
        Ok(vec!["v=DMARC1;".to_string()]),
    );
    let r = Reporter::new(store.clone(), Arc::new(Table(t.clone())), c.clone(), None);
    let built = r
        .build(Period::of(NOON), "example.com", NEXT_DAY)
        .await
        .expect("b")
        .expect("b");
    assert_eq!(
        built.recipients,
        ["ok@example.com", "rua@reports.vendor.example"]
    );
    assert!(
        built
            .dropped
            .iter()
            .any(|d| d.contains("tiny@example.com") && d.contains("!size limit of 100"))
    );
    assert!(built.dropped.iter().any(|d| d.contains("stranger.example")
        && d.contains("example.com._report._dmarc.stranger.example")));
    // DMARCbis has no size limits: the tiny one stays.
    let (_d2, store2) = open_store();
    record_day(
        &*store2,
        &c,
        &policy("example.com", RecordForm::DmarcBis, &rua),
    )
    .await;
    let r2 = Reporter::new(store2, Arc::new(Table(t)), c.clone(), None);
    let built = r2
        .build(Period::of(NOON), "example.com", NEXT_DAY)
        .await
        .expect("b")
        .expect("b");
    assert!(built.recipients.contains(&"tiny@example.com".to_string()));
    // A failed authorisation lookup retries later instead of dropping.
    let mut t = HashMap::new();
    t.insert(
        "example.com._report._dmarc.reports.vendor.example".to_string(),
        Err("timed out".to_string()),
    );
    let (_d3, store3) = open_store();
    record_day(
        &*store3,
        &c,
        &policy("example.com", RecordForm::Rfc7489, &rua),
    )
    .await;
    let r3 = Reporter::new(store3, Arc::new(Table(t)), c.clone(), None);
    assert!(
        matches!(&r3.tick(NEXT_DAY).await[0].2, Outcome::Retry { error, .. } if error.contains("timed out"))
    );
    // Nothing usable at all: final, nothing sent.
    let (_d4, store4) = open_store();
    record_day(
        &*store4,
        &c,
        &policy("example.com", RecordForm::Rfc7489, &["https://x.example/"]),
    )
    .await;
    let r4 = Reporter::new(store4, Arc::new(Table(HashMap::new())), c, None);
    assert!(matches!(
        &r4.tick(NEXT_DAY).await[0].2,
        Outcome::NoDestination(_)
    ));
    assert_eq!(connections(&seen), 0);
}

#[tokio::test]
async fn the_signer_seam_signs_the_mail() {
    let (relay, seen) = peer(Peer::Accept).await;
    let (_d, store) = open_store();
    let c = config(&relay);
    record_day(
        &*store,
        &c,
        &policy(
            "example.com",
            RecordForm::Rfc7489,
            &["mailto:dmarc@example.com"],
        ),
    )
    .await;
    let sign: Arc<SignFn> = Arc::new(|m: &[u8]| {
        let mut out = b"DKIM-Signature: v=1; d=receiver.example; s=test; b=stub\r\n".to_vec();
        out.extend_from_slice(m);
        Ok(out)
    });
    let r = Reporter::new(store, Arc::new(Table(HashMap::new())), c, Some(sign));
    assert!(matches!(&r.tick(NEXT_DAY).await[0].2, Outcome::Sent { .. }));
    let g = seen.lock().expect("lock");
    assert!(
        g.messages[0]
            .1
            .starts_with("DKIM-Signature: v=1; d=receiver.example")
    );
}

#[tokio::test]
async fn yesterdays_report_goes_at_start_and_old_days_too() {
    let (_d, store) = open_store();
    let c = DmarcReportConfig {
        send_hour: 6,
        ..config("127.0.0.1:1")
    };
    let r = Reporter::new(store, Arc::new(Table(HashMap::new())), c, None);
    let today = Period::of(NEXT_DAY);
    // 01:00, send_hour 6: yesterday not yet due, the day before is.
    let due = r.due_periods(NEXT_DAY);
    assert_eq!(due.last().copied(), Some(today.previous().previous()));
    let due = r.due_periods(NEXT_DAY + 6 * 3600);
    assert_eq!(due.last().copied(), Some(today.previous()));
    assert_eq!(due.len(), 6, "{due:?}"); // keep = 7 days: six whole days back
}

/// The seam takes a real DKIM signer: mail-auth's, with an Ed25519 key,
/// and dkimpy (an independent verifier) accepts the report mail's
/// signature, and refuses it once the attachment is changed.
#[tokio::test]
async fn a_real_dkim_signer_fits_the_seam_and_dkimpy_verifies() {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    let python = "/usr/bin/python3";
    let has_dkimpy = std::process::Command::new(python)
        .args(["-c", "import dkim, nacl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_dkimpy {
        println!(
            "SKIP: dkimpy (Debian python3-dkim, python3-nacl) not installed; this test did not run"
        );
        return;
    }
    let pkcs8 = Ed25519Key::generate_pkcs8().expect("key");
    let public = Ed25519Key::from_pkcs8_der(&pkcs8)
        .expect("key")
        .public_key();
    let sign: Arc<SignFn> = Arc::new(move |m: &[u8]| {
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| e.to_string())?;
        let sig = DkimSigner::from_key(key)
            .domain("receiver.example")
            .selector("rep")
            .headers([
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
            ])
            .sign(m)
            .map_err(|e| e.to_string())?;
        let mut out = sig.to_header().into_bytes();
        out.extend_from_slice(m);
        Ok(out)
    });
    let (_d, store) = open_store();
    let c = config("127.0.0.1:1");
    record_day(
        &*store,
        &c,
        &policy(
            "example.com",
            RecordForm::Rfc7489,
            &["mailto:dmarc@example.com"],
        ),
    )
    .await;
    let r = Reporter::new(store, Arc::new(Table(HashMap::new())), c, Some(sign));
    let built = r
        .build(Period::of(NOON), "example.com", NEXT_DAY)
        .await
        .expect("b")
        .expect("b");
    assert!(built.message.starts_with(b"DKIM-Signature:"));
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("report.eml");
    std::fs::write(&file, &built.message).expect("write");
    let b64 = mail::base64_lines(&public).replace("\r\n", "");
    let script = format!(
        r#"
import sys, dkim
def dns(name, timeout=5):
    assert name == b'rep._domainkey.receiver.example.', name
    return b'v=DKIM1; k=ed25519; p={b64}'
msg = open(sys.argv[1], 'rb').read()
ok = dkim.verify(msg, dnsfunc=dns)
tampered = msg.replace(b'H4sI', b'H4sJ', 1)
print(ok, dkim.verify(tampered, dnsfunc=dns))
"#
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .arg(&file)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "True False",
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
