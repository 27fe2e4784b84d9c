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
