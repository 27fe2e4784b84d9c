//! Load generator for Postfix policy servers (mxguard, postgrey, …).
//!
//! `cargo run --release -p mxguard-policy --example policy_load -- ADDR CONNECTIONS SECONDS [SEED]`
//!
//! Each connection sends RCPT-stage requests with first-seen triplets
//! (distinct client, sender and recipient per request), one at a time,
//! like Postfix's smtpd: the request written in one write, the reply read
//! up to its empty line. The generator itself stays lean (no allocation or
//! formatting machinery per request): it shares the machine's cores with
//! the server it measures. Prints requests/second, latency percentiles and
//! the answers seen. Bounded in time; loopback only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
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
            let Ok(mut stream) = TcpStream::connect(&addr) else {
                eprintln!("policy_load: cannot connect to {addr}");
                std::process::exit(1);
            };
            stream.set_nodelay(true).ok();
            let mut local = Vec::with_capacity(1 << 16);
            let mut seen: Vec<(Vec<u8>, u64)> = Vec::new();
            let mut req = Vec::with_capacity(512);
            let mut reply = [0u8; 4096];
            let mut i: u64 = 0;
            let mut now = Instant::now();
            while now < deadline {
                i += 1;
                let n = seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((c as u64) << 32 | i);
                build_request(&mut req, n, c);
                let t = now;
                // One request in one write, the reply read until its empty
                // line: what Postfix's smtpd does per RCPT.
                stream.write_all(&req).expect("write");
                let mut got = 0;
                loop {
                    let r = stream.read(&mut reply[got..]).expect("read");
                    assert!(r > 0, "policy_load: server closed the connection");
                    got += r;
                    if reply[..got].ends_with(b"\n\n") {
                        break;
                    }
                    assert!(got < reply.len(), "policy_load: reply too long");
                }
                now = Instant::now();
                local.push(now.duration_since(t).as_micros() as u32);
                let line = &reply[..got];
                let word = line.strip_prefix(b"action=").unwrap_or(line);
                let word = &word[..word
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .unwrap_or(word.len())];
                match seen.iter_mut().find(|(w, _)| w == word) {
                    Some((_, count)) => *count += 1,
                    None => seen.push((word.to_vec(), 1)),
                }
            }
            latencies.lock().unwrap().extend(local);
            let mut a = answers.lock().unwrap();
            for (k, v) in seen {
                *a.entry(String::from_utf8_lossy(&k).into_owned())
                    .or_default() += v;
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

/// The request of number `n` on connection `c`, into `out`: the same
/// attributes and values as before this was written by hand
/// (`10.{n>>16&255}.{n>>8&255}.{n&255}`, `h{n}.example`, `s{n}@sender{c}.example`,
/// `r{n}@rcpt.example`, instance `{n:x}`).
fn build_request(out: &mut Vec<u8>, n: u64, c: usize) {
    out.clear();
    out.extend_from_slice(b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=10.");
    decimal(out, (n >> 16) & 255);
    out.push(b'.');
    decimal(out, (n >> 8) & 255);
    out.push(b'.');
    decimal(out, n & 255);
    out.extend_from_slice(b"\nclient_name=unknown\nreverse_client_name=unknown\nhelo_name=h");
    decimal(out, n);
    out.extend_from_slice(b".example\nsender=s");
    decimal(out, n);
    out.extend_from_slice(b"@sender");
    decimal(out, c as u64);
    out.extend_from_slice(b".example\nrecipient=r");
    decimal(out, n);
    out.extend_from_slice(b"@rcpt.example\nqueue_id=\ninstance=");
    hex(out, n);
    out.extend_from_slice(b"\nsize=0\n\n");
}

fn decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn hex(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[test]
fn requests_are_the_formatted_ones() {
    let mut out = Vec::new();
    for (n, c) in [(0u64, 0usize), (1_000_003u64 << 3 | 77, 15), (u64::MAX, 3)] {
        build_request(&mut out, n, c);
        let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        let want = format!(
            "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address={ip}\nclient_name=unknown\nreverse_client_name=unknown\nhelo_name=h{n}.example\nsender=s{n}@sender{c}.example\nrecipient=r{n}@rcpt.example\nqueue_id=\ninstance={n:x}\nsize=0\n\n"
        );
        assert_eq!(String::from_utf8(out.clone()).unwrap(), want);
    }
}
