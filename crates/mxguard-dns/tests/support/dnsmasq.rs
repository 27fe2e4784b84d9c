//! A real DNS server for the tests: dnsmasq on a free loopback port,
//! serving the records given and NXDOMAIN (without an SOA) for every other
//! name. One helper for every crate's tests, included with `#[path]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// dnsmasq on a free loopback port, killed when dropped.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
    /// Where every query is logged, for a server started with
    /// [`dnsmasq_logging`].
    pub log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `records`: dnsmasq config lines (`txt-record=…`), each ending in `\n`.
pub fn dnsmasq(records: &str) -> Dnsmasq {
    start(records, false)
}

/// [`dnsmasq`], logging every query it receives to [`Dnsmasq::log`].
pub fn dnsmasq_logging(records: &str) -> Dnsmasq {
    start(records, true)
}

fn start(records: &str, log_queries: bool) -> Dnsmasq {
    let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("dnsmasq is not installed: run ./scripts/peers.sh install (package dnsmasq-base)");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("dnsmasq.conf");
    std::fs::write(
        &conf,
        format!(
            "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nuser=root\n{records}address=/#/\n"
        ),
    )
    .unwrap();
    let log = log_queries.then(|| dir.path().join("queries.log"));
    let child = Command::new(bin)
        .args(["-k", "-C"])
        .arg(&conf)
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .args(match &log {
            Some(path) => vec![
                "--log-queries".to_string(),
                format!("--log-facility={}", path.display()),
            ],
            None => vec!["--log-facility=-".to_string()],
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    // Wait until it answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Dnsmasq {
        child,
        port,
        log,
        _dir: dir,
    }
}
