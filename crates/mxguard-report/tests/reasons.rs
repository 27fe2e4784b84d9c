//! The byte-scan reject rules give what pflogsumm's regular expressions
//! give (`Rules::reject_by_patterns`, the patterns as written), on every
//! reject line of the test data, on cut and spliced variants of them, and
//! on generated ones.

use mxguard_report::reason::Rules;
use std::path::{Path, PathBuf};

fn reject_lines() -> Vec<String> {
    let dir = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata"));
    let mut out = Vec::new();
    let mut files = vec![
        dir.join("fail2ban-logs/postfix"),
        dir.join("postfix-logs/pflogsumm-go/sample.log"),
        dir.join("postfix-logs/digineo-postfix-exporter/mail.log"),
    ];
    if let Ok(rd) = std::fs::read_dir(dir.join("postfix-logs/grok-patterns-tests")) {
        files.extend(rd.filter_map(|e| Some(e.ok()?.path())));
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for l in text.lines() {
            if l.contains("reject") || l.contains("discard: ") || l.contains("hold: ") {
                let l = l
                    .trim()
                    .trim_start_matches("data:")
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'');
                out.push(format!("postfix/smtpd[1]: {l}"));
            }
        }
    }
    out
}

#[test]
fn byte_scans_equal_the_patterns() {
    let rules = Rules::new();
    let mut lines = reject_lines();
    if lines.is_empty() {
        eprintln!("skipped the test data part: no testdata (set MXGUARD_TESTDATA)");
    }
    // Cut every line at many places, and splice halves of different lines.
    let base = lines.clone();
    for (i, l) in base.iter().enumerate() {
        let cuts: Vec<usize> = (0..l.len())
            .step_by(7)
            .filter(|&c| l.is_char_boundary(c))
            .collect();
        for c in cuts {
            lines.push(l[..c].to_string());
            let other = &base[(i * 7 + 3) % base.len()];
            let oc = (c * 3 / 2).min(other.len());
            if other.is_char_boundary(oc) {
                lines.push(format!("{}{}", &l[..c], &other[oc..]));
            }
        }
    }
    // Generated: fragments the rules look for, in random order.
    let parts = [
        "NOQUEUE: reject: ",
        "RCPT",
        "MAIL",
        "DATA",
        "CONNECT",
        "VRFY",
        " from ",
        "x[1.2.3.4]",
        ": ",
        "550 ",
        "5.7.1 ",
        "<a@b>",
        ">:",
        "; ",
        ", ",
        "to=<",
        "from=<",
        ">",
        "Recipient address rejected: ",
        "Sender address rejected: ",
        "User unknown ",
        "client ",
        "Client host ",
        "[1.2.3.4] ",
        " blocked using x",
        "Protocol error;",
        "Improper use of SMTP command pipelining;",
        "Message size exceeds fixed limit;",
        "é",
        " ",
        ":",
        ";",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20_000 {
        let mut l = String::from("postfix/smtpd[1]: ");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = 3 + (seed % 12) as usize;
        let mut s = seed;
        for _ in 0..n {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            l.push_str(parts[(s >> 33) as usize % parts.len()]);
        }
        lines.push(l);
    }
    let mut differences = 0;
    for l in &lines {
        for (verbose, add_from) in [(false, false), (false, true), (true, false)] {
            let fast = rules.reject(l, verbose, add_from);
            let slow = rules.reject_by_patterns(l, verbose, add_from);
            if fast != slow {
                differences += 1;
                if differences <= 20 {
                    eprintln!(
                        "DIFFERENCE on {l:?} (verbose {verbose}, add_from {add_from}):\n  scans    {fast:?}\n  patterns {slow:?}"
                    );
                }
            }
        }
    }
    eprintln!("{} lines compared", lines.len());
    assert_eq!(differences, 0, "{differences} differences (first 20 above)");
}
