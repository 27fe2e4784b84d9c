//! `mxguard report` against real peers: the HTML rendered by headless
//! Chromium (a screenshot kept under target/report-artifacts/), and the
//! report mailed through real Postfix, arriving with its text and HTML
//! parts; Postfix's own `maillog_file` log is the input, and its Grand
//! Totals equal pflogsumm's on it.

mod common;

use common::{mxguard, text};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/report-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium's screenshot of `url` at 1000×2400.
fn screenshot(url: &str, png: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("run chromium: install it with ./scripts/peers.sh install (package chromium)");
    assert!(
        out.status.success() && png.is_file(),
        "chromium screenshot failed: {}",
        text(&out.stderr)
    );
}

fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium --dump-dom: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn html_report_renders_in_chromium_with_its_charts() {
    let Some(testdata) = common::testdata() else {
        return;
    };
    let logs = [
        testdata.join("postfix-logs/pflogsumm-go/sample.log"),
        testdata.join("fail2ban-logs/postfix"),
    ];
    let mut args = vec!["report", "--format", "html", "--smtpd-stats"];
    let names: Vec<String> = logs.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = mxguard(&args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = text(&out.stdout);
    assert!(
        !html.contains("src=\"http") && !html.contains("<script"),
        "the page must be self-contained"
    );
    let dir = artifacts();
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());
    // Chromium parsed the SVG charts into elements: one bar per hour and
    // column, one per reject reason.
    let dom = dump_dom(&url);
    assert!(
        dom.contains("id=\"chart-hourly\"") && dom.contains("id=\"chart-rejects\""),
        "charts missing from the DOM"
    );
    let bars = dom.matches("class=\"bar\"").count();
    assert!(bars >= 24 * 5 + 5, "only {bars} bars in the rendered DOM");
    // The screenshot: compared with an empty page of the same size, the
    // report draws a great deal.
    let png = dir.join("report.png");
    screenshot(&url, &png);
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let blank_png = dir.join("blank.png");
    screenshot(&format!("file://{}", blank.display()), &blank_png);
    let (report_size, blank_size) = (
        std::fs::metadata(&png).unwrap().len(),
        std::fs::metadata(&blank_png).unwrap().len(),
    );
    assert!(
        report_size > 10 * blank_size && report_size > 50_000,
        "the screenshot looks empty: {report_size} bytes vs {blank_size} for a blank page"
    );
    eprintln!("screenshot: {} ({report_size} bytes)", png.display());
}

