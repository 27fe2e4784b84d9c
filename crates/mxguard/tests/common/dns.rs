//! A real DNS server for the tests: dnsmasq on a free loopback port,
//! serving the records given and NXDOMAIN for everything else.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// dnsmasq on a free loopback port, killed when dropped.
pub struct Dnsmasq {
    child: Child,
    pub port: u16,
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
    let child = Command::new(bin)
        .args(["-k", "-C"])
        .arg(&conf)
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg("--log-facility=-")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
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
        _dir: dir,
    }
}

/// A dnsmasq `txt-record` line, the value split into 255-byte strings.
pub fn txt_record(name: &str, value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("txt-record={name},{}\n", parts.join(","))
}
