//! A policy server on a loopback port, and a client that speaks like Postfix.
#![allow(dead_code)]

use mxguard_core::config::{LoadedConfig, Registry, load_str};
use mxguard_core::shared::Shared;
use mxguard_policy::engine::Engine;
use mxguard_policy::server::{Limits, Listener, serve, serve_with_grace};
use mxguard_store::{Clock, EmbeddedStore, Store, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The test servers' limits: idle connections kept 30 s, the default cap.
pub fn limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(30),
        max_connections: 500,
        request_timeout: mxguard_policy::server::REQUEST_TIMEOUT,
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub store: Arc<dyn Store>,
    pub _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

pub async fn start(config: &str) -> Server {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// The engine of `config` on `clock`, with its store in a temporary
/// directory (inside a tokio runtime: the resolver needs one).
pub fn build(
    config: &str,
    clock: Arc<dyn Clock>,
) -> (Arc<Shared<Engine>>, Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store) = build_in(config, clock, dir.path());
    (engine, store, dir)
}

/// [`build`] with the store in `dir`.
pub fn build_in(
    config: &str,
    clock: Arc<dyn Clock>,
    dir: &std::path::Path,
) -> (Arc<Shared<Engine>>, Arc<dyn Store>) {
    let config =
        load_str(config, "test.toml", &Registry::new()).unwrap_or_else(|e| panic!("{e:?}"));
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open_with_clock(dir, clock.clone()).unwrap());
    let dns = if Engine::needs_dns(&loaded.config) {
        Some(mxguard_dns::Dns::new(&loaded.config.dns).unwrap())
    } else {
        None
    };
    let (engine, warnings) =
        Engine::new(&loaded, store.clone(), dns).unwrap_or_else(|e| panic!("{e:?}"));
    let engine = engine.with_clock(clock);
    assert!(warnings.is_empty(), "{warnings:?}");
    (Arc::new(Shared::new(engine)), store)
}

/// [`start`] with the engine and the store on `clock`.
pub async fn start_with_clock(config: &str, clock: Arc<dyn Clock>) -> Server {
    start_with(config, clock, limits()).await
}

/// [`start`] with other limits.
pub async fn start_with_limits(config: &str, limits: Limits) -> Server {
    start_with(config, Arc::new(SystemClock), limits).await
}

async fn start_with(config: &str, clock: Arc<dyn Clock>, limits: Limits) -> Server {
    let (shared, store, dir) = build(config, clock);
    let engine = shared.get();
    let listener = Listener::bind("127.0.0.1:0", 0o666).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(serve(listener, shared, limits, rx));
    Server {
        addr,
        engine,
        store,
        _dir: dir,
        _stop: tx,
    }
}

/// A policy server in a runtime of its own, as in the daemon: when
/// `serve` returns the runtime goes, and with it every task left.
pub struct Daemon {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// `config` served with `grace` for the connections in flight at shutdown.
    pub fn start(config: &str, grace: Duration) -> Daemon {
        Daemon::start_in(config, grace, None)
    }

    /// [`Daemon::start`] with its store in `dir` (a temporary one when
    /// `None`), closed when the daemon has stopped.
    pub fn start_in(config: &str, grace: Duration, dir: Option<std::path::PathBuf>) -> Daemon {
        let config = config.to_string();
        let (tx, rx) = watch::channel(false);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let temp = tempfile::tempdir().unwrap();
                let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
                let (shared, _store) = build_in(&config, Arc::new(SystemClock), &dir);
                let listener = Listener::bind("127.0.0.1:0", 0o666).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve_with_grace(listener, shared, limits(), grace, rx).await;
            });
            // Like the daemon's exit: whatever still runs is dropped.
            rt.shutdown_timeout(Duration::ZERO);
        });
        Daemon {
            addr: addr_rx.recv().unwrap(),
            stop: tx,
            thread: Some(thread),
        }
    }

    /// Begins shutdown, as SIGTERM does.
    pub fn begin_shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until the server has stopped and its runtime is gone.
    pub async fn stopped(&mut self) {
        let t = self.thread.take().expect("stopped once");
        tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
    }
}

pub struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: BufReader::new(TcpStream::connect(addr).await.unwrap()),
        }
    }

    /// Sends raw bytes, as a broken or hostile client would.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.get_mut().write_all(bytes).await
    }

    /// Whether the server closes the connection within `within`, sending
    /// nothing more.
    pub async fn closed(&mut self, within: Duration) -> bool {
        let mut rest = String::new();
        matches!(
            tokio::time::timeout(within, self.stream.read_line(&mut rest)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// Sends one request (attributes as pairs) and returns the action text.
    pub async fn ask(&mut self, attrs: &[(&str, &str)]) -> String {
        self.try_ask(attrs)
            .await
            .expect("the server closed the connection without answering")
    }

    /// [`Client::ask`], `None` when the connection closes before the answer.
    pub async fn try_ask(&mut self, attrs: &[(&str, &str)]) -> Option<String> {
        let mut req = String::from("request=smtpd_access_policy\n");
        for (k, v) in attrs {
            req.push_str(&format!("{k}={v}\n"));
        }
        req.push('\n');
        self.stream.get_mut().write_all(req.as_bytes()).await.ok()?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let mut blank = String::new();
        self.stream.read_line(&mut blank).await.unwrap();
        assert_eq!(blank, "\n", "an answer ends with an empty line");
        Some(
            line.trim_end()
                .strip_prefix("action=")
                .unwrap_or_else(|| panic!("bad answer {line:?}"))
                .to_string(),
        )
    }
}

pub fn rcpt<'a>(ip: &'a str, sender: &'a str, rcpt: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("protocol_state", "RCPT"),
        ("protocol_name", "ESMTP"),
        ("client_address", ip),
        ("client_name", "unknown"),
        ("reverse_client_name", "unknown"),
        ("helo_name", "mx.sender.example"),
        ("sender", sender),
        ("recipient", rcpt),
        ("queue_id", ""),
        // Postfix 2.3 and later always send it, empty outside ETRN.
        ("etrn_domain", ""),
    ]
}
