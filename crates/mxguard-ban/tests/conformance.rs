//! Conformance with fail2ban's annotated logs (MXGUARD_TESTDATA/
//! fail2ban-logs): every `# failJSON` line of the sshd, sshd-journal,
//! postfix and dovecot files, under every filter mode its section lists,
//! must agree on match / no match and on the host, for at least 98% of
//! the annotations of each file. Every disagreement is printed.
//!
//! Sections: `# filterOptions: [{}, {"mode": "aggressive"}]` starts one;
//! a filter per mode reads the lines of the sections that list its mode,
//! in file order (so multi-line state flows as in fail2ban's own tests).
//! `constraint`s of the forms `opts.get('mode') ==|!= '…'` and
//! `name ==|!= '…'` are evaluated; others are skipped and counted.

use std::path::PathBuf;

use mxguard_ban::filter;
use mxguard_ban::line;
use serde_json::Value;

fn testdata(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    let p = base.join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is absent (set MXGUARD_TESTDATA)", p.display());
        None
    }
}

struct Entry {
    number: usize,
    text: String,
    /// Index of the section (its modes in `sections`).
    section: usize,
    annotation: Option<Value>,
}

/// Modes of each section (`None` = the filter's default) and the lines.
fn read(text: &str) -> (Vec<Vec<Option<String>>>, Vec<Entry>) {
    let mut sections: Vec<Vec<Option<String>>> = vec![vec![None]];
    let mut entries = Vec::new();
    let mut pending: Option<Value> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim_start();
            if let Some(json) = comment.strip_prefix("failJSON:") {
                pending = Some(
                    serde_json::from_str(json.trim())
                        .unwrap_or_else(|e| panic!("line {}: bad failJSON {json}: {e}", i + 1)),
                );
            } else if let Some(json) = comment.strip_prefix("filterOptions:") {
                let v: Value = serde_json::from_str(json.trim()).expect("filterOptions JSON");
                let list = match v {
                    Value::Array(a) => a,
                    one => vec![one],
                };
                let modes = list
                    .iter()
                    .map(|o| o.get("mode").and_then(Value::as_str).map(str::to_string))
                    .collect();
                sections.push(modes);
            }
            continue;
        }
        if raw.trim().is_empty() {
            continue;
        }
        entries.push(Entry {
            number: i + 1,
            text: raw.to_string(),
            section: sections.len() - 1,
            annotation: pending.take(),
        });
    }
    (sections, entries)
}

/// `None` when the constraint is not one we can evaluate.
fn constraint_holds(c: &str, filter_name: &str, mode: Option<&str>) -> Option<bool> {
    let (lhs, op, rhs) = if let Some((l, r)) = c.split_once("!=") {
        (l.trim(), "!=", r.trim())
    } else if let Some((l, r)) = c.split_once("==") {
        (l.trim(), "==", r.trim())
    } else {
        return None;
    };
    let rhs = rhs.trim_matches(['\'', '"']);
    let value = match lhs {
        "opts.get('mode')" => mode,
        "name" => Some(filter_name),
        _ => return None,
    };
    let eq = value == Some(rhs);
    Some(if op == "==" { eq } else { !eq })
}

struct Outcome {
    total: usize,
    agree: usize,
    skipped: usize,
    time_checked: usize,
    time_disagree: usize,
}

