//! A policy server on a loopback port, and a client that speaks like Postfix.
#![allow(dead_code)]

use mxguard_core::config::{LoadedConfig, load_str};
use mxguard_policy::engine::Engine;
use mxguard_policy::server::{Listener, serve};
use mxguard_store::{Clock, EmbeddedStore, Store, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub struct Server {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub store: Arc<dyn Store>,
    pub _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

/// A clock the test moves by hand, shared by the engine and the store:
/// days pass without sleeping.
pub struct ManualClock {
    base: SystemTime,
    offset_ms: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: SystemTime::now(),
            offset_ms: AtomicU64::new(0),
        })
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.base + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

pub async fn start(config: &str) -> Server {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// [`start`] with the engine and the store on `clock`.
pub async fn start_with_clock(config: &str, clock: Arc<dyn Clock>) -> Server {
    let config = load_str(config, "test.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
    let dns = if Engine::needs_dns(&loaded.config) {
        Some(mxguard_dns::Dns::new(&loaded.config.dns).unwrap())
    } else {
        None
    };
    let (engine, warnings) =
        Engine::new(&loaded, store.clone(), dns).unwrap_or_else(|e| panic!("{e:?}"));
    let engine = engine.with_clock(clock);
    assert!(warnings.is_empty(), "{warnings:?}");
    let shared = Arc::new(mxguard_core::shared::Shared::new(engine));
    let engine = shared.get();
    let listener = Listener::bind("127.0.0.1:0", 0o666).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    tokio::spawn(serve(listener, shared, Duration::from_secs(30), rx));
    Server {
        addr,
        engine,
        store,
        _dir: dir,
        _stop: tx,
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

    /// Sends one request (attributes as pairs) and returns the action text.
    pub async fn ask(&mut self, attrs: &[(&str, &str)]) -> String {
        let mut req = String::from("request=smtpd_access_policy\n");
        for (k, v) in attrs {
            req.push_str(&format!("{k}={v}\n"));
        }
        req.push('\n');
        self.stream
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        let mut blank = String::new();
        self.stream.read_line(&mut blank).await.unwrap();
        assert_eq!(blank, "\n", "an answer ends with an empty line");
        line.trim_end()
            .strip_prefix("action=")
            .unwrap_or_else(|| panic!("bad answer {line:?}"))
            .to_string()
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
    ]
}
