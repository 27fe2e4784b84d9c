//! Email authentication end to end: real Postfix with the milter, real DNS
//! (dnsmasq on loopback serving the SPF, DKIM and DMARC records), a real
//! signer (dkimpy). Mail failing SPF from a `p=reject` domain is refused at
//! SMTP; mail dkimpy signed is delivered with Authentication-Results
//! saying dkim=pass and dmarc=pass. Serialised with the other Postfix
//! tests by their lock (`common::postfix::configure`).

mod common;

use common::dkimpy::dknewkey;
use common::dns::{dnsmasq, txt_record};
use common::postfix::{self, message_with, swaks_data};
use std::path::Path;
use std::process::{Command, Stdio};

/// Signs `message` with dkimpy's `dkimsign`.
fn dkimpy_sign(message: &[u8], selector: &str, domain: &str, key: &Path) -> Vec<u8> {
    let mut child = Command::new("dkimsign")
        .args([selector, domain])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dkimsign (python3-dkim)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimsign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn spf_dkim_dmarc_through_postfix_and_real_dns() {
    let dir = tempfile::tempdir().unwrap();
    let (key, key_dns) = dknewkey(dir.path(), "sel");
    let records = format!(
        "{}{}{}{}",
        // Only 192.0.2.1 may send for strict.test; mail from loopback fails.
        txt_record("strict.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt_record("_dmarc.strict.test", "v=DMARC1; p=reject"),
        txt_record("sel._domainkey.signed.test", &key_dns),
        txt_record("_dmarc.signed.test", "v=DMARC1; p=reject; adkim=s"),
    );
    let dns = dnsmasq(&records);
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[milter.headers]\nauthserv_id = \"mx.test\"\n\
         [policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"2s\"\nattempts = 2\n\
         [auth]\nhost_name = \"mx.test\"\n[dmarc.actions]\nreject = \"reject\"\nquarantine = \"add_header\"\n",
        dns.port
    );
    let daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(None, Some(port));

    // SPF fails for strict.test from 127.0.0.1, DMARC says reject: 554 at
    // the end of DATA, nothing delivered.
    let forged = dir.path().join("forged.eml");
    std::fs::write(
        &forged,
        "From: ceo@strict.test\r\nTo: root@localhost\r\nSubject: wire money\r\n\
         Message-ID: <forged@strict.test>\r\nDate: Mon, 7 Dec 2026 03:00:00 +0000\r\n\r\nforged body\r\n",
    )
    .unwrap();
    let (ok, t) = swaks_data("ceo@strict.test", "root@localhost", &forged);
    assert!(!ok, "{t}");
    assert!(
        t.contains("554 5.7.1") && t.contains("DMARC"),
        "rejected by DMARC at SMTP:\n{t}"
    );

    // Signed by dkimpy for signed.test, sent with an unrelated envelope
    // sender (no SPF): DKIM passes and aligns, DMARC passes.
    let message = b"From: alice@signed.test\r\nTo: root@localhost\r\nSubject: signed hello\r\n\
        Message-ID: <signed@signed.test>\r\nDate: Mon, 7 Dec 2026 03:00:00 +0000\r\n\r\nsigned body\r\n";
    let signed = dkimpy_sign(message, "sel", "signed.test", &key);
    let signed_path = dir.path().join("signed.eml");
    std::fs::write(&signed_path, &signed).unwrap();
    let (ok, t) = swaks_data("bounce@lists.other.test", "root@localhost", &signed_path);
    assert!(
        ok,
        "{t}\n{}",
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );
    let m = message_with("signed body");
    assert!(m.contains("Authentication-Results: mx.test;"), "{m}");
    assert!(m.contains("dkim=pass header.d=signed.test"), "{m}");
    assert!(m.contains("header.s=sel"), "{m}");
    assert!(
        m.contains("dmarc=pass (policy=reject) header.from=signed.test"),
        "{m}"
    );
    assert!(
        m.contains("spf=none smtp.mailfrom=bounce@lists.other.test"),
        "{m}"
    );
}
