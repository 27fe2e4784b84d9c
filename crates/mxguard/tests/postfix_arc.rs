//! ARC sealing through real Postfix and real DNS (dnsmasq on loopback):
//! mail relayed to mx.test through the milter with `[arc]` on leaves with
//! an ARC set dkimpy's `arc_verify` accepts. A message arriving with a
//! valid chain (a first hop dkimpy sealed as list.test) gets `i=2 cv=pass`;
//! one whose chain was broken on the way gets `cv=fail` and dkimpy fails
//! it: the new seal's `cv=` comes from the milter's own verification of the
//! chain (the ARC check's typed verdict). Serialised with the other
//! Postfix tests by their lock (`common::postfix::configure`).

mod common;

use common::dkimpy::{arc_sign, as_delivered, dknewkey, keygen, present, verify_arc};
use common::dns::{dnsmasq, txt_record};
use common::postfix::{self, message_with, swaks_data};

const MESSAGE: &str = "From: Ann <ann@origin.test>\r\nTo: list@list.test\r\n\
Subject: SUBJECT\r\nDate: Mon, 7 Dec 2026 06:00:00 +0000\r\nMessage-ID: <MSGID@origin.test>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nA message a list forwards.\r\n";

fn message(subject: &str) -> String {
    MESSAGE
        .replace("SUBJECT", subject)
        .replace("MSGID", &subject.replace(' ', "-"))
}

/// The ARC-Seal values of a delivered message, topmost first.
fn seals(delivered: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(delivered);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push_str(line);
            }
            continue;
        }
        out.push(line.to_string());
    }
    out.into_iter()
        .filter_map(|h| {
            h.strip_prefix("ARC-Seal:")
                .map(|v| v.split_whitespace().collect())
        })
        .collect()
}

#[test]
fn relayed_mail_is_arc_sealed_and_dkimpy_accepts_the_chain() {
    if !present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = keygen(dir.path(), "mx.test", "arc", "rsa");
    let (list_key, list_dns) = dknewkey(dir.path(), "list");
    let records = vec![
        ("arc._domainkey.mx.test".to_string(), ours),
        ("list._domainkey.list.test".to_string(), list_dns),
    ];
    let dns = dnsmasq(
        &records
            .iter()
            .map(|(n, v)| txt_record(n, v))
            .collect::<String>(),
    );
    let port = postfix::free_port();
    // Mail from outside (the loopback client is not "local" here) relayed
    // to mx.test: sealed as the recipient domain.
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[milter.headers]\nauthserv_id = \"mx.test\"\n\
         [policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [dns]\nnameservers = [\"127.0.0.1:{}\"]\ntimeout = \"2s\"\nattempts = 2\n\
         [auth]\nhost_name = \"mx.test\"\n\
         [arc]\nenabled = true\nsign_inbound = true\nsign_local = false\n\
         [arc.domain.\"mx.test\"]\nkeys = [{{ selector = \"arc\", path = \"{d}/mx.test.arc.key\" }}]\n",
        dns.port,
        d = dir.path().display()
    );
    let daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(None, Some(port));
    let send = |name: &str, data: &[u8], subject: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let (ok, t) = swaks_data("ann@origin.test", "root@mx.test", &path);
        assert!(ok, "{t}");
        as_delivered(&message_with(subject))
    };

    // No chain: i=1, cv=none.
    let delivered = send(
        "plain.eml",
        message("arc hop one").as_bytes(),
        "arc hop one",
    );
    let head = String::from_utf8_lossy(&delivered).to_string();
    let s = seals(&delivered);
    assert_eq!(s.len(), 1, "one ARC set expected:\n{head}");
    assert!(s[0].contains("i=1;") && s[0].contains("cv=none;") && s[0].contains("d=mx.test;"));
    let verdict = verify_arc(&records, &delivered);
    assert!(verdict.starts_with("pass"), "{verdict}\n{head}");

    // A valid first hop by list.test: i=2, cv=pass, the chain passes.
    let with_ar = format!(
        "Authentication-Results: list.test; spf=pass smtp.mailfrom=ann@origin.test\r\n{}",
        message("arc hop two")
    );
    let hop1 = arc_sign(
        with_ar.as_bytes(),
        "list",
        "list.test",
        &list_key,
        "list.test",
    );
    assert!(verify_arc(&records, &hop1).starts_with("pass"));
    let delivered = send("hop1.eml", &hop1, "arc hop two");
    let head = String::from_utf8_lossy(&delivered).to_string();
    let s = seals(&delivered);
    assert_eq!(s.len(), 2, "two ARC sets expected:\n{head}");
    assert!(
        s[0].contains("i=2;") && s[0].contains("cv=pass;"),
        "{:?}\n{}",
        s,
        std::fs::read_to_string(&daemon.log).unwrap_or_default()
    );
    let verdict = verify_arc(&records, &delivered);
    assert!(verdict.starts_with("pass"), "{verdict}\n{head}");

    // The first hop's chain broken on the way (the body changed after
    // list.test sealed it): our seal says cv=fail, and dkimpy fails the
    // chain.
    let with_ar = format!(
        "Authentication-Results: list.test; spf=pass smtp.mailfrom=ann@origin.test\r\n{}",
        message("arc hop broken")
    );
    let hop1 = arc_sign(
        with_ar.as_bytes(),
        "list",
        "list.test",
        &list_key,
        "list.test",
    );
    let broken = String::from_utf8_lossy(&hop1)
        .replace("a list forwards", "a list f0rwards")
        .into_bytes();
    let delivered = send("broken.eml", &broken, "arc hop broken");
    let head = String::from_utf8_lossy(&delivered).to_string();
    let s = seals(&delivered);
    assert_eq!(s.len(), 2, "two ARC sets expected:\n{head}");
    assert!(s[0].contains("i=2;") && s[0].contains("cv=fail;"), "{s:?}");
    let verdict = verify_arc(&records, &delivered);
    assert!(verdict.starts_with("fail"), "{verdict}\n{head}");
}
