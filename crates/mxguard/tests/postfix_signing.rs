//! DKIM signing through real Postfix: keys made by `mxguard dkim keygen`,
//! mail from a client in `[dkim_signing] sign_networks` relayed by Postfix
//! through the milter, delivered, and the delivered message's signatures
//! (RSA and Ed25519) verified by dkimpy against the records keygen printed.
//!
//! And signing by SASL login: a Postfix submission service that
//! authenticates with Cyrus SASL hands the milter `{auth_authen}`; an
//! authenticated user's mail is signed for the login's domain, the same
//! mail from an unauthenticated remote client (XCLIENT) is not, nor is mail
//! whose login is of another domain (`allow_username_mismatch = false`).

mod common;

use common::dkimpy::{as_delivered, keygen, present as dkimpy_present, verify_dkim as dkimpy};
use common::postfix::{self, message_with, swaks, swaks_with};
use std::path::Path;

#[test]
fn outbound_mail_leaves_with_signatures_dkimpy_verifies() {
    if !dkimpy_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "example.com", "rsa", "rsa");
    let ed = keygen(dir.path(), "example.com", "ed", "ed25519");
    let records = vec![
        ("rsa._domainkey.example.com".to_string(), rsa),
        ("ed._domainkey.example.com".to_string(), ed),
    ];
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [dkim_signing]\nenabled = true\nsign_local = false\nsign_networks = [\"127.0.0.0/8\"]\n\
         [dkim_signing.domain.\"example.com\"]\nkeys = [{{ selector = \"rsa\", path = \"{d}/example.com.rsa.key\" }}, \
         {{ selector = \"ed\", path = \"{d}/example.com.ed.key\" }}]\n",
        d = dir.path().display()
    );
    let _daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(None, Some(port));

    // Header From and envelope sender in example.com: signed twice.
    let (ok, t) = swaks(
        "joe@example.com",
        "root@localhost",
        &["From: Joe <joe@example.com>", "Subject: signed outbound 1"],
        "From the start of a line, a body\nthat mbox quotes.\n",
    );
    assert!(ok, "{t}");
    let delivered = as_delivered(&message_with("signed outbound 1"));
    let head = String::from_utf8_lossy(&delivered);
    assert!(head.contains("DKIM-Signature: v=1; a=rsa-sha256"), "{head}");
    assert!(head.contains("a=ed25519-sha256"), "{head}");
    assert_eq!(dkimpy(&records, &delivered), "pass pass", "{head}");
    // The same message changed after delivery fails: the check can fail.
    let changed = String::from_utf8_lossy(&delivered)
        .replace("a body", "a b0dy")
        .into_bytes();
    assert_eq!(dkimpy(&records, &changed), "fail fail");

    // A header From of another organisation than the envelope sender
    // (allow_hdrfrom_mismatch = false): delivered unsigned.
    let (ok, t) = swaks(
        "joe@example.com",
        "root@localhost",
        &[
            "From: Someone <someone@elsewhere.example>",
            "Subject: unsigned outbound 2",
        ],
        "body",
    );
    assert!(ok, "{t}");
    let delivered = message_with("unsigned outbound 2");
    assert!(!delivered.contains("DKIM-Signature"), "{delivered}");
}

#[test]
fn sasl_authenticated_mail_is_signed_and_unauthenticated_is_not() {
    if !dkimpy_present() {
        return;
    }
    if !Path::new("/usr/sbin/saslpasswd2").exists() {
        println!("skipping: saslpasswd2 (sasl2-bin) is not installed; ./scripts/peers.sh install");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "example.com", "rsa", "rsa");
    let records = vec![("rsa._domainkey.example.com".to_string(), rsa)];
    let port = postfix::free_port();
    // rspamd's defaults otherwise: sign_authenticated, sign_local,
    // allow_username_mismatch = false. No sign_networks.
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [dkim_signing]\nenabled = true\nsign_authenticated = true\nsign_local = true\n\
         [dkim_signing.domain.\"example.com\"]\nkeys = [{{ selector = \"rsa\", path = \"{d}/example.com.rsa.key\" }}]\n",
        d = dir.path().display()
    );
    let _daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(None, Some(port));
    let submission = 2587;
    let _sasl = postfix::sasl_service(
        submission,
        &[
            ("joe@example.com", "joe-secret"),
            ("eve@other.example", "eve-secret"),
        ],
    );
    let server = format!("127.0.0.1:{submission}");
    let as_user = |user: &'static str, password: &'static str| {
        vec![
            "--server".to_string(),
            server.clone(),
            "--auth".into(),
            "PLAIN".into(),
            "--auth-user".into(),
            user.into(),
            "--auth-password".into(),
            password.into(),
        ]
    };
    let send = |extra: &[String], subject: &str| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (ok, t) = swaks_with(
            &extra,
            "joe@example.com",
            "root@localhost",
            &[
                "From: Joe <joe@example.com>",
                &format!("Subject: {subject}"),
            ],
            "Sent by an authenticated user.\n",
        );
        assert!(ok, "{t}");
        t
    };

    // Authenticated as joe@example.com: signed for example.com.
    let t = send(&as_user("joe@example.com", "joe-secret"), "sasl signed 1");
    assert!(t.contains("235 "), "the client did not authenticate: {t}");
    let delivered = as_delivered(&message_with("sasl signed 1"));
    let head = String::from_utf8_lossy(&delivered);
    assert!(head.contains("d=example.com"), "{head}");
    assert_eq!(dkimpy(&records, &delivered), "pass", "{head}");

    // The same mail from an unauthenticated remote client: not signed.
    let remote = [
        "--server".to_string(),
        server.clone(),
        "--xclient-addr".into(),
        "203.0.113.5".into(),
    ];
    let t = send(&remote, "sasl unsigned 2");
    assert!(!t.contains("235 "), "{t}");
    let delivered = message_with("sasl unsigned 2");
    assert!(
        delivered.contains("203.0.113.5"),
        "XCLIENT was not applied: {delivered}"
    );
    assert!(!delivered.contains("DKIM-Signature"), "{delivered}");

    // Authenticated, but the login's domain is not the From's: not signed.
    let t = send(
        &as_user("eve@other.example", "eve-secret"),
        "sasl mismatch 3",
    );
    assert!(t.contains("235 "), "{t}");
    let delivered = message_with("sasl mismatch 3");
    assert!(!delivered.contains("DKIM-Signature"), "{delivered}");
}