/// Quoted-printable decoding (soft breaks and =XX), for reading the mail.
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn report_mailed_through_postfix_arrives_with_text_and_html() {
    let _postfix = common::postfix::configure(None, None);
    // Traffic for Postfix to log (maillog_file = /var/log/postfix.log).
    let (ok, transcript) = common::postfix::swaks(
        "someone@example.com",
        "root@localhost",
        &["Subject: traffic for the report"],
        "hello",
    );
    assert!(ok, "swaks: {transcript}");
    let mailbox = Path::new(common::postfix::MAILBOX);
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = std::fs::read_to_string(mailbox).unwrap_or_default();
            if m.contains(needle) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not arrive in {}",
                mailbox.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("traffic for the report");
    // Postfix's own log format reads without a malformed line, and holds
    // the message just sent.
    let log = "/var/log/postfix.log";
    let out = mxguard(&["report", log, "--format", "json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["input"]["malformed"], 0,
        "lines of {log} not understood: {}",
        v["input"]
    );
    assert!(
        v["grand_totals"]["received"].as_u64().unwrap() >= 1,
        "{}",
        v["grand_totals"]
    );
    assert!(
        v["grand_totals"]["delivered"].as_u64().unwrap() >= 1,
        "{}",
        v["grand_totals"]
    );
    // A real log not in the test data: the Grand Totals equal pflogsumm's.
    let grand_totals = |report: &str| -> String {
        let start = report.find("Grand Totals").expect("Grand Totals");
        let end = report[start..]
            .find("recipient hosts/domains")
            .expect("end of Grand Totals")
            + start;
        report[start..end].to_string()
    };
    let theirs = Command::new("pflogsumm")
        .arg(log)
        .output()
        .expect("run pflogsumm: install it with ./scripts/peers.sh install");
    let ours = mxguard(&["report", "--syslog-name", "postfix", log], None);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    assert_eq!(
        grand_totals(&text(&ours.stdout)),
        grand_totals(&text(&theirs.stdout))
    );
    let subject = format!("Postfix log summary {}", std::process::id());
    let out = mxguard(
        &[
            "report",
            log,
            "--mail-to",
            "root@localhost",
            "--subject",
            &subject,
            "--smtp",
            "127.0.0.1:25",
            "--mail-from",
            "reports@mx.test",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "mailing failed: {}",
        text(&out.stderr)
    );
    let mbox = wait_for(&subject);
    let message = &mbox[mbox.find(&format!("Subject: {subject}")).unwrap()..];
    let message = match message.find("\nFrom ") {
        Some(end) => &message[..end],
        None => message,
    };
    assert!(
        message.contains("Content-Type: multipart/alternative;"),
        "{message}"
    );
    let boundary = message
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let parts: Vec<&str> = message.split(&format!("--{boundary}")).collect();
    let text_part = parts
        .iter()
        .find(|p| p.contains("Content-Type: text/plain"))
        .expect("text part");
    let html_part = parts
        .iter()
        .find(|p| p.contains("Content-Type: text/html"))
        .expect("HTML part");
    let text_part = unqp(text_part);
    let html_part = unqp(html_part);
    assert!(
        text_part.contains("Grand Totals") && text_part.contains("received"),
        "{text_part}"
    );
    assert!(
        html_part.contains("<svg") && html_part.contains("id=\"gt-received\""),
        "{html_part}"
    );
    assert!(
        message.trim_end().ends_with(&format!("--{boundary}--")),
        "unterminated multipart"
    );
}

#[test]
fn serve_mails_the_scheduled_report_once_per_period_across_restarts() {
    let _postfix = common::postfix::configure(None, None);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mail.log");
    std::fs::write(
        &log,
        "Dec  7 08:02:01 mx postfix/pickup[1]: AAA1: uid=0 from=<root>\n\
         Dec  7 08:02:03 mx postfix/qmgr[2]: AAA1: from=<root@mx.test>, size=500, nrcpt=1 (queue active)\n",
    )
    .unwrap();
    let state = dir.path().join("report-state");
    let subject = format!("scheduled report {}", std::process::id());
    let config = |port: u16| {
        format!(
            "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
             [report]\nenabled = true\nat = \"00:00\"\nperiod = \"today\"\nfiles = [\"{}\"]\n\
             mail_to = [\"root@localhost\"]\nmail_from = \"reports@mx.test\"\nsubject = \"{subject}\"\nstate_file = \"{}\"\n",
            log.display(),
            state.display()
        )
    };
    let count = || {
        std::fs::read_to_string(common::postfix::MAILBOX)
            .unwrap_or_default()
            .matches(&format!("Subject: {subject}"))
            .count()
    };
    {
        let port = common::postfix::free_port();
        let _serve = common::postfix::daemon(&config(port), port);
        let deadline = Instant::now() + Duration::from_secs(60);
        while count() == 0 || !state.exists() {
            assert!(
                Instant::now() < deadline,
                "the scheduled report did not arrive (or its state was not written)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let today = mxguard_report::period::now();
    assert_eq!(
        std::fs::read_to_string(&state).unwrap().trim(),
        format!("{:04}-{:02}-{:02}", today.year, today.month, today.day)
    );
    // Restarted the same day: the period is not sent again.
    {
        let port = common::postfix::free_port();
        let _serve = common::postfix::daemon(&config(port), port);
        std::thread::sleep(Duration::from_secs(5));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(), 1, "the report was mailed again after a restart");
}

/// The mxguard section from what a real `mxguard serve` logged: mail
/// through real Postfix to the milter and the policy server (policy
/// greylisting, a DKIM-signed ham, GTUBE rejected, score greylisting
/// deferred then passed on the retry) and an sshd jail banning an
/// address; then `mxguard report` on serve's log, as serve wrote it and
/// as syslog would have it, counts each of them.
#[test]
fn mxguard_section_counts_what_serve_logged() {
    use common::postfix::{self, swaks};
    let dir = tempfile::tempdir().unwrap();
    let key = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args([
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "ed",
        ])
        .args(["--type", "ed25519", "--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(key.status.success(), "{}", text(&key.stderr));
    let auth_log = dir.path().join("auth.log");
    std::fs::write(&auth_log, "").unwrap();
    let (milter, policy) = (postfix::free_port(), postfix::free_port());
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{milter}\"\n\
         [policy]\nlisten = \"127.0.0.1:{policy}\"\nmynetworks = []\n\
         [greylist]\ndelay = 2\nsender_pools = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [actions]\nreject = 15\nadd_header = 6\ngreylist = 4\n[header_anomalies]\nenabled = false\n\
         [[rules]]\nname = \"T_GREY\"\ntarget = \"subject\"\npattern = \"greylist-me\"\nscore = 5.0\n\
         [dkim_signing]\nenabled = true\nsign_local = false\nsign_networks = [\"127.0.0.0/8\"]\n\
         [dkim_signing.domain.\"example.com\"]\nkeys = [{{ selector = \"ed\", path = \"{d}/example.com.ed.key\" }}]\n\
         [ban]\nenabled = true\nignoreself = false\n\
         [ban.jails.sshd]\nlogpath = [\"{a}\"]\nbantime = \"10m\"\n",
        d = dir.path().display(),
        a = auth_log.display()
    );
    let serve = postfix::daemon(&config, policy);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", milter)).is_err() {
        assert!(Instant::now() < deadline, "the milter did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _postfix = postfix::configure(Some(policy), Some(milter));
    let send = |subject: &str, body: &str| {
        swaks(
            "joe@example.com",
            "root@localhost",
            &[
                "From: Joe <joe@example.com>",
                &format!("Subject: {subject}"),
            ],
            body,
        )
    };

    // A new triplet: deferred by the policy server, passed after the delay.
    let (ok, t) = send("hello", "ham body");
    assert!(!ok && t.contains("Greylisted"), "{t}");
    std::thread::sleep(Duration::from_secs(3));
    let (ok, t) = send("hello", "ham body");
    assert!(ok, "{t}");
    // GTUBE: rejected by the milter.
    let (ok, t) = send("gtube", common::GTUBE);
    assert!(!ok && t.contains("554 5.7.1"), "{t}");
    // Greylist band: 451 first, delivered once the delay has passed.
    let (ok, t) = send("greylist-me", "grey body");
    assert!(!ok && t.contains("451 4.7.1"), "{t}");
    std::thread::sleep(Duration::from_secs(3));
    let (ok, t) = send("greylist-me", "grey body");
    assert!(ok, "{t}");
    // Three sshd failures ban 192.0.2.7.
    let failures: String = (0..3)
        .map(|i| format!("Dec  7 09:00:0{i} mx sshd[7{i}]: Failed password for invalid user u{i} from 192.0.2.7 port 4000{i} ssh2\n"))
        .collect();
    std::fs::write(&auth_log, failures).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&serve.log)
        .unwrap_or_default()
        .contains(" banned jail=")
    {
        assert!(Instant::now() < deadline, "no ban logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    // What arrived, read independently of mxguard's log: the messages
    // signed with mxguard's key.
    let ham = postfix::message_with("ham body");
    let grey = postfix::message_with("grey body");
    let signed = [&ham, &grey]
        .iter()
        .filter(|m| m.contains("DKIM-Signature:") && m.contains("s=ed"))
        .count() as u64;
    assert!(signed >= 1, "the ham is signed: {ham}");

    let log = std::fs::read_to_string(&serve.log).unwrap();
    // The same lines as syslog or the journal would write them.
    let syslog: String = log
        .lines()
        .map(|l| format!("Dec  7 12:00:00 mx mxguard[4242]: {l}\n"))
        .collect();
    let syslog_file = dir.path().join("mail.log");
    std::fs::write(&syslog_file, syslog).unwrap();
    for input in [serve.log.as_path(), syslog_file.as_path()] {
        let out = mxguard(
            &["report", "--format", "json", input.to_str().unwrap()],
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let m = &v["mxguard"];
        let count = |list: &serde_json::Value, name: &str| {
            list.as_array()
                .and_then(|a| a.iter().find(|e| e["name"] == name))
                .map_or(0, |e| e["count"].as_u64().unwrap())
        };
        assert_eq!(m["scanned"], 4, "{m:#}\n{log}");
        assert_eq!(count(&m["actions"], "reject"), 1, "{m:#}");
        assert_eq!(count(&m["actions"], "greylist"), 1, "{m:#}");
        assert_eq!(count(&m["top_symbols"], "GTUBE"), 1, "{m:#}");
        assert_eq!(count(&m["top_symbols"], "T_GREY"), 2, "{m:#}");
        assert_eq!(m["score_greylist"]["deferred"], 1, "{m:#}");
        assert_eq!(m["score_greylist"]["passed_after_retry"], 1, "{m:#}");
        assert_eq!(m["policy_greylist"]["deferred"], 1, "{m:#}");
        assert_eq!(m["policy_greylist"]["passed_after_retry"], 1, "{m:#}");
        assert_eq!(m["dkim_signed"], signed, "{m:#}");
        assert_eq!(m["bans"], 1, "{m:#}");
        assert_eq!(count(&m["bans_by_jail"], "sshd"), 1, "{m:#}");
    }
    let out = mxguard(&["report", serve.log.to_str().unwrap()], None);
    let report = text(&out.stdout);
    assert!(
        report.contains("\nmxguard\n-------\n") && report.contains("messages scanned"),
        "{report}"
    );
}
