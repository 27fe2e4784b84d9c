//! What a kill -9 under load loses: the greylist triplets answered (deferred)
//! before the kill that are not in the store after it.
//!
//! `cargo run --release -p mxguard-policy --example policy_crash -- MXGUARD_BIN CONNECTIONS SECONDS [MAX_PENDING_WRITES|default] [RUNS]`
//!
//! Starts `MXGUARD_BIN serve` (policy server only, its own data directory
//! and a free loopback port), sends first-seen triplets from CONNECTIONS
//! connections like Postfix's smtpd processes, kills the daemon with
//! SIGKILL after SECONDS, then opens its store and looks up every triplet
//! that was answered. Prints, per run, how many were answered, how many of
//! those are missing, and how long before the kill the oldest missing one
//! was answered. Bounded in time; loopback only.

use mxguard_core::config::GreylistConfig;
use mxguard_policy::greylist::{client_key, triplet_key};
use mxguard_store::{EmbeddedStore, Store};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A triplet the server answered, and when.
struct Answered {
    ip: IpAddr,
    sender: String,
    recipient: String,
    at: Instant,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: policy_crash MXGUARD_BIN CONNECTIONS SECONDS [MAX_PENDING_WRITES] [RUNS]"
        );
        std::process::exit(2);
    }
    let bin = args[1].clone();
    let conns: usize = args[2].parse().expect("connections");
    let secs: f64 = args[3].parse().expect("seconds");
    // `default` (or nothing): the daemon's default, and no key written, so
    // a build from before the key existed can be measured too.
    let max_pending: Option<usize> = args
        .get(4)
        .filter(|s| *s != "default")
        .map(|s| s.parse().expect("max_pending_writes"));
    let runs: usize = args.get(5).map_or(1, |s| s.parse().expect("runs"));
    for run in 1..=runs {
        crash_once(&bin, conns, secs, max_pending, run);
    }
}

fn crash_once(bin: &str, conns: usize, secs: f64, max_pending: Option<usize>, run: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let pending = max_pending.map_or(String::new(), |n| format!("max_pending_writes = {n}\n"));
    let config = dir.path().join("mxguard.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndata_dir = \"{}\"\n[milter]\nenabled = false\n[policy]\nlisten = \"{addr}\"\n{pending}[greylist]\nsender_pools = false\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
    let mut child = Command::new(bin)
        .args(["-c", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mxguard serve");
    let up = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "mxguard serve did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(Mutex::new(Vec::<Answered>::new()));
    let mut threads = Vec::new();
    for c in 0..conns {
        let (addr, stop, answered) = (addr.clone(), stop.clone(), answered.clone());
        threads.push(std::thread::spawn(move || {
            let Ok(stream) = TcpStream::connect(&addr) else {
                return;
            };
            stream.set_nodelay(true).ok();
            let mut writer = stream.try_clone().expect("clone");
            let mut reader = BufReader::new(stream);
            let mut local = Vec::new();
            let mut line = String::new();
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let n = (c as u64) << 32 | i;
                let ip: IpAddr = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
                    .parse()
                    .unwrap();
                let sender = format!("s{n}@sender{c}.example");
                let recipient = format!("r{n}@rcpt.example");
                let req = format!(
                    "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address={ip}\nclient_name=unknown\nsender={sender}\nrecipient={recipient}\n\n"
                );
                if writer.write_all(req.as_bytes()).is_err() {
                    break;
                }
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let at = Instant::now();
                let mut blank = String::new();
                let _ = reader.read_line(&mut blank);
                if line.starts_with("action=DEFER_IF_PERMIT") {
                    local.push(Answered {
                        ip,
                        sender,
                        recipient,
                        at,
                    });
                }
            }
            answered.lock().unwrap().extend(local);
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(secs));
    child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
    let killed = Instant::now();
    child.wait().expect("reap");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }

    let answered = std::mem::take(&mut *answered.lock().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store =
        EmbeddedStore::open(&dir.path().join("data")).expect("open the store after the kill");
    let cfg = GreylistConfig::default();
    let mut lost = 0usize;
    let mut oldest_lost = Duration::ZERO;
    for a in &answered {
        let key = triplet_key(&client_key(a.ip, &cfg), &a.sender, &a.recipient, false);
        let found = runtime.block_on(store.get(&key)).expect("read the store");
        if found.is_none() {
            lost += 1;
            oldest_lost = oldest_lost.max(killed.saturating_duration_since(a.at));
        }
    }
    println!(
        "run={run} connections={conns} max_pending_writes={} answered={} lost={lost} oldest_lost_ms={:.1}",
        max_pending.map_or("default".to_string(), |n| n.to_string()),
        answered.len(),
        oldest_lost.as_secs_f64() * 1000.0
    );
}
