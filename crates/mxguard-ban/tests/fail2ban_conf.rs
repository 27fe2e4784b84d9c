//! fail2ban's own filter .conf files (Debian's fail2ban package, installed
//! by scripts/peers.sh), loaded as they are and run over the annotated
//! logs: the lines we match must be exactly those `fail2ban-regex` (the
//! real peer) matches with the same file. Filters using regex features
//! the `regex` crate lacks (sshd.conf: look-ahead, conditionals) must be
//! refused with an error naming the expression.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use mxguard_ban::filter::{conf, custom::Custom};
use mxguard_ban::tester;

const FILTERS: &str = "/etc/fail2ban/filter.d";

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

fn peer() -> bool {
    let ok = Path::new(FILTERS).is_dir() && Path::new("/usr/bin/fail2ban-regex").exists();
    if !ok {
        eprintln!("SKIP: fail2ban is not installed (run scripts/peers.sh install)");
    }
    ok
}

fn ours(conf_file: &str, log: &Path) -> BTreeSet<String> {
    let loaded = conf::load(&Path::new(FILTERS).join(conf_file), &[]).unwrap();
    let mut f = Custom::new(conf_file, &loaded.definition).unwrap();
    let mut set = BTreeSet::new();
    let input = std::io::BufReader::new(std::fs::File::open(log).unwrap());
    tester::run(&mut f, input, |_, line, _| {
        set.insert(line.raw.trim_end().to_string());
    })
    .unwrap();
    set
}

fn theirs(conf_file: &str, log: &Path) -> BTreeSet<String> {
    let out = Command::new("fail2ban-regex")
        .args(["--print-all-matched", "--print-no-missed"])
        .arg(log)
        .arg(Path::new(FILTERS).join(conf_file))
        .output()
        .expect("run fail2ban-regex");
    assert!(
        out.status.success(),
        "fail2ban-regex: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The block after "|- Matched line(s):", up to its closing "`-".
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("|- Matched line(s):"))
        .skip(1)
        .take_while(|l| !l.starts_with('`'))
        .filter_map(|l| l.strip_prefix("|  "))
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn same_as_fail2ban(conf_file: &str, log: &str) {
    if !peer() {
        return;
    }
    let Some(log) = testdata(&format!("fail2ban-logs/{log}")) else {
        return;
    };
    let (a, b) = (ours(conf_file, &log), theirs(conf_file, &log));
    assert!(b.len() >= 20, "fail2ban-regex matched only {}", b.len());
    let only_ours: Vec<_> = a.difference(&b).collect();
    let only_theirs: Vec<_> = b.difference(&a).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{conf_file}: only mxguard {only_ours:#?}\nonly fail2ban {only_theirs:#?}"
    );
    println!("{conf_file}: {} lines matched by both", a.len());
}

#[test]
fn postfix_conf_matches_what_fail2ban_matches() {
    same_as_fail2ban("postfix.conf", "postfix");
}

#[test]
fn dovecot_conf_matches_what_fail2ban_matches() {
    same_as_fail2ban("dovecot.conf", "dovecot");
}

#[test]
fn unsupported_syntax_is_named() {
    if !peer() {
        return;
    }
    let loaded = conf::load(&Path::new(FILTERS).join("sshd.conf"), &[]).unwrap();
    let err = Custom::new("sshd.conf", &loaded.definition).err().unwrap();
    assert!(
        err.0.contains("failregex[") && err.0.contains("look-ahead"),
        "{err}"
    );
}
