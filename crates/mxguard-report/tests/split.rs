//! A log read by two threads (the file cut into parts, the later part of
//! each pair read speculatively and folded in) gives the report a single
//! pass gives, byte for byte: the cuts are put everywhere, on the test
//! logs (messages, connections and queue ids spanning every cut; the
//! same queue ids reused by the second copy) and on a log made to defeat
//! the speculation (a queue id reused while still in flight).

use mxguard_report::collect::{Collector, Options};
use mxguard_report::input::{Split, read_file};
use mxguard_report::report::Report;
use mxguard_report::text::{Layout, render};
use std::path::{Path, PathBuf};

fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"));
    dir.join("postfix-logs").is_dir().then_some(dir)
}

fn read(path: &Path, opts: &Options, split: Option<Split>) -> Report {
    let mut c = Collector::new(opts.clone());
    read_file(path, &mut c, split).unwrap();
    c.finish()
}

/// Everything a user can see of a report, and the line counters.
fn shown(r: &Report) -> String {
    let layout = Layout {
        smtpd_stats: true,
        ..Default::default()
    };
    format!(
        "{}\n{}\n{:?} lines={} malformed={} other={} out={} postfix={} long={} mxguard={} days={}",
        render(r, &layout),
        mxguard_report::json::render(r, None, None),
        r.totals,
        r.lines,
        r.malformed,
        r.other_programs,
        r.out_of_period,
        r.postfix_lines,
        r.too_long,
        r.mxguard_lines,
        r.day_changes,
    )
}

fn options() -> Vec<Options> {
    vec![
        Options::default(),
        Options {
            syslog_name: Some("postfix".into()),
            verbose_msg_detail: true,
            rej_add_from: true,
            ..Default::default()
        },
    ]
}

/// Reads `log` whole, then cut by every segment size, and compares.
fn same_at_every_cut(log: &[u8], segments: impl Iterator<Item = u64> + Clone) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    std::fs::write(&path, log).unwrap();
    for opts in options() {
        let whole = shown(&read(&path, &opts, None));
        for segment in segments.clone() {
            let split = Split {
                min_file: 0,
                segment,
            };
            let cut = shown(&read(&path, &opts, Some(split)));
            if cut != whole {
                let diff: Vec<_> = whole
                    .lines()
                    .zip(cut.lines())
                    .filter(|(a, b)| a != b)
                    .take(5)
                    .collect();
                panic!("segment {segment}, {opts:?}: the report differs: {diff:#?}");
            }
        }
    }
}

#[test]
fn test_logs_cut_anywhere_report_the_same() {
    let Some(testdata) = testdata() else {
        eprintln!("skipped: no testdata (set MXGUARD_TESTDATA; default ../shared/testdata)");
        return;
    };
    let mut log = Vec::new();
    for f in [
        "postfix-logs/pflogsumm-go/sample.log",
        "postfix-logs/pflogsumm-go/rfc3339.log",
        "postfix-logs/digineo-postfix-exporter/mail.log",
        "fail2ban-logs/postfix",
    ] {
        log.extend(std::fs::read(testdata.join(f)).unwrap());
        if !log.ends_with(b"\n") {
            log.push(b'\n');
        }
    }
    // A second copy: the same queue ids and pids again.
    let copy = log.clone();
    log.extend(&copy);
    let len = log.len() as u64;
    assert!(len > 10_000, "test logs too small: {len} bytes");
    let segments = [1, 2, 3, 57, 300, 1000, 4096, len / 3, len / 2, len];
    same_at_every_cut(&log, segments.iter().copied());
    // The same, every cut moved by one line.
    let mut shifted = b"Mar 22 07:59:59 mx postfix/anvil[1]: statistics\n".to_vec();
    shifted.extend(&log);
    same_at_every_cut(&shifted, [1, 2, 300, 4096].into_iter());
}

#[test]
fn queue_ids_and_pids_reused_across_a_cut_report_the_same() {
    // ID1 is received and sized, never removed, then received again: a
    // single pass keeps its first size and skips the second `from=`. A
    // later part that assumed ID1 new would count it twice. Pid 7's
    // connection spans cuts; ID2 is removed before it begins again.
    let lines = [
        "Mar 22 08:00:00 mx postfix/smtpd[7]: connect from a.example[192.0.2.1]",
        "Mar 22 08:00:01 mx postfix/smtpd[7]: ID1: client=a.example[192.0.2.1]",
        "Mar 22 08:00:02 mx postfix/qmgr[9]: ID1: from=<x@a.example>, size=100, nrcpt=1 (queue active)",
        "Mar 22 08:00:03 mx postfix/smtp[8]: ID1: to=<r@b.example>, relay=b.example[192.0.2.2]:25, delay=0.13, delays=0.01/0/0.1/0.02, dsn=4.0.0, status=deferred (try later)",
        "Mar 22 08:00:04 mx postfix/qmgr[9]: ID2: removed",
        "Mar 22 08:00:05 mx postfix/smtpd[7]: disconnect from a.example[192.0.2.1]",
        "Mar 23 08:00:06 mx postfix/smtpd[7]: connect from c.example[192.0.2.3]",
        "Mar 23 08:00:07 mx postfix/smtpd[7]: ID1: client=c.example[192.0.2.3]",
        "Mar 23 08:00:08 mx postfix/qmgr[9]: ID1: from=<y@c.example>, size=999, nrcpt=1 (queue active)",
        "Mar 23 08:00:09 mx postfix/smtp[8]: ID1: to=<r@b.example>, relay=b.example[192.0.2.2]:25, delay=0.7, delays=0.01/0/0.1/0.02, dsn=2.0.0, status=sent (250 ok)",
        "Mar 23 08:00:10 mx postfix/smtp[8]: ID1: to=<s@b.example>, relay=b.example[192.0.2.2]:25, delay=0.1, delays=0.01/0/0.1/0.02, dsn=4.0.0, status=deferred (try later)",
        "Mar 23 08:00:11 mx postfix/smtpd[7]: ID2: client=c.example[192.0.2.3]",
        "Mar 23 08:00:12 mx postfix/qmgr[9]: ID2: from=<z@c.example>, size=5, nrcpt=1 (queue active)",
        "Mar 23 08:00:13 mx postfix/smtp[8]: ID2: to=<t@d.example>, relay=d.example[192.0.2.4]:25, delay=0.33, delays=0.01/0/0.1/0.02, dsn=2.0.0, status=sent (250 ok)",
        "Mar 23 08:00:14 mx postfix/qmgr[9]: ID2: removed",
        "Mar 23 08:00:15 mx postfix/smtpd[7]: disconnect from c.example[192.0.2.3]",
        "Mar 23 08:00:16 mx postfix/qmgr[9]: ID1: removed",
        "Mar 23 08:00:17 mx postfix/qmgr[9]: ID3: from=<>, size=7, nrcpt=1 (queue active)",
        "Mar 23 08:00:18 mx postfix/smtp[8]: ID3: to=<x@a.example>, relay=a.example[192.0.2.1]:25, delay=0.02, delays=0.01/0/0.1/0.02, dsn=2.0.0, status=sent (250 ok)",
        "Mar 23 08:00:19 mx postfix/smtpd[7]: disconnect from c.example[192.0.2.3]",
    ];
    let log = lines.join("\n") + "\n";
    // A cut after every line: the first part ends at each line end in
    // turn (and the parts after it are cut as often).
    let ends: Vec<u64> = log
        .bytes()
        .enumerate()
        .filter(|(_, c)| *c == b'\n')
        .map(|(i, _)| i as u64)
        .collect();
    same_at_every_cut(log.as_bytes(), ends.into_iter());
}
