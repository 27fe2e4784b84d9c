//! `serve` starts the ban engine (its actions' `start`: firewall sets and
//! rules) before the front ends bind. When a front end then cannot bind,
//! serve must stop the engine's actions before it exits, or the rules
//! stay behind with nothing managing them. A `command` action whose
//! `start` and `stop` write marker files shows both ran.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_front_end_that_cannot_bind_stops_the_ban_actions_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The policy address, already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (started, stopped) = (d.join("started"), d.join("stopped"));
    let cfg = d.join("mxguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[milter]\nenabled = false\n\
             [policy]\nlisten = \"127.0.0.1:{port}\"\n\
             [web]\nenabled = false\n\
             [store]\ndata_dir = \"{data}\"\n\
             [ban]\nenabled = true\nignoreself = false\n\
             [ban.jails.sshd]\nlogpath = [\"{log}\"]\n\
             [[ban.jails.sshd.actions]]\nkind = \"command\"\nban = \"/usr/bin/true\"\n\
             start = [\"/usr/bin/touch\", \"{started}\"]\n\
             stop = [\"/usr/bin/touch\", \"{stopped}\"]\n",
            data = d.join("data").display(),
            log = d.join("auth.log").display(),
            started = started.display(),
            stopped = stopped.display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args(["-c", cfg.to_str().unwrap(), "serve"])
        .env("MXGUARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mxguard serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with its policy address taken");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("policy: cannot listen on 127.0.0.1:{port}")),
        "{log}"
    );
    assert!(started.exists(), "the action's start never ran: {log}");
    assert!(
        stopped.exists(),
        "serve exited without stopping the ban actions it started: {log}"
    );
    drop(taken);
}
