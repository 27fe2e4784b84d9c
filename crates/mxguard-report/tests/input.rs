//! Reading logs as they are found on servers: gzip-compressed and rotated
//! files, syslog timestamps across a year end, RFC 3339 stamps, journal
//! JSON, malformed and overlong lines (counted and skipped, never fatal).

use mxguard_report::collect::{Collector, Options};
use mxguard_report::date::{Stamp, days_from_civil};
use mxguard_report::input::{BUFFER, read_paths};
use std::io::Write;
use std::path::{Path, PathBuf};

fn sample() -> Option<String> {
    let dir = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"));
    match std::fs::read_to_string(dir.join("postfix-logs/pflogsumm-go/sample.log")) {
        Ok(s) => Some(s),
        Err(_) => {
            eprintln!("skipped: no testdata (set MXGUARD_TESTDATA; default ../shared/testdata)");
            None
        }
    }
}

fn report_of(paths: &[PathBuf], opts: Options) -> mxguard_report::Report {
    let mut c = Collector::new(opts);
    read_paths(paths, &mut c).unwrap();
    c.finish()
}

fn gzip(path: &Path, data: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = flate2::write::GzEncoder::new(f, flate2::Compression::default());
    z.write_all(data).unwrap();
    z.finish().unwrap();
}

#[test]
fn gzip_and_rotated_files_read_in_the_order_written() {
    let Some(log) = sample() else { return };
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.log");
    std::fs::write(&whole, &log).unwrap();
    let expected = report_of(&[whole], Options::default());
    assert_eq!(
        (expected.totals.received, expected.totals.delivered),
        (4, 5)
    );
    // Split in the middle of a message: the sizes logged in the older file
    // must be known when the newer one's deliveries are read.
    let lines: Vec<&str> = log.lines().collect();
    let (old, new) = lines.split_at(11);
    let rotated = dir.path().join("mail.log.1.gz");
    gzip(&rotated, (old.join("\n") + "\n").as_bytes());
    let current = dir.path().join("mail.log");
    std::fs::write(&current, new.join("\n")).unwrap(); // no final line end
    // Given newest first, as a shell glob sorts them.
    let got = report_of(&[current, rotated], Options::default());
    assert_eq!(got.totals, expected.totals);
    assert_eq!(got.malformed, 0);
}

#[test]
fn syslog_years_across_new_year_and_rfc3339() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    std::fs::write(
        &path,
        "Dec 31 23:59:58 mx postfix/pickup[1]: AAA: uid=0 from=<root>\n\
         Jan  1 00:00:01 mx postfix/pickup[1]: BBB: uid=0 from=<root>\n\
         2027-01-01T00:00:02.123456+01:00 mx postfix/pickup[1]: CCC: uid=0 from=<root>\n",
    )
    .unwrap();
    // The file was last written on 1 January 2027 (local time noon).
    let jan1 = (days_from_civil(2027, 1, 1) * 86_400 + 12 * 3600) as u64;
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(jan1))
        .unwrap();
    drop(f);
    let r = report_of(&[path], Options::default());
    let days: Vec<(u32, u64)> = r.per_day.iter().map(|(d, c)| (*d, c[0])).collect();
    assert_eq!(days, vec![(20261231, 1), (20270101, 2)]);
    assert_eq!(r.first.map(|s| s.year), Some(2026));
    assert_eq!(
        r.last,
        Some(Stamp {
            year: 2027,
            month: 1,
            day: 1,
            hour: 0,
            min: 0,
            sec: 2
        })
    );
}

#[test]
fn malformed_and_overlong_lines_are_counted_and_skipped() {
    let Some(log) = sample() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut dirty = Vec::new();
    for (i, line) in log.lines().enumerate() {
        dirty.extend_from_slice(line.as_bytes());
        dirty.push(b'\n');
        match i % 7 {
            0 => dirty.extend_from_slice(b"not a log line\n"),
            1 => dirty.extend_from_slice(b"\xff\xfe\x00garbage\x01 postfix/smtpd[1]: \n"),
            2 => dirty.extend_from_slice(b"Mar 22 08:00:01 host\n"),
            3 => {
                dirty.extend_from_slice(b"Mar 22 08:00:01 host postfix/qmgr[1]: X: from=<");
                dirty.extend(std::iter::repeat_n(b'a', BUFFER + 10));
                dirty.extend_from_slice(b">, size=1\n");
            }
            _ => {}
        }
    }
    let clean_path = dir.path().join("clean.log");
    std::fs::write(&clean_path, &log).unwrap();
    let dirty_path = dir.path().join("dirty.log");
    std::fs::write(&dirty_path, &dirty).unwrap();
    let clean = report_of(&[clean_path], Options::default());
    let got = report_of(&[dirty_path], Options::default());
    assert_eq!(got.totals, clean.totals);
    assert!(got.malformed >= 12, "malformed {}", got.malformed);
    let overlong = log.lines().enumerate().filter(|(i, _)| i % 7 == 3).count() as u64;
    assert_eq!(got.too_long, overlong);
}

