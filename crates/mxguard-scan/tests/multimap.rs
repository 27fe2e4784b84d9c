//! Multimap lists end to end through the pipeline: every list type, the
//! early SMTP stages, and map files that change under a running pipeline.

use mxguard_core::config::load_str;
use mxguard_core::{Action, Envelope, SmtpStage};
use mxguard_scan::Pipeline;
use std::path::Path;

fn pipeline(dir: &Path, lists: &str) -> Pipeline {
    let text = format!("[scan]\nmap_check_interval = 0\n{lists}");
    let config =
        load_str(&text, "test.toml", &mxguard_scan::sections()).unwrap_or_else(|e| panic!("{e:?}"));
    let (p, warnings) = Pipeline::from_config(config).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(warnings.is_empty(), "{warnings:?} in {}", dir.display());
    p
}

fn list(name: &str, kind: &str, map: &Path, extra: &str) -> String {
    format!(
        "[[multimap]]\nname = \"{name}\"\ntype = \"{kind}\"\nmap = \"{}\"\n{extra}\n",
        map.display()
    )
}

const MSG: &[u8] = b"From: Boss <boss@corp.example>\r\nTo: a@x.example, b@lists.partner.example\r\nX-Campaign: spring-sale\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@corp.example>\r\nSubject: hello\r\n\r\nbody\r\n";

#[test]
fn every_list_type_gives_its_symbol() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let ip = w("ip.map", "198.51.100.0/24\n");
    let from = w("from.map", "corp.example\n");
    let hfrom = w("hfrom.map", "boss@corp.example\n");
    let rcpt = w("rcpt.map", "partner.example\n");
    let helo = w("helo.map", "bad.helo.example\n");
    let hdr = w("hdr.map", "spring-sale\n");
    let lists = [
        list("L_IP", "ip", &ip, "score = 1.5"),
        list("L_FROM", "from", &from, "match = \"domain\""),
        list("L_HFROM", "from", &hfrom, "source = \"header\""),
        list(
            "L_RCPT",
            "rcpt",
            &rcpt,
            "source = \"header\"\nmatch = \"subdomain\"",
        ),
        list("L_RCPT_ENV", "rcpt", &rcpt, "match = \"domain\""),
        list("L_HELO", "helo", &helo, ""),
        list("L_HDR", "header", &hdr, "header = \"X-Campaign\""),
    ]
    .concat();
    let p = pipeline(dir.path(), &lists);
    let env = Envelope {
        ip: Some("198.51.100.9".parse().unwrap()),
        helo: Some("BAD.helo.example".into()),
        mail_from: Some("bounce@corp.example".into()),
        rcpts: vec!["someone@sub.partner.example".into()],
        ..Default::default()
    };
    let v = p.scan_blocking(&env, MSG);
    for s in ["L_IP", "L_FROM", "L_HFROM", "L_RCPT", "L_HELO", "L_HDR"] {
        assert!(
            v.symbols.contains_key(s),
            "{s} missing: {:?}",
            v.symbols.keys()
        );
    }
    assert!(
        !v.symbols.contains_key("L_RCPT_ENV"),
        "domain match is exact, sub.partner.example is not partner.example"
    );
    assert_eq!(v.symbols["L_IP"].score, 1.5);
    assert_eq!(v.symbols["L_RCPT"].options, vec!["b@lists.partner.example"]);
}

