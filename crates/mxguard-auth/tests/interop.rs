//! mxguard's DKIM signatures and ARC seals checked by other implementations:
//! dkimpy (Debian's python3-dkim: `dkim.verify`, `dkim.arc_verify`) with the
//! public keys handed over by a `dnsfunc`, and OpenDKIM's
//! `opendkim-testmsg`, which asks real DNS: it runs in its own network and
//! mount namespace with dnsmasq on 127.0.0.1:53 serving the keys.
//!
//! A peer that is not installed makes its part print that it skips.
//! Each check also runs on a tampered copy, which must fail.

use mxguard_auth::config::{ArcConfig, DkimSigningConfig, DomainKeys, KeySpec};
use mxguard_auth::keygen::{self, Request};
use mxguard_auth::keys::{KeyKind, load};
use mxguard_auth::seal::{ArcChain, Sealer};
use mxguard_auth::sign::{DkimSigning, NewHeader};
use mxguard_core::Envelope;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const PYTHON: &str = "/usr/bin/python3";

const MESSAGE: &str = "From: Joe Sender <joe@example.com>\r\n\
To: Ann <ann@dest.example>\r\n\
Subject: Quarterly   figures,\r\n\tfolded subject\r\n\
Date: Mon, 07 Dec 2026 02:00:00 +0000\r\n\
Message-ID: <interop-1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello Ann,  \r\n\
\r\n\
trailing spaces and blank lines at the end.\t\r\n\
\r\n\
\r\n";

struct Keys {
    _dir: tempfile::TempDir,
    rsa: PathBuf,
    ed: PathBuf,
    /// name → TXT record
    records: Vec<(String, String)>,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let mut records = Vec::new();
    let mut paths = Vec::new();
    for (kind, selector) in [(KeyKind::Rsa, "rsa"), (KeyKind::Ed25519, "ed")] {
        let g = keygen::generate(&Request {
            domain: "example.com".into(),
            selector: selector.into(),
            kind,
            bits: 2048,
            out_dir: dir.path().to_path_buf(),
            force: false,
        })
        .unwrap();
        records.push((format!("{selector}._domainkey.example.com"), g.record));
        paths.push(g.path);
    }
    Keys {
        rsa: paths[0].clone(),
        ed: paths[1].clone(),
        records,
        _dir: dir,
    }
}

fn spec(selector: &str, path: &Path) -> KeySpec {
    KeySpec {
        selector: selector.into(),
        path: path.display().to_string(),
    }
}

fn with_headers(headers: &[NewHeader], raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {}\r\n", v.replace('\n', "\r\n")).as_bytes());
    }
    out.extend_from_slice(raw);
    out
}

fn authenticated() -> Envelope {
    Envelope {
        ip: Some("203.0.113.7".parse().unwrap()),
        user: Some("joe@example.com".into()),
        mail_from: Some("joe@example.com".into()),
        rcpts: vec!["ann@dest.example".into()],
        ..Envelope::default()
    }
}

fn signed_message(k: &Keys) -> (Vec<u8>, usize) {
    let headers = signatures(k);
    (with_headers(&headers, MESSAGE.as_bytes()), headers.len())
}

fn signatures(k: &Keys) -> Vec<NewHeader> {
    let mut c = DkimSigningConfig {
        enabled: true,
        ..Default::default()
    };
    c.domain.insert(
        "example.com".into(),
        DomainKeys {
            keys: vec![spec("rsa", &k.rsa), spec("ed", &k.ed)],
            ..Default::default()
        },
    );
    let signer = DkimSigning::new(&c, Arc::default()).unwrap();
    let headers = signer.sign(&authenticated(), MESSAGE.as_bytes()).unwrap();
    assert_eq!(headers.len(), 2, "one signature per key");
    assert!(headers[0].1.contains("a=rsa-sha256"), "{:?}", headers[0]);
    assert!(
        headers[1].1.contains("a=ed25519-sha256"),
        "{:?}",
        headers[1]
    );
    headers
}

fn tamper(msg: &[u8]) -> Vec<u8> {
    let s = String::from_utf8(msg.to_vec()).unwrap();
    s.replace("Hello Ann", "Hello Bob").into_bytes()
}

fn have(cmd: &str) -> bool {
    Path::new(cmd).exists()
}

