//! The ban engine end to end, with real Postfix: `mxguard serve` follows
//! an sshd log; three failures from 127.0.0.1 ban it; Postfix, asking
//! mxguard's policy service (`reject_banned_client`), then refuses that
//! client. While serve runs, `mxguard ban status|add|remove` go through its
//! control socket and the running jail. Then the same on the store itself.

mod common;

use common::postfix;
use std::io::Write;
use std::time::{Duration, Instant};

fn append(path: &std::path::Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

#[test]
fn log_failures_ban_the_client_at_postfix() {
    let logs = tempfile::tempdir().unwrap();
    let auth_log = logs.path().join("auth.log");
    append(
        &auth_log,
        "Dec  7 09:00:00 mx sshd[1]: Server listening on 0.0.0.0 port 22.\n",
    );
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nenabled = false\n[policy]\nlisten = \"127.0.0.1:{port}\"\nmynetworks = []\n\
         [policy.restrictions]\nrecipient = [\"reject_banned_client\"]\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [ban]\nenabled = true\nignoreself = false\n\
         [ban.jails.sshd]\nlogpath = [\"{}\"]\nbantime = \"10m\"\n",
        auth_log.display()
    );
    let daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(Some(port), None);

    let (ok, transcript) = postfix::swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: before"],
        "before the ban",
    );
    assert!(ok, "not banned yet:\n{transcript}");

    // Two failures: still not banned (maxretry 3).
    for i in 0..2 {
        append(
            &auth_log,
            &format!(
                "Dec  7 09:00:0{i} mx sshd[7{i}]: Failed password for invalid user u{i} from 127.0.0.1 port 4000{i} ssh2\n"
            ),
        );
    }
    std::thread::sleep(Duration::from_millis(800));
    let (ok, transcript) = postfix::swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: two"],
        "two failures",
    );
    assert!(ok, "two failures do not ban:\n{transcript}");

    append(
        &auth_log,
        "Dec  7 09:00:05 mx sshd[80]: Invalid user admin from 127.0.0.1 port 40009\n",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, transcript) = postfix::swaks(
            "a@sender.example",
            "root@localhost",
            &["Subject: after"],
            "after the ban",
        );
        if !ok
            && transcript.contains("554 5.7.1")
            && transcript.contains("Client host [127.0.0.1] is banned")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the third failure did not ban 127.0.0.1:\n{transcript}\nserve log:\n{}",
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The CLI while serve runs goes through its control socket and the
    // running jail: status sees the ban, add and remove run the jail.
    let cfg = daemon.log.parent().unwrap().join("mxguard.toml");
    let c = cfg.to_str().unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["-c", c, "ban"];
        all.extend_from_slice(args);
        let out = common::mxguard(&all, None);
        assert!(
            out.status.success(),
            "{args:?}: {}\nserve log:\n{}",
            common::text(&out.stderr),
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        common::text(&out.stdout)
    };
    let status = cli(&["status", "sshd", "--json"]);
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(v["currently_banned"], 1, "{status}");
    assert_eq!(v["banned"][0], "127.0.0.1", "{status}");
    assert_eq!(v["total_failed"], 3, "{status}");
    assert!(cli(&["status"]).contains("Jail list: sshd"));
    assert!(
        cli(&["add", "192.0.2.7", "--jail", "sshd", "--time", "1h"]).contains("banned in sshd")
    );
    let status = cli(&["status", "sshd"]);
    assert!(
        status.contains("Currently banned: 2") && status.contains("192.0.2.7"),
        "{status}"
    );
    // A jail no config runs: the store's record, which the policy check reads.
    assert!(cli(&["add", "198.51.100.9"]).contains("banned in manual"));
    assert!(cli(&["remove", "127.0.0.1"]).contains("127.0.0.1 unbanned"));
    let (ok, transcript) = postfix::swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: unbanned"],
        "after ban remove",
    );
    assert!(ok, "ban remove through serve lifts the ban:\n{transcript}");
    let out = common::mxguard(&["-c", c, "ban", "remove", "127.0.0.1"], None);
    assert!(
        !out.status.success() && common::text(&out.stderr).contains("not banned"),
        "{}",
        common::text(&out.stderr)
    );
    let removed = cli(&["remove", "--all"]);
    assert!(
        removed.contains("192.0.2.7 unbanned") && removed.contains("198.51.100.9 unbanned"),
        "{removed}"
    );
    let status = cli(&["status", "sshd", "--json"]);
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(v["currently_banned"], 0, "{status}");
}

#[test]
fn cli_add_status_remove_on_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mxguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\ndata_dir = \"{}\"\n[ban]\nenabled = true\n[ban.jails.postfix]\nlogpath = [\"/var/log/mail.log\"]\nbantime = 600\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["-c", c, "ban"];
        all.extend_from_slice(args);
        let out = common::mxguard(&all, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            common::text(&out.stderr)
        );
        common::text(&out.stdout)
    };
    assert!(run(&["add", "192.0.2.10", "--jail", "postfix"]).contains("banned in postfix"));
    assert!(
        run(&["add", "2001:db8::10", "--jail", "postfix", "--time", "-1"]).contains("permanently")
    );
    assert!(run(&["add", "198.51.100.1", "--time", "1h"]).contains("banned in manual"));
    let status = run(&["status", "postfix"]);
    assert!(status.contains("Currently banned: 2"), "{status}");
    assert!(
        status.contains("192.0.2.10") && status.contains("2001:db8::10"),
        "{status}"
    );
    assert!(status.contains("/var/log/mail.log"), "{status}");
    let jails = run(&["status"]);
    assert!(
        jails.contains("manual") && jails.contains("postfix"),
        "{jails}"
    );
    assert!(run(&["remove", "192.0.2.10"]).contains("192.0.2.10 unbanned"));
    let status = run(&["status", "postfix", "--json"]);
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(v["currently_banned"], 1);
    assert_eq!(v["total_banned"], 2);
    let removed = run(&["remove", "--all"]);
    assert!(
        removed.contains("2001:db8::10 unbanned") && removed.contains("198.51.100.1 unbanned"),
        "{removed}"
    );
    let out = common::mxguard(&["-c", c, "ban", "remove", "192.0.2.99"], None);
    assert!(!out.status.success() && common::text(&out.stderr).contains("not banned"));
    let out = common::mxguard(
        &["-c", c, "ban", "add", "192.0.2.1", "--time", "soon"],
        None,
    );
    assert!(
        common::text(&out.stderr).contains("--time"),
        "{}",
        common::text(&out.stderr)
    );
}

