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

/// The name every dnsmasq started here answers (A 127.0.0.1), so that
/// readiness is proven by an answer from this very server.
const READY_NAME: &str = "dnsmasq-ready.test";
/// Ports tried before giving up: a port can be taken between the moment
/// it is found free and the moment dnsmasq binds it.
const PORT_TRIES: usize = 10;
/// How long dnsmasq may take to answer its first query: generous, for a
/// loaded machine; a dnsmasq that exits is noticed at once.
const READY_WAIT: Duration = Duration::from_secs(30);

/// Starts dnsmasq and returns once it answers a query over UDP (the
/// transport the resolvers use first). The race this closes: the port is
/// found free by binding and releasing it, and another test (this binary's
/// own, run in parallel, or another process) can take it before dnsmasq
/// binds it; dnsmasq then exits ("Address already in use"). The former
/// check (a TCP connect, given up silently after 5 s) let the test go on
/// against no server, and its first lookups failed (an RBL answered
/// DUNNO). Now an exit on a taken port is retried on a new port, and any
/// other failure to answer panics with dnsmasq's own words.
fn start(records: &str, log_queries: bool) -> Dnsmasq {
    let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("dnsmasq is not installed: run ./scripts/peers.sh install (package dnsmasq-base)");
    let mut clashes = Vec::new();
    for _ in 0..PORT_TRIES {
        match try_start(bin, records, log_queries) {
            Ok(d) => return d,
            Err(taken) => {
                eprintln!("dnsmasq: {taken}; trying another port");
                clashes.push(taken);
            }
        }
    }
    panic!(
        "dnsmasq found every port it was given taken ({} tries): {}",
        PORT_TRIES,
        clashes.join("; ")
    );
}

/// One attempt on a fresh port: `Err` when the port was taken meanwhile.
fn try_start(bin: &str, records: &str, log_queries: bool) -> Result<Dnsmasq, String> {
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
            "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nuser=root\nhost-record={READY_NAME},127.0.0.1\n{records}address=/#/\n"
        ),
    )
    .unwrap();
    let log = log_queries.then(|| dir.path().join("queries.log"));
    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(bin)
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
        .stderr(stderr)
        .spawn()
        .expect("start dnsmasq");
    let said = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + READY_WAIT;
    let mut id: u16 = 0x5a00;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let words = said();
            if words.contains("in use") {
                return Err(format!("port {port}: {}", words.trim()));
            }
            panic!("dnsmasq exited ({status}) on port {port}: {}", words.trim());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "dnsmasq on port {port} did not answer within {READY_WAIT:?}: {}",
                said().trim()
            );
        }
        id = id.wrapping_add(1);
        if answers(&probe, port, id) {
            return Ok(Dnsmasq {
                child,
                port,
                log,
                _dir: dir,
            });
        }
    }
}

/// Whether the server on `port` answers A `READY_NAME` (NOERROR, one
/// answer or more) to a query with `id` within the probe's read timeout.
fn answers(probe: &std::net::UdpSocket, port: u16, id: u16) -> bool {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in READY_NAME.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root; A; IN
    if probe.send_to(&q, ("127.0.0.1", port)).is_err() {
        // Nothing bound yet (ICMP port unreachable from an earlier send).
        std::thread::sleep(Duration::from_millis(50));
        return false;
    }
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_millis(400);
    while Instant::now() < deadline {
        match probe.recv_from(&mut buf) {
            Ok((n, from)) if from.port() == port && n >= 12 => {
                let same_id = buf[..2] == id.to_be_bytes();
                let is_answer = buf[2] & 0x80 != 0;
                let noerror = buf[3] & 0x0f == 0;
                let count = u16::from_be_bytes([buf[6], buf[7]]);
                if same_id && is_answer {
                    return noerror && count > 0;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(Duration::from_millis(50));
                return false;
            }
            Err(_) => return false,
        }
    }
    false
}