#[test]
fn journal_json_reads_like_the_syslog_file() {
    let Some(log) = sample() else { return };
    let dir = tempfile::tempdir().unwrap();
    // journalctl -o json: one object per line; MESSAGE, SYSLOG_IDENTIFIER,
    // _PID, __REALTIME_TIMESTAMP (µs), _HOSTNAME.
    let mut journal = String::new();
    for (i, line) in log.lines().enumerate() {
        let rest = &line[16..];
        let (host, rest) = rest.split_once(' ').unwrap();
        let (tag, msg) = rest.split_once(": ").unwrap();
        let (ident, pid) = tag.trim_end_matches(']').split_once('[').unwrap();
        let micros = 1_711_094_401_000_000u64 + i as u64 * 1_000_000;
        journal.push_str(
            &serde_json::json!({"__REALTIME_TIMESTAMP": micros.to_string(), "_HOSTNAME": host,
                "SYSLOG_IDENTIFIER": ident, "_PID": pid, "MESSAGE": msg, "_SYSTEMD_UNIT": "postfix@-.service"})
            .to_string(),
        );
        journal.push('\n');
    }
    let path = dir.path().join("journal.json");
    std::fs::write(&path, journal).unwrap();
    let clean_path = dir.path().join("clean.log");
    std::fs::write(&clean_path, &log).unwrap();
    let want = report_of(&[clean_path], Options::default());
    let got = report_of(&[path], Options::default());
    assert_eq!(got.totals, want.totals);
    assert_eq!(got.malformed, 0);
}

#[test]
fn period_and_instances() {
    let Some(log) = sample() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    let mut text = log.clone();
    text.push_str(
        "Mar 22 09:30:00 mailhost postfix-secondary/pickup[9]: SEC1: uid=0 from=<root>\n",
    );
    std::fs::write(&path, text).unwrap();
    let year = mxguard_report::input::reference_of(&path).year;
    let at = |h| Stamp {
        year,
        month: 3,
        day: 22,
        hour: h,
        min: 0,
        sec: 0,
    };
    let eight = report_of(
        std::slice::from_ref(&path),
        Options {
            since: Some(at(8)),
            until: Some(at(9)),
            ..Default::default()
        },
    );
    assert_eq!(eight.totals.received, 3);
    assert!(eight.out_of_period > 0);
    let all = report_of(std::slice::from_ref(&path), Options::default());
    assert_eq!(
        all.totals.received, 5,
        "postfix-secondary counts by default"
    );
    let main_only = report_of(
        &[path],
        Options {
            syslog_name: Some("postfix".into()),
            ..Default::default()
        },
    );
    assert_eq!(main_only.totals.received, 4);
    assert_eq!(main_only.other_programs, 1);
}

#[test]
fn hostile_bytes_never_panic() {
    // A fixed pseudo-random stream of log-like fragments.
    let parts: [&[u8]; 12] = [
        b"Mar 22 08:00:01 h postfix/smtpd[1]: ",
        b"NOQUEUE: reject: RCPT from ",
        b"x[1.2.3.4]: ",
        b"to=<",
        b"from=<",
        b">, size=",
        b"status=deferred (",
        b"relay=",
        b", delay=",
        b"\xff",
        b": ",
        b"\n",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut data = Vec::new();
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        data.extend_from_slice(parts[(seed % parts.len() as u64) as usize]);
    }
    let mut c = Collector::new(Options {
        verbose_msg_detail: seed.is_multiple_of(2),
        ..Default::default()
    });
    mxguard_report::input::read_lines(
        &data[..],
        &mut c,
        Stamp {
            year: 2026,
            month: 12,
            day: 7,
            ..Default::default()
        },
    )
    .unwrap();
    let r = c.finish();
    assert!(r.lines > 100);
    let _ = mxguard_report::text::render(&r, &Default::default());
    let _ = mxguard_report::html::render(&r, &Default::default(), "t");
    let _ = mxguard_report::json::render(&r, None, None);
}

