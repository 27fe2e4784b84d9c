//! Real Redis for the tests: redis-server on free loopback ports (and a
//! unix socket), alone or as a three-node Redis Cluster made with
//! `redis-cli --cluster create`. One helper for every crate's tests,
//! included with `#[path]`.
//!
//! Each server runs under a small shell that kills it when the test
//! process's end of its stdin closes, so servers kept in statics (shared
//! by a test binary's tests) do not outlive the binary.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One redis-server, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    cluster_port: Option<u16>,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// Each helper file stands alone in some test binaries, so each loads it.
#[allow(clippy::duplicate_mod)]
#[path = "../../../mxguard-core/tests/support/ports.rs"]
mod ports;

/// A loopback port nobody listens on (see `ports.rs`), from this helper's band.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    ports::free_port_in(23_000, &NEXT)
}

fn binary() -> &'static str {
    for b in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if Path::new(b).exists() {
            return b;
        }
    }
    panic!("redis-server is not installed: run ./scripts/peers.sh install (package redis-server)");
}

impl RedisServer {
    /// A single server on a free port and a unix socket.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// With more `redis-server` arguments (`--requirepass`, ACL users…).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            cluster_port: None,
            socket: PathBuf::new(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
        };
        s.socket = s.dir.path().join("redis.sock");
        s.run();
        s
    }

    fn cluster_node() -> RedisServer {
        let mut s = RedisServer {
            child: None,
            port: free_port(),
            cluster_port: Some(free_port()),
            socket: PathBuf::new(),
            dir: tempfile::tempdir().unwrap(),
            extra: Vec::new(),
        };
        s.socket = s.dir.path().join("redis.sock");
        s.run();
        s
    }

    fn run(&mut self) {
        let dir = self.dir.path();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.port.to_string(),
            "--unixsocket".into(),
            self.socket.display().to_string(),
            "--unixsocketperm".into(),
            "700".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            dir.join("redis.log").display().to_string(),
            "--daemonize".into(),
            "no".into(),
        ];
        if let Some(bus) = self.cluster_port {
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                dir.join("nodes.conf").display().to_string(),
                "--cluster-port".into(),
                bus.to_string(),
                "--cluster-node-timeout".into(),
                "2000".into(),
            ]);
        }
        args.extend(self.extra.iter().cloned());
        // The shell starts redis-server, then waits for its stdin to close
        // (the test process ended or dropped us) and stops it.
        let script = r#"bin="$1"; shift; "$bin" "$@" & pid=$!; cat >/dev/null; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(binary())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // NOAUTH: up, with the default user off (an ACL test).
            if self
                .command(&["PING"])
                .is_some_and(|r| r.contains("PONG") || r.contains("NOAUTH"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        panic!("redis-server on port {} did not start:\n{log}", self.port);
    }

    /// Kills the server (as a crash would). [`RedisServer::restart`]
    /// brings it back on the same port and socket, empty.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
        // Wait until the port is free again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn unix_url(&self) -> String {
        format!("unix://{}?db=0", self.socket.display())
    }

    /// One command in RESP (inline form), the raw reply; `None` if the
    /// server cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 1 << 16];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// `redis-cli` against this server, its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (package redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Three masters with the 16384 slots split between them.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::cluster_node()).collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (package redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = nodes.iter().all(|n| {
                n.command(&["CLUSTER", "INFO"])
                    .is_some_and(|r| r.contains("cluster_state:ok"))
            });
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        RedisCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }
}

/// One single server shared by a test binary's tests (each keeps to its
/// own key prefix).
pub fn shared_server() -> &'static RedisServer {
    static S: OnceLock<RedisServer> = OnceLock::new();
    S.get_or_init(RedisServer::start)
}

/// One cluster shared by a test binary's tests.
pub fn shared_cluster() -> &'static RedisCluster {
    static C: OnceLock<RedisCluster> = OnceLock::new();
    C.get_or_init(RedisCluster::start)
}

/// A throwaway PKI for TLS tests, made with the openssl CLI: a CA, a
/// server certificate for 127.0.0.1 and localhost signed by it, a client
/// certificate signed by it, and a second CA that signed nothing here.
pub struct TlsFiles {
    pub dir: tempfile::TempDir,
}

impl TlsFiles {
    pub fn make() -> TlsFiles {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdin(Stdio::null())
                .output()
                .expect("openssl (package openssl): run ./scripts/peers.sh install");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            let subj = format!("/CN=mxguard test {ca}");
            let key = format!("{ca}.key");
            let pem = format!("{ca}.pem");
            a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
            openssl(&a);
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (who, cn) in [("server", "localhost"), ("client", "mxguard")] {
            let mut a = vec!["req"];
            a.extend(ec);
            let key = format!("{who}.key");
            let csr = format!("{who}.csr");
            let subj = format!("/CN={cn}");
            a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(&a);
            let pem = format!("{who}.pem");
            let ext = format!("{who}.ext");
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        TlsFiles { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A redis-server that also listens with TLS (Redis 7's `--tls-port`) on
/// the port returned, with `files`' server certificate; `auth_clients` is
/// its `tls-auth-clients` (`yes`: a client certificate is required).
pub fn start_tls(files: &TlsFiles, auth_clients: &str) -> (RedisServer, u16) {
    let tls_port = free_port();
    let p = |n: &str| files.path(n).display().to_string();
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &p("server.pem"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.pem"),
        "--tls-auth-clients",
        auth_clients,
    ]);
    (server, tls_port)
}
