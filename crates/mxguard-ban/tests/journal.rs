//! The journal source against real journalctl: a journal file written by
//! systemd-journal-remote (from journal export format) holds sshd
//! failures of one unit and noise of another; journalctl filtered by the
//! unit, as the jail runs it (`-o json … -u UNIT`), feeds the sshd filter
//! through `Journal::spawn`. Skips, saying so, without journalctl or
//! systemd-journal-remote (scripts/peers.sh installs both).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mxguard_ban::filter;
use mxguard_ban::journal::{Journal, follow_args};
use mxguard_ban::line;

const REMOTE: &str = "/lib/systemd/systemd-journal-remote";

fn entry(unit: &str, ident: &str, pid: u32, msg: &str, usec: u64) -> String {
    format!(
        "__REALTIME_TIMESTAMP={usec}\n_HOSTNAME=mx1\nSYSLOG_IDENTIFIER={ident}\n_PID={pid}\n_SYSTEMD_UNIT={unit}\nMESSAGE={msg}\n\n"
    )
}

#[test]
fn journalctl_entries_of_the_unit_feed_the_filter() {
    if !Path::new(REMOTE).exists()
        || Command::new("journalctl")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("SKIP: journalctl or systemd-journal-remote missing (scripts/peers.sh install)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test.journal");
    let mut export = String::new();
    let t = 1_733_562_000_000_000u64;
    for i in 0..3u64 {
        export += &entry(
            "ssh.service",
            "sshd",
            4000 + i as u32,
            &format!("Failed password for invalid user u{i} from 192.0.2.200 port 5{i} ssh2"),
            t + i,
        );
    }
    export += &entry(
        "cron.service",
        "CRON",
        99,
        "Failed password for invalid user x from 192.0.2.201 port 1 ssh2",
        t + 5,
    );
    export += &entry(
        "ssh.service",
        "sshd",
        4010,
        "Accepted publickey for admin from 198.51.100.5 port 22 ssh2",
        t + 6,
    );
    let mut child = Command::new(REMOTE)
        .arg(format!("--output={}", file.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "systemd-journal-remote failed"
    );

    // The jail's arguments, with the test's file instead of the system
    // journal and without --follow (the file is complete).
    let mut args: Vec<String> = vec![
        "--file".into(),
        file.display().to_string(),
        "--no-pager".into(),
    ];
    args.extend(
        follow_args("ssh.service", &[])
            .into_iter()
            .filter(|a| a != "--follow" && a != "--lines=0"),
    );
    let (tx, rx) = mpsc::channel();
    let _j = Journal::spawn("journalctl", &args, move |l| tx.send(l).is_ok()).unwrap();
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(10)) {
        lines.push(l);
    }
    assert_eq!(lines.len(), 4, "the unit's entries only: {lines:#?}");
    let mut f = filter::builtin("sshd").unwrap();
    let hosts: Vec<String> = lines
        .iter()
        .filter_map(|l| f.process(&line::parse(l)))
        .map(|h| h.host.text)
        .collect();
    assert_eq!(hosts, ["192.0.2.200"; 3]);
}
