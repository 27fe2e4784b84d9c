//! dkimpy (Debian's python3-dkim) and `mxguard dkim keygen` for the
//! signing and sealing tests: keys, verification with the public keys
//! handed over by a `dnsfunc`, ARC signing of a first hop.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const PYTHON: &str = "/usr/bin/python3";

/// `mxguard dkim keygen`, returning the TXT record it prints (its strings
/// joined) and the key path.
pub fn keygen(dir: &Path, domain: &str, selector: &str, kind: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args([
            "dkim",
            "keygen",
            "--domain",
            domain,
            "--selector",
            selector,
            "--type",
            kind,
            "--out",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let block = text
        .split("\n\n")
        .find(|b| b.contains("_domainkey IN TXT"))
        .unwrap();
    block
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat()
}

/// dkimpy's verdict on each signature of `msg`: "pass"/"fail" per index.
pub fn verify_dkim(records: &[(String, String)], msg: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let recs = dir.path().join("records");
    std::fs::write(
        &recs,
        records
            .iter()
            .map(|(n, t)| format!("{n} {t}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let script = r#"
import sys, re, dkim
recs = {}
for line in open(sys.argv[1], encoding="ascii"):
    name, txt = line.rstrip("\n").split(" ", 1)
    recs[name + "."] = txt.encode()
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    return recs.get(name if name.endswith(".") else name + ".")
msg = sys.stdin.buffer.read()
n = len(re.findall(rb"(?im)^dkim-signature:", msg.split(b"\r\n\r\n", 1)[0]))
d = dkim.DKIM(msg)
out = []
for i in range(n):
    try:
        out.append("pass" if d.verify(idx=i, dnsfunc=dnsfunc) else "fail")
    except dkim.ValidationError as e:
        print(i, e, file=sys.stderr)
        out.append("fail")
print(" ".join(out))
"#;
    let mut child = Command::new(PYTHON)
        .args(["-c", script, recs.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A message from root's mbox as the MTA delivered it: the `From ` line
/// gone, mbox's `>From` quoting undone, CRLF line ends.
pub fn as_delivered(mbox_entry: &str) -> Vec<u8> {
    let text = mbox_entry
        .split_once('\n')
        .map_or(mbox_entry, |(first, rest)| {
            // The mbox separator, whole ("From sender date") or, when
            // the split on "\nFrom " ate its first word, the rest: not a
            // header field (a name without white space, then a colon).
            let is_field = first
                .split_once(':')
                .is_some_and(|(name, _)| !name.is_empty() && !name.contains([' ', '\t']));
            if first.starts_with("From ") || !is_field {
                rest
            } else {
                mbox_entry
            }
        });
    let mut out = String::new();
    for line in text.trim_end_matches('\n').split('\n') {
        out.push_str(
            line.strip_prefix('>')
                .filter(|l| l.starts_with("From "))
                .unwrap_or(line),
        );
        out.push_str("\r\n");
    }
    out.into_bytes()
}

pub fn present() -> bool {
    let ok = Path::new(PYTHON).exists()
        && Command::new(PYTHON)
            .args(["-c", "import dkim"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        println!("skipping: dkimpy (python3-dkim) is not installed");
    }
    ok
}

/// Runs a dkimpy script with `msg` on stdin; its stdout, trimmed.
fn python(script: &str, args: &[&str], msg: &[u8]) -> String {
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// dkimpy's `arc_verify` of `msg`: "cv comment", e.g. "pass ..."; "fail ..."
/// also when dkimpy stops at a seal that says `cv=fail`.
pub fn verify_arc(records: &[(String, String)], msg: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let recs = dir.path().join("records");
    std::fs::write(
        &recs,
        records
            .iter()
            .map(|(n, t)| format!("{n} {t}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let script = r#"
import sys, dkim
recs = {}
for line in open(sys.argv[1], encoding="ascii"):
    name, txt = line.rstrip("\n").split(" ", 1)
    recs[name + "."] = txt.encode()
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    return recs.get(name if name.endswith(".") else name + ".")
cv, results, comment = dkim.arc_verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc)
# A chain ending in a cv=fail seal: dkimpy gives no cv, only the comment.
print(cv.decode() if cv else "fail", comment)
"#;
    python(script, &[recs.to_str().unwrap()], msg)
}

/// `msg` with an ARC set dkimpy adds as `domain` (its Authentication-
/// Results of `srv_id` become the AAR), signing From, To, Subject, Date.
pub fn arc_sign(msg: &[u8], selector: &str, domain: &str, key: &Path, srv_id: &str) -> Vec<u8> {
    let script = r#"
import sys, dkim
sel, dom, key, srv = sys.argv[1:5]
msg = sys.stdin.buffer.read()
hdrs = dkim.arc_sign(msg, sel.encode(), dom.encode(), open(key, "rb").read(), srv.encode(),
                     include_headers=[b"from", b"to", b"subject", b"date"])
sys.stdout.buffer.write(b"".join(hdrs) + msg)
"#;
    let out = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args([selector, domain, key.to_str().unwrap(), srv_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(msg)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "dkimpy arc_sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh RSA key `dir/name.key` by dkimpy's `dknewkey`: (private key path, DNS value).
pub fn dknewkey(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let base = dir.join(name);
    let out = Command::new("dknewkey")
        .arg(&base)
        .current_dir(dir)
        .output()
        .expect("dknewkey (python3-dkim) is not installed: run ./scripts/peers.sh install");
    assert!(
        out.status.success(),
        "dknewkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dns =
        std::fs::read_to_string(dir.join(format!("{name}.dns"))).expect("dknewkey wrote NAME.dns");
    (dir.join(format!("{name}.key")), dns.trim().to_string())
}
