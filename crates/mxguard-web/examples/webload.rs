//! Load generator for `bench/web.sh`: POSTs messages to an HTTP scan route
//! (mxguard's or rspamd's `/checkv2`) from N concurrent keep-alive
//! connections for a fixed time, reconnecting when the server closes, and
//! prints messages per second and latency percentiles. The same client for
//! both servers, so the comparison is fair.
//!
//! `webload HOST:PORT PATH CONCURRENCY SECONDS FILE...`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: webload HOST:PORT PATH CONCURRENCY SECONDS FILE...");
        std::process::exit(2);
    }
    let addr = args[0].clone();
    let path = args[1].clone();
    let conc: usize = args[2].parse().expect("concurrency");
    let secs: u64 = args[3].parse().expect("seconds");
    let bodies: Vec<Vec<u8>> = args[4..]
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(addr, path, conc, secs, Arc::new(bodies)));
}

async fn run(addr: String, path: String, conc: usize, secs: u64, bodies: Arc<Vec<Vec<u8>>>) {
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (addr, path, bodies, next, stop, errors) = (
            addr.clone(),
            path.clone(),
            bodies.clone(),
            next.clone(),
            stop.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut conn: Option<TcpStream> = None;
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
                let t = Instant::now();
                match one(&mut conn, &addr, &path, &bodies[i]).await {
                    Ok(true) => lat.push(t.elapsed()),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "concurrency={conc} messages={} errors={} msgs_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        all.len(),
        errors.load(Ordering::Relaxed),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}

/// One request on the kept connection (opened if needed); `Ok(true)` on a
/// 200 reply read whole.
async fn one(
    conn: &mut Option<TcpStream>,
    addr: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<bool> {
    if conn.is_none() {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        *conn = Some(s);
    }
    let Some(s) = conn.as_mut() else {
        return Ok(false);
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nIP: 192.0.2.1\r\nFrom: sender@example.com\r\nRcpt: rcpt@example.org\r\nHelo: mx.example.com\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    let (head_end, len, close) = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let close = head.contains("connection: close") || head.starts_with("http/1.0");
            if !head.starts_with("http/1.1 200") && !head.starts_with("http/1.0 200") {
                return Ok(false);
            }
            break (end + 4, len, close);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if close {
        *conn = None;
    }
    Ok(true)
}