#[test]
fn a_domain_deferred_before_its_first_delivery_counts_once() {
    let mut c = Collector::new(Options::default());
    let reference = Stamp {
        year: 2026,
        month: 12,
        day: 7,
        ..Default::default()
    };
    for l in [
        "Mar 22 08:04:01 h postfix/smtp[1]: AAA: to=<a@x.example>, relay=none, delay=30, status=deferred (connect to x: timed out)",
        "Mar 22 08:05:01 h postfix/smtp[1]: AAA: to=<a@x.example>, relay=x[1.2.3.4]:25, delay=31, status=sent (250 OK)",
        "Mar 22 08:05:02 h postfix/smtp[1]: BBB: to=<b@x.example>, relay=x[1.2.3.4]:25, delay=1, status=sent (250 OK)",
    ] {
        c.line(l.as_bytes(), reference);
    }
    let r = c.finish();
    assert_eq!(
        (
            r.totals.recipient_hosts_domains,
            r.totals.recipients,
            r.totals.delivered
        ),
        (1, 2, 2)
    );
}

/// mxguard's own lines, as serve writes them (text or JSON), under
/// syslog's tag and in journal JSON, count in its section (and in no Postfix table); the
/// period applies to them; another program's line that merely contains
/// the words does not count.
#[test]
fn mxguard_lines_from_its_log_syslog_and_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let verdict = r#"INFO mxguard_scan::service: scan: verdict queue_id="4ABC" action="reject" score=1000.0 symbols=GTUBE greylist=- dkim=-"#;
    let plain = dir.path().join("serve.log");
    std::fs::write(
        &plain,
        format!(
            "2026-12-07T12:00:01.5Z  {verdict}\n\
             2026-12-06T12:00:01Z  {verdict}\n\
             2026-12-07T12:00:02Z  INFO mxguard::serve: milter listening\n"
        ),
    )
    .unwrap();
    let syslog = dir.path().join("mail.log");
    std::fs::write(
        &syslog,
        format!(
            "2026-12-07T12:00:03+00:00 mx mxguard[7]: 2026-12-07T12:00:03Z  {verdict}\n\
             2026-12-07T12:00:04+00:00 mx sshd[8]: Invalid user scan: verdict action=\"reject\"\n\
             2026-12-07T12:00:05+00:00 mx postfix/smtpd[9]: NOQUEUE: scan: verdict action=\"reject\"\n"
        ),
    )
    .unwrap();
    let journal = dir.path().join("journal.json");
    let record = serde_json::json!({
        "__REALTIME_TIMESTAMP": "1796644800000000",
        "SYSLOG_IDENTIFIER": "mxguard",
        "_PID": "7",
        "_HOSTNAME": "mx",
        "MESSAGE": format!("2026-12-07T12:00:06Z  {verdict}"),
    });
    std::fs::write(&journal, format!("{record}\n")).unwrap();
    // serve's own log with --log-format json.
    let json_log = dir.path().join("serve.json");
    std::fs::write(
        &json_log,
        "{\"timestamp\":\"2026-12-07T12:00:07Z\",\"level\":\"INFO\",\"message\":\"scan: verdict\",\"queue_id\":\"\\\"4ABD\\\"\",\"action\":\"\\\"reject\\\"\",\"score\":1000.0,\"symbols\":\"GTUBE\",\"greylist\":\"-\",\"dkim\":\"-\",\"target\":\"mxguard_scan::service\"}\n\
         {\"timestamp\":\"2026-12-07T12:00:08Z\",\"level\":\"INFO\",\"message\":\"milter listening\",\"target\":\"mxguard::serve\"}\n",
    )
    .unwrap();
    let since = Stamp {
        year: 2026,
        month: 12,
        day: 7,
        ..Default::default()
    };
    let r = report_of(
        &[plain, syslog, journal, json_log],
        Options {
            since: Some(since),
            ..Default::default()
        },
    );
    assert_eq!(r.mxguard.scanned, 4, "{:?}", r.mxguard);
    assert_eq!(r.mxguard.actions.get("reject"), Some(&4));
    assert_eq!(r.mxguard.symbols.get("GTUBE"), Some(&4));
    assert_eq!(r.mxguard_lines, 4);
    assert_eq!(r.out_of_period, 1, "the line of Dec 6");
    assert_eq!(r.malformed, 0);
    assert_eq!(r.other_programs, 3, "serve's other lines, sshd's line");
    assert_eq!(r.postfix_lines, 1);
    assert_eq!(r.totals.rejected, 0);
}
