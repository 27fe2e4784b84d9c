//! DMARC aggregate reports end to end: a day of DMARC evaluations recorded
//! in the store, then `mxguard serve` starts and sends yesterday's reports
//! through real Postfix, checking the external destination's
//! `_report._dmarc` record in a real DNS server (dnsmasq). The reports
//! arrive in the `rua` mailbox with the RFC's Subject and gzip attachment,
//! their XML valid (RFC 7489 against its schema with xmllint; the DMARCbis
//! one in the RFC 9990 namespace) with the right counts; an unauthorised
//! destination gets nothing, and a second run never sends again.

mod common;

use common::dns::dnsmasq;
use common::postfix;
use mxguard_auth::config::DmarcReportConfig;
use mxguard_auth::report::period::Period;
use mxguard_auth::report::{
    Alignment, Discovery, Disposition, DkimAuth, DkimResult, Evaluation, Policy, PublishedPolicy,
    RecordForm, SpfAuth, SpfResult, SpfScope, record_evaluation,
};
use mxguard_store::EmbeddedStore;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn policy(domain: &str, form: RecordForm) -> PublishedPolicy {
    PublishedPolicy {
        domain: domain.into(),
        form,
        p: Policy::Reject,
        sp: Some(Policy::Quarantine),
        np: (form == RecordForm::DmarcBis).then_some(Policy::Reject),
        pct: (form == RecordForm::Rfc7489).then_some(100),
        testing: false,
        adkim: Alignment::Relaxed,
        aspf: Alignment::Relaxed,
        fo: None,
        // root@mx.test is external to these domains: it is authorised by a
        // record in dnsmasq; postmaster@localhost is not, and gets nothing.
        rua: vec![
            "mailto:root@mx.test".into(),
            "mailto:postmaster@localhost".into(),
            "https://reports.example/ingest".into(),
        ],
        discovery: if form == RecordForm::DmarcBis {
            Discovery::Treewalk
        } else {
            Discovery::Psl
        },
    }
}

fn evaluation(
    time: u64,
    ip: &str,
    p: &PublishedPolicy,
    pass: bool,
    disposition: Disposition,
) -> Evaluation {
    let ip: IpAddr = ip.parse().unwrap();
    let spf_domain = if pass {
        p.domain.clone()
    } else {
        "spoofer.example".into()
    };
    Evaluation {
        time,
        source_ip: ip,
        header_from: p.domain.clone(),
        envelope_from: spf_domain.clone(),
        envelope_to: Some("mx.test".into()),
        spf: vec![SpfAuth {
            domain: spf_domain,
            scope: SpfScope::Mfrom,
            result: if pass {
                SpfResult::Pass
            } else {
                SpfResult::Fail
            },
        }],
        dkim: if pass {
            vec![DkimAuth {
                domain: p.domain.clone(),
                selector: "sel1".into(),
                result: DkimResult::Pass,
            }]
        } else {
            vec![]
        },
        spf_aligned: pass,
        dkim_aligned: pass,
        policy: p.clone(),
        disposition,
        overrides: vec![],
    }
}

/// The attachment's file name and its XML, by Python's email and gzip
/// modules (independent of mxguard's MIME writer).
fn attachment(message: &str) -> (String, String) {
    let script = r#"
import sys, email, gzip
msg = email.message_from_bytes(sys.stdin.buffer.read())
parts = [p for p in msg.walk() if p.get_content_type() == 'application/gzip']
assert len(parts) == 1, [p.get_content_type() for p in msg.walk()]
print(parts[0].get_filename())
sys.stdout.write(gzip.decompress(parts[0].get_payload(decode=True)).decode())
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cannot extract the report: {}\n{message}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (name, xml) = text.split_once('\n').unwrap();
    (name.to_string(), xml.to_string())
}

fn xmllint_7489(xml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).unwrap();
    let xsd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mxguard-auth/tests/data/rfc7489-appendix-c.xsd"
    );
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", xsd])
        .arg(&file)
        .output()
        .expect("xmllint is not installed: run ./scripts/peers.sh install (libxml2-utils)");
    assert!(
        out.status.success(),
        "the report is not valid against RFC 7489's schema: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn counts(xml: &str) -> u64 {
    xml.split("<count>")
        .skip(1)
        .filter_map(|s| s.split_once("</count>")?.0.parse::<u64>().ok())
        .sum()
}