#[test]
fn ban_test_reports_and_json() {
    let Some(data) = common::testdata() else {
        return;
    };
    let log = data.join("fail2ban-logs/sshd");
    let out = common::mxguard(&["ban", "test", "sshd", log.to_str().unwrap()], None);
    let text = common::text(&out.stdout);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(text.contains("Lines: 417 lines"), "{text}");
    assert!(
        text.contains("Hosts: 42 found") && text.contains("127.0.0.1"),
        "{text}"
    );
    let out = common::mxguard(
        &[
            "ban",
            "test",
            "postfix:aggressive",
            data.join("fail2ban-logs/postfix").to_str().unwrap(),
            "--json",
        ],
        None,
    );
    let lines: Vec<serde_json::Value> = common::text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(
        summary["matched"].as_u64().unwrap() as usize,
        lines.len() - 1
    );
    assert!(lines.len() > 50);
    let first = &lines[0];
    assert_eq!(first["line"], 6);
    assert_eq!(first["host"], "192.0.43.10");
    assert_eq!(first["time"], "02-21T09:21:54");
    let out = common::mxguard(&["ban", "test", "postfix:loud", "/dev/null"], None);
    assert!(common::text(&out.stderr).contains("no mode `loud`"));
}

/// mxguard's own events feed a jail: three policy rejects of 127.0.0.1
/// (a sender without a domain, through real Postfix) ban it, and the
/// policy server then refuses it whatever it sends.
#[test]
fn policy_rejects_ban_the_client() {
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nenabled = false\n[policy]\nlisten = \"127.0.0.1:{port}\"\nmynetworks = []\n\
         [policy.restrictions]\nrecipient = [\"reject_banned_client\", \"reject_non_fqdn_sender\"]\n\
         [store]\ndata_dir = \"DATA_DIR\"\n\
         [ban]\nenabled = true\nignoreself = false\n\
         [ban.jails.own]\nevents = [\"policy_reject\"]\nmaxretry = 3\nbantime = \"10m\"\n"
    );
    let daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(Some(port), None);
    let good = || {
        postfix::swaks(
            "a@sender.example",
            "root@localhost",
            &["Subject: good"],
            "a proper sender",
        )
    };
    let (ok, transcript) = good();
    assert!(ok, "not banned yet:\n{transcript}");
    for i in 0..3 {
        let (ok, transcript) = postfix::swaks(
            &format!("nodomain{i}@localhost"),
            "root@localhost",
            &["Subject: bad"],
            "a sender without a domain",
        );
        assert!(!ok, "non-FQDN sender rejected:\n{transcript}");
        assert!(
            !transcript.contains("is banned"),
            "banned before the third reject counted:\n{transcript}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, transcript) = good();
        if !ok && transcript.contains("Client host [127.0.0.1] is banned") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three policy rejects did not ban 127.0.0.1:\n{transcript}\nserve log:\n{}",
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let cfg = daemon.log.parent().unwrap().join("mxguard.toml");
    let out = common::mxguard(
        &[
            "-c",
            cfg.to_str().unwrap(),
            "ban",
            "status",
            "own",
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["banned"][0], "127.0.0.1", "{}", common::text(&out.stderr));
}

/// The milter's rejects feed a jail too: two GTUBE messages from 127.0.0.1
/// through real Postfix ban it in the jail counting `milter_reject`.
#[test]
fn milter_rejects_ban_the_client() {
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n\
         [store]\ndata_dir = \"DATA_DIR\"\n[header_anomalies]\nenabled = false\n\
         [ban]\nenabled = true\nignoreself = false\n\
         [ban.jails.spam]\nevents = [\"milter_reject\"]\nmaxretry = 2\nbantime = \"10m\"\n"
    );
    let daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(None, Some(port));
    let cfg = daemon.log.parent().unwrap().join("mxguard.toml");
    let banned = || {
        let out = common::mxguard(
            &[
                "-c",
                cfg.to_str().unwrap(),
                "ban",
                "status",
                "spam",
                "--json",
            ],
            None,
        );
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["banned"].clone()
    };
    let (ok, t) = postfix::swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: ham"],
        "a plain message",
    );
    assert!(ok, "{t}");
    for i in 0..2 {
        let (ok, t) = postfix::swaks(
            "a@sender.example",
            "root@localhost",
            &[&format!("Subject: gtube {i}")],
            common::GTUBE,
        );
        assert!(!ok && t.contains("554 5.7.1"), "{t}");
        if i == 0 {
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(banned(), serde_json::json!([]), "one reject does not ban");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while banned() != serde_json::json!(["127.0.0.1"]) {
        assert!(
            Instant::now() < deadline,
            "two milter rejects did not ban 127.0.0.1: {}\nserve log:\n{}",
            banned(),
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
