//! Load generator for Postfix policy servers (mxguard, postgrey, …).
//!
//! `cargo run --release -p mxguard-policy --example policy_load -- ADDR CONNECTIONS SECONDS [SEED]`
//!
//! Each connection sends RCPT-stage requests with first-seen triplets
//! (distinct client, sender and recipient per request), one at a time,
//! like Postfix's smtpd. Prints requests/second, latency percentiles and
//! the answers seen. Bounded in time; loopback only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: policy_load ADDR CONNECTIONS SECONDS [SEED]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let conns: usize = args[2].parse().expect("connections");
    let secs: f64 = args[3].parse().expect("seconds");
    let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    assert!(
        addr.starts_with("127.") || addr.starts_with("[::1]"),
        "loopback targets only"
    );
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let answers = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut threads = Vec::new();
    for c in 0..conns {
        let (addr, latencies, answers) = (addr.clone(), latencies.clone(), answers.clone());
        threads.push(std::thread::spawn(move || {
            let Ok(stream) = TcpStream::connect(&addr) else {
                eprintln!("policy_load: cannot connect to {addr}");
                std::process::exit(1);
            };
            stream.set_nodelay(true).ok();
            let mut writer = stream.try_clone().expect("clone");
            let mut reader = BufReader::new(stream);
            let mut local = Vec::with_capacity(1 << 16);
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            let mut i: u64 = 0;
            let mut line = String::new();
            while Instant::now() < deadline {
                i += 1;
                let n = seed.wrapping_mul(1_000_003).wrapping_add((c as u64) << 32 | i);
                let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                let req = format!(
                    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address={ip}\nclient_name=unknown\nreverse_client_name=unknown\nhelo_name=h{n}.example\nsender=s{n}@sender{c}.example\nrecipient=r{n}@rcpt.example\nqueue_id=\ninstance={n:x}\nsize=0\n\n"
                );
                let t = Instant::now();
                writer.write_all(req.as_bytes()).expect("write");
                line.clear();
                reader.read_line(&mut line).expect("read");
                let mut blank = String::new();
                reader.read_line(&mut blank).expect("read");
                local.push(t.elapsed().as_micros() as u32);
                let word = line.trim_start_matches("action=").split_whitespace().next().unwrap_or("").to_string();
                *seen.entry(word).or_default() += 1;
            }
            latencies.lock().unwrap().extend(local);
            let mut a = answers.lock().unwrap();
            for (k, v) in seen {
                *a.entry(k).or_default() += v;
            }
        }));
    }
    for t in threads {
        t.join().expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "addr={addr} connections={conns} requests={} seconds={elapsed:.2} rps={:.0} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} answers={:?}",
        l.len(),
        l.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        l.last().copied().unwrap_or(0) as f64 / 1000.0,
        answers.lock().unwrap()
    );
}