#[test]
fn prefilter_lists_answer_at_their_smtp_stage() {
    let dir = tempfile::tempdir().unwrap();
    let ips = dir.path().join("ip.map");
    std::fs::write(&ips, "203.0.113.0/24 REJECT client blocked\n").unwrap();
    let senders = dir.path().join("senders.map");
    std::fs::write(&senders, "spammer@bad.example\n").unwrap();
    let rcpts = dir.path().join("rcpts.map");
    std::fs::write(&rcpts, "trap@\n").unwrap();
    let lists = [
        list("BL_IP", "ip", &ips, "prefilter = true"),
        list(
            "BL_FROM",
            "from",
            &senders,
            "prefilter = true\naction = \"reject\"\nmessage = \"sender blocked\"",
        ),
        list(
            "TRAP",
            "rcpt",
            &rcpts,
            "prefilter = true\naction = \"reject\"",
        ),
    ]
    .concat();
    let p = pipeline(dir.path(), &lists);
    let mut env = Envelope {
        ip: Some("203.0.113.5".parse().unwrap()),
        ..Default::default()
    };
    let v = p
        .early(SmtpStage::Connect, &env)
        .expect("client is blocked at connect");
    assert_eq!(v.action, Action::Reject);
    assert_eq!(v.smtp_message(), Some("client blocked"));

    env.ip = Some("192.0.2.1".parse().unwrap());
    assert!(p.early(SmtpStage::Connect, &env).is_none());
    env.mail_from = Some("spammer@bad.example".into());
    let v = p
        .early(SmtpStage::MailFrom, &env)
        .expect("sender blocked at MAIL FROM");
    assert_eq!(v.smtp_message(), Some("sender blocked"));
    env.mail_from = Some("ok@good.example".into());
    assert!(p.early(SmtpStage::MailFrom, &env).is_none());
    env.rcpts = vec!["ok@x.example".into()];
    assert!(p.early(SmtpStage::Rcpt, &env).is_none());
    env.rcpts.push("trap@x.example".into());
    assert_eq!(
        p.early(SmtpStage::Rcpt, &env).unwrap().action,
        Action::Reject
    );
}

#[test]
fn a_changed_map_file_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("senders.map");
    std::fs::write(&map, "first@example.com\n").unwrap();
    let p = pipeline(dir.path(), &list("SENDERS", "from", &map, "score = 3.0"));
    let env_for = |from: &str| Envelope {
        mail_from: Some(from.into()),
        ..Default::default()
    };
    assert!(
        p.scan_blocking(&env_for("first@example.com"), MSG)
            .symbols
            .contains_key("SENDERS")
    );
    assert!(
        !p.scan_blocking(&env_for("second@example.com"), MSG)
            .symbols
            .contains_key("SENDERS")
    );

    // Replace the file the way editors and config managers do: write a new
    // file and rename it over the old one.
    let tmp = dir.path().join("senders.map.new");
    std::fs::write(&tmp, "second@example.com\n# first removed\n").unwrap();
    std::fs::rename(&tmp, &map).unwrap();
    assert!(
        p.scan_blocking(&env_for("second@example.com"), MSG)
            .symbols
            .contains_key("SENDERS")
    );
    assert!(
        !p.scan_blocking(&env_for("first@example.com"), MSG)
            .symbols
            .contains_key("SENDERS")
    );

    // A broken line in the new version is skipped; the rest applies.
    std::fs::write(&map, "a@b@c\nthird@example.com\n").unwrap();
    assert!(
        p.scan_blocking(&env_for("third@example.com"), MSG)
            .symbols
            .contains_key("SENDERS")
    );
}

#[test]
fn header_lists_on_an_oversized_message_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let hdr = dir.path().join("hdr.map");
    std::fs::write(&hdr, "spring-sale\n").unwrap();
    let from = dir.path().join("from.map");
    std::fs::write(&from, "boss@corp.example\n").unwrap();
    let text = format!(
        "[scan]\nmax_message_size = 10\n{}{}",
        list("L_HDR", "header", &hdr, "header = \"X-Campaign\""),
        list("L_HFROM", "from", &from, "source = \"header\"")
    );
    let config = load_str(&text, "t.toml", &mxguard_scan::sections()).unwrap();
    let (p, _) = Pipeline::from_config(config).unwrap();
    let v = p.scan_blocking(&Envelope::default(), MSG);
    assert!(v.is_skipped);
    assert_eq!(
        p.check_failures(),
        0,
        "no check panicked on the unparsed message"
    );
}