/// The delivered message containing `needle`; the serve log on failure.
fn report_with(needle: &str, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mbox = std::fs::read_to_string(postfix::MAILBOX).unwrap_or_default();
        // Each mbox message starts with its "From " line: drop it.
        if let Some(m) = mbox.split("\nFrom ").find(|m| m.contains(needle)) {
            return m.split_once('\n').map_or(m, |(_, rest)| rest).to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no mail containing {needle:?} was delivered; mxguard serve's log:\n{}\nmailbox:\n{mbox}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn reports_in_mailbox() -> usize {
    std::fs::read_to_string(postfix::MAILBOX)
        .unwrap_or_default()
        .matches("Subject: Report Domain: ")
        .count()
}

#[test]
fn a_day_of_evaluations_arrives_as_reports_through_postfix() {
    let dns = dnsmasq(
        "txt-record=example.com._report._dmarc.mx.test,\"v=DMARC1\"\ntxt-record=bis.example._report._dmarc.mx.test,\"v=DMARC1;\"\n",
    );
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let yesterday = Period::of(now).previous();

    // A day of test traffic: 40 messages for example.com (RFC 7489 record)
    // and 6 for bis.example (DMARCbis), spread over yesterday.
    let reporting = DmarcReportConfig {
        enabled: true,
        send_reports: true,
        ..Default::default()
    };
    let classic = policy("example.com", RecordForm::Rfc7489);
    let bis = policy("bis.example", RecordForm::DmarcBis);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(&data_dir).unwrap();
        let mut t = yesterday.begin() + 60;
        let mut record = |e: Evaluation| {
            t += 1800;
            let mut e = e;
            e.time = t.min(yesterday.end());
            e
        };
        let mut all = Vec::new();
        for _ in 0..25 {
            all.push(record(evaluation(
                0,
                "192.0.2.10",
                &classic,
                true,
                Disposition::Pass,
            )));
        }
        for _ in 0..10 {
            all.push(record(evaluation(
                0,
                "198.51.100.7",
                &classic,
                false,
                Disposition::Reject,
            )));
        }
        for _ in 0..5 {
            all.push(record(evaluation(
                0,
                "2001:db8::7",
                &classic,
                false,
                Disposition::Quarantine,
            )));
        }
        for _ in 0..6 {
            all.push(record(evaluation(
                0,
                "203.0.113.5",
                &bis,
                true,
                Disposition::Pass,
            )));
        }
        for e in &all {
            record_evaluation(&store, &reporting, e).await.unwrap();
        }
    });

    let _postfix = postfix::configure(None, None);
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nenabled = false\n[policy]\nlisten = \"127.0.0.1:{port}\"\nmynetworks = []\n\
         [store]\ndata_dir = \"{}\"\n[dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"2s\"\n\
         [dmarc_reporting]\nenabled = true\nsend_reports = true\norg_name = \"Receiver Test Org\"\n\
         domain = \"mx.receiver.example\"\nemail = \"dmarc-noreply@receiver.example\"\nrelay = \"127.0.0.1:25\"\n",
        data_dir.display(),
        dns.port
    );
    let daemon = postfix::daemon(&config, port);
    let first = report_with("Report Domain: example.com ", &daemon.log);
    let second = report_with("Report Domain: bis.example ", &daemon.log);
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    drop(daemon);

    for (message, domain, total) in [(&first, "example.com", 40), (&second, "bis.example", 6)] {
        let subject = format!(
            "Subject: Report Domain: {domain} Submitter: mx.receiver.example Report-ID: <{}.{domain}@mx.receiver.example>",
            yesterday.name()
        );
        assert!(message.contains(&subject), "{subject} missing:\n{message}");
        // Only the authorised destination, not the unauthorised one.
        assert!(message.contains("To: root@mx.test\n"), "{message}");
        assert!(!message.contains("postmaster@localhost"), "{message}");
        let (name, xml) = attachment(message);
        assert_eq!(
            name,
            format!(
                "mx.receiver.example!{domain}!{}!{}.xml.gz",
                yesterday.begin(),
                yesterday.end()
            )
        );
        assert_eq!(counts(&xml), total, "{xml}");
        if domain == "example.com" {
            xmllint_7489(&xml);
            assert_eq!(xml.matches("<record>").count(), 3);
            assert!(xml.contains("<source_ip>2001:db8:0:0:0:0:0:7</source_ip>"));
        } else {
            assert!(xml.contains("<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">"));
            assert!(xml.contains("<np>reject</np>") && !xml.contains("<pct>"));
        }
    }
    assert!(
        log.contains("destination dropped: mailto:postmaster@localhost")
            && log.contains("https://reports.example/ingest"),
        "the dropped destinations are logged:\n{log}"
    );
    assert_eq!(reports_in_mailbox(), 2);

    // Never twice: a restart of serve and an admin's run send nothing more.
    let cfg = data.path().join("mxguard.toml");
    std::fs::write(&cfg, &config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args([
            "-c",
            cfg.to_str().unwrap(),
            "dmarc",
            "report",
            "--period",
            &yesterday.name(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("already sent").count(), 2, "{stdout}");
    let daemon = postfix::daemon(&config, port);
    std::thread::sleep(Duration::from_secs(3));
    drop(daemon);
    assert_eq!(reports_in_mailbox(), 2, "a report was sent twice");
}

/// The admin command without a relay: `--dry-run` prints the report and
/// leaves the send state alone; sending refuses an unfinished day and a
/// config that has sending off, saying what to do.
#[test]
fn dmarc_report_command_dry_run_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let yesterday = Period::of(now).previous();
    let reporting = DmarcReportConfig {
        enabled: true,
        ..Default::default()
    };
    let p = policy("example.com", RecordForm::Rfc7489);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = EmbeddedStore::open(&data_dir).unwrap();
            for i in 0..4 {
                let e = evaluation(
                    yesterday.begin() + i * 60,
                    "192.0.2.10",
                    &p,
                    true,
                    Disposition::Pass,
                );
                record_evaluation(&store, &reporting, &e).await.unwrap();
            }
        });
    let cfg = dir.path().join("mxguard.toml");
    let write = |send: bool| {
        std::fs::write(
            &cfg,
            format!(
                "[store]\ndata_dir = \"{}\"\n[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = \"500ms\"\nattempts = 1\n\
                 [dmarc_reporting]\nenabled = true\nsend_reports = {send}\norg_name = \"Org\"\ndomain = \"mx.receiver.example\"\n\
                 email = \"dmarc@receiver.example\"\nrelay = \"127.0.0.1:9\"\n",
                data_dir.display()
            ),
        )
        .unwrap();
    };
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mxguard"))
            .args(["-c", cfg.to_str().unwrap(), "dmarc", "report"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    write(false);
    let (ok, out) = run(&["--dry-run", "--domain", "Example.COM"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Subject: Report Domain: example.com Submitter: mx.receiver.example"),
        "{out}"
    );
    assert!(out.contains("<count>4</count>"), "{out}");
    // root@mx.test cannot be authorised (no DNS answers): dropped, said why.
    assert!(
        out.contains("Dropped: https://reports.example/ingest"),
        "{out}"
    );
    let (ok, out) = run(&[]);
    assert!(!ok && out.contains("send_reports = true"), "{out}");
    write(true);
    let (ok, out) = run(&["--period", &Period::of(now).name()]);
    assert!(!ok && out.contains("is not over"), "{out}");
    let (ok, out) = run(&["--period", "2026-02-30"]);
    assert!(!ok && out.contains("YYYY-MM-DD"), "{out}");
    // A send that fails (nothing listens on the relay, DNS unanswered) is
    // left to be retried; the dry run did not mark anything.
    let (ok, out) = run(&[]);
    assert!(!ok && out.contains("will be retried"), "{out}");
}