fn run_file(file: &str, filter_name: &str) -> Option<Outcome> {
    let path = testdata(&format!("fail2ban-logs/{file}"))?;
    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
    let (sections, entries) = read(&text);
    let mut modes: Vec<Option<String>> = Vec::new();
    for s in &sections {
        for m in s {
            if !modes.contains(m) {
                modes.push(m.clone());
            }
        }
    }
    let mut out = Outcome {
        total: 0,
        agree: 0,
        skipped: 0,
        time_checked: 0,
        time_disagree: 0,
    };
    for mode in &modes {
        let spec = match mode {
            Some(m) => format!("{filter_name}:{m}"),
            None => filter_name.to_string(),
        };
        let mut f = filter::builtin(&spec).unwrap_or_else(|e| panic!("{e}"));
        for e in &entries {
            if !sections[e.section].contains(mode) {
                continue;
            }
            let parsed = line::parse(&e.text);
            let got = f.process(&parsed);
            let Some(a) = &e.annotation else { continue };
            if let Some(c) = a.get("constraint").and_then(Value::as_str) {
                match constraint_holds(c, filter_name, mode.as_deref()) {
                    Some(true) => {}
                    Some(false) => continue,
                    None => {
                        out.skipped += 1;
                        continue;
                    }
                }
            }
            let want = a.get("match").and_then(Value::as_bool).unwrap_or(false);
            let want_host = a.get("host").and_then(Value::as_str);
            out.total += 1;
            let ok = match (&got, want) {
                (None, false) => true,
                (Some(_), false) => false,
                (None, true) => false,
                (Some(g), true) => want_host.is_none_or(|h| g.host.text == h),
            };
            if ok {
                out.agree += 1;
            } else {
                println!(
                    "DISAGREE {file}:{} [{spec}] want match={want} host={want_host:?}, got {:?}\n    {}",
                    e.number,
                    got.as_ref().map(|g| g.host.text.as_str()),
                    e.text
                );
            }
            // The time, where the line has no zone to convert.
            if let (Some(g), Some(t), Some(want_t)) =
                (&got, parsed.time, a.get("time").and_then(Value::as_str))
                && t.offset_minutes.is_none()
            {
                let _ = g;
                out.time_checked += 1;
                let fields: Vec<u32> = want_t
                    .split(['-', 'T', ':'])
                    .filter_map(|p| p.parse().ok())
                    .collect();
                let same = fields.len() == 6
                    && t.year.is_none_or(|y| y as u32 == fields[0])
                    && [t.month, t.day, t.hour, t.minute, t.second].map(u32::from) == fields[1..6];
                if !same {
                    out.time_disagree += 1;
                    println!("TIME {file}:{} want {want_t}, got {t}", e.number);
                }
            }
        }
    }
    println!(
        "{file}: {}/{} annotations agree ({:.1}%), {} skipped (constraint), time {}/{} agree",
        out.agree,
        out.total,
        100.0 * out.agree as f64 / out.total.max(1) as f64,
        out.skipped,
        out.time_checked - out.time_disagree,
        out.time_checked
    );
    Some(out)
}

fn check(file: &str, filter_name: &str) {
    let Some(o) = run_file(file, filter_name) else {
        return;
    };
    assert!(o.total > 30, "{file}: only {} annotations read", o.total);
    let rate = o.agree as f64 / o.total as f64;
    assert!(
        rate >= 0.98,
        "{file}: {}/{} agree, below 98%",
        o.agree,
        o.total
    );
    assert_eq!(o.time_disagree, 0, "{file}: time stamps read wrong");
}

#[test]
fn sshd() {
    check("sshd", "sshd");
}

#[test]
fn sshd_journal() {
    check("sshd-journal", "sshd");
}

#[test]
fn postfix() {
    check("postfix", "postfix");
}

#[test]
fn dovecot() {
    check("dovecot", "dovecot");
}

/// Every built-in filter in every mode reads every file of fail2ban's test
/// logs (wrong charsets, odd time stamps, multi-line cases in generic/)
/// and the loghub OpenSSH log without panicking, and sshd finds failures
/// in the loghub log (real sshd output).
#[test]
fn every_filter_survives_every_log() {
    let Some(dir) = testdata("fail2ban-logs") else {
        return;
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in [dir.clone(), dir.join("generic")] {
        for e in std::fs::read_dir(&sub).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                files.push(p);
            }
        }
    }
    let loghub = testdata("loghub-openssh/OpenSSH_2k.log");
    files.extend(loghub.clone());
    for (name, modes) in filter::BUILTIN {
        for mode in *modes {
            let mut f = filter::builtin(&format!("{name}:{mode}")).unwrap();
            for p in &files {
                let bytes = std::fs::read(p).unwrap();
                for raw in bytes.split(|&b| b == b'\n') {
                    let text = String::from_utf8_lossy(raw);
                    let _ = f.process(&line::parse(&text));
                }
            }
        }
    }
    if let Some(loghub) = loghub {
        let mut f = filter::builtin("sshd").unwrap();
        let text = std::fs::read_to_string(loghub).unwrap();
        let hits = text
            .lines()
            .filter(|l| f.process(&line::parse(l)).is_some())
            .count();
        assert!(
            hits > 500,
            "sshd found only {hits} failures in OpenSSH_2k.log"
        );
    }
}