/// A dkimpy run: `mode` is `dkim` (verify each signature) or `arc`.
fn dkimpy(mode: &str, records: &[(String, String)], msg: &[u8], sigs: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("v.py");
    std::fs::write(
        &script,
        r#"
import sys, dkim
mode, n = sys.argv[1], int(sys.argv[2])
recs = {}
for line in open(sys.argv[3], encoding="ascii"):
    name, txt = line.rstrip("\n").split(" ", 1)
    recs[name + "."] = txt.encode()
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return recs.get(name if name.endswith(".") else name + ".")
msg = sys.stdin.buffer.read()
def one(d, i):
    try:
        return "pass" if d.verify(idx=i, dnsfunc=dnsfunc) else "fail"
    except dkim.ValidationError as e:
        print(i, e, file=sys.stderr)
        return "fail"
if mode == "dkim":
    d = dkim.DKIM(msg)
    print(" ".join(one(d, i) for i in range(n)))
else:
    cv, results, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    print(cv.decode(), comment)
"#,
    )
    .unwrap();
    let recs = dir.path().join("records");
    std::fs::write(
        &recs,
        records
            .iter()
            .map(|(n, t)| format!("{n} {t}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let mut child = Command::new(PYTHON)
        .arg(&script)
        .arg(mode)
        .arg(sigs.to_string())
        .arg(&recs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn dkimpy_present() -> bool {
    have(PYTHON)
        && Command::new(PYTHON)
            .args(["-c", "import dkim"])
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn dkimpy_verifies_rsa_and_ed25519_signatures() {
    if !dkimpy_present() {
        println!("skipping: dkimpy (python3-dkim) is not installed");
        return;
    }
    let k = keys();
    let (msg, n) = signed_message(&k);
    assert_eq!(dkimpy("dkim", &k.records, &msg, n), "pass pass");
    assert_eq!(dkimpy("dkim", &k.records, &tamper(&msg), n), "fail fail");
    // A copy of an oversigned header added after signing breaks it.
    let mut added = b"Subject: injected\r\n".to_vec();
    added.extend_from_slice(&msg);
    assert_eq!(dkimpy("dkim", &k.records, &added, n), "fail fail");
}

#[test]
fn opendkim_testmsg_verifies_rsa_and_ed25519_signatures() {
    if !have("/usr/sbin/opendkim-testmsg") || !have("/usr/sbin/dnsmasq") {
        println!("skipping: opendkim-tools or dnsmasq is not installed");
        return;
    }
    if !nix_root() {
        println!("skipping: needs root for a private network namespace");
        return;
    }
    let k = keys();
    // Each signature on its own: opendkim-testmsg judges the message by
    // its signatures together.
    for (i, sig) in signatures(&k).into_iter().enumerate() {
        let one = with_headers(&[sig], MESSAGE.as_bytes());
        let (ok, out) = opendkim_verify(&k.records, &one);
        assert!(ok, "signature {i} refused by opendkim: {out}");
        let (ok, _) = opendkim_verify(&k.records, &tamper(&one));
        assert!(!ok, "signature {i}: a tampered body must fail");
    }
}

fn nix_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

/// Runs opendkim-testmsg on `msg` in a namespace whose resolver is dnsmasq
/// on 127.0.0.1:53 serving `records`. (verified, output)
fn opendkim_verify(records: &[(String, String)], msg: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut conf = String::from(
        "port=53\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nuser=root\n",
    );
    for (name, txt) in records {
        let parts: Vec<String> = keygen::split_txt(txt)
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        conf.push_str(&format!("txt-record={name},{}\n", parts.join(",")));
    }
    conf.push_str("address=/#/\n");
    std::fs::write(dir.path().join("dnsmasq.conf"), conf).unwrap();
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    std::fs::write(dir.path().join("msg.eml"), msg).unwrap();
    let d = dir.path().display();
    let script = format!(
        "set -e; ip link set lo up; mount --bind {d}/resolv.conf /etc/resolv.conf; \
         dnsmasq -C {d}/dnsmasq.conf --pid-file={d}/dnsmasq.pid --log-facility={d}/dnsmasq.log </dev/null >/dev/null 2>&1; \
         sleep 0.2; set +e; opendkim-testmsg < {d}/msg.eml; rc=$?; kill $(cat {d}/dnsmasq.pid); exit $rc"
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
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
}

fn arc_config(k: &Keys, sign_inbound: bool) -> ArcConfig {
    let mut c = ArcConfig {
        enabled: true,
        sign_inbound,
        ..Default::default()
    };
    c.domain.insert(
        "example.com".into(),
        DomainKeys {
            keys: vec![spec("rsa", &k.rsa)],
            ..Default::default()
        },
    );
    c
}

#[test]
fn dkimpy_accepts_arc_seals_over_two_hops() {
    if !dkimpy_present() {
        println!("skipping: dkimpy (python3-dkim) is not installed");
        return;
    }
    let k = keys();
    assert!(load(&k.ed).is_ok());
    let sealer = Sealer::new(
        &arc_config(&k, true),
        &DkimSigningConfig::default(),
        Arc::default(),
    )
    .unwrap();
    // Hop 1: mail from outside relayed to a list at example.com.
    let inbound = Envelope {
        ip: Some("198.51.100.20".parse().unwrap()),
        mail_from: Some("ann@dest.example".into()),
        rcpts: vec!["list@example.com".into()],
        ..Envelope::default()
    };
    let set1 = sealer
        .seal(
            &inbound,
            MESSAGE.as_bytes(),
            || "mx.example.com; spf=pass smtp.mailfrom=ann@dest.example".into(),
            ArcChain::Unverified,
        )
        .unwrap();
    assert!(set1[0].1.contains(" i=1;") && set1[0].1.contains("cv=none"));
    let hop1 = with_headers(&set1, MESSAGE.as_bytes());
    let verdict = dkimpy("arc", &k.records, &hop1, 0);
    assert!(verdict.starts_with("pass"), "hop 1: {verdict}");
    assert!(
        dkimpy("arc", &k.records, &tamper(&hop1), 0).starts_with("fail"),
        "a tampered body must fail"
    );
    // An unverified chain is not sealed over.
    assert!(
        sealer
            .seal(&inbound, &hop1, || "x; none".into(), ArcChain::Unverified)
            .is_err()
    );
    // Hop 2: the chain was verified as passing.
    let set2 = sealer
        .seal(
            &inbound,
            &hop1,
            || "mx2.example.com; arc=pass".into(),
            ArcChain::Pass,
        )
        .unwrap();
    assert!(set2[0].1.contains(" i=2;") && set2[0].1.contains("cv=pass"));
    let hop2 = with_headers(&set2, &hop1);
    let verdict = dkimpy("arc", &k.records, &hop2, 0);
    assert!(verdict.starts_with("pass"), "hop 2: {verdict}");
}
