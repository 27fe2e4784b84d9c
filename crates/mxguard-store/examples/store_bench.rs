//! History pushes per second through the embedded store, with 1 and many
//! concurrent writers (group commit), each push a durable write.
//!
//! `cargo run --release -p mxguard-store --example store_bench -- [--seconds 3] [--writers 1,16] [--dir PATH]`
//!
//! `--dir` must be on the disk under test (not tmpfs, where fsync is free).

use mxguard_store::{EmbeddedStore, History, HistoryRow, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn row(i: u64) -> HistoryRow {
    HistoryRow {
        time: 1_700_000_000.0 + i as f64,
        queue_id: Some(format!("4Xk{i:08X}")),
        ip: Some("198.51.100.23".into()),
        from: Some("newsletter@shop.example.com".into()),
        rcpts: vec!["alice@example.org".into()],
        subject: Some("Your weekly offers: 20% off everything this weekend".into()),
        message_id: Some(format!("<{i}.abcdef@shop.example.com>")),
        action: "add header".into(),
        score: 6.4,
        required_score: 15.0,
        symbols: [
            "BAYES_SPAM(3.00)",
            "R_SPF_ALLOW(-0.20)",
            "R_DKIM_ALLOW(-0.20)",
            "DMARC_POLICY_ALLOW(-0.50)",
            "MIME_HTML_ONLY(0.20)",
            "RCVD_COUNT_THREE(0.00)",
        ]
        .map(String::from)
        .to_vec(),
        size: 48_213,
        scan_time_ms: 12.5,
    }
}

struct Args {
    seconds: f64,
    writers: Vec<usize>,
    dir: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 3.0,
        writers: vec![1, 16],
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--writers" => {
                a.writers = value
                    .split(',')
                    .map(|w| w.trim().parse().map_err(|e| format!("--writers: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--dir" => a.dir = value.into(),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "history push (JSON row ~{} B, list bounded at 10000), durable group commit, dir {}",
        serde_json::to_vec(&row(0))?.len(),
        args.dir.display()
    );
    println!("writers  pushes/s  commits/s  rows/commit  p50 ms  p99 ms");
    for &writers in &args.writers {
        let tmp = tempfile::Builder::new()
            .prefix("mxguard-store-bench")
            .tempdir_in(&args.dir)?;
        let store = Arc::new(EmbeddedStore::open(tmp.path())?);
        let dyn_store: Arc<dyn Store> = store.clone();
        let history = History::new(dyn_store, 10_000);
        let run_for = Duration::from_secs_f64(args.seconds);
        let (elapsed, mut latencies) = rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let history = history.clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        let mut i = w as u64 * 1_000_000_000;
                        while start.elapsed() < run_for {
                            let t = Instant::now();
                            history.push(&row(i)).await?;
                            lat.push(t.elapsed());
                            i += 1;
                        }
                        Ok::<_, mxguard_store::StoreError>(lat)
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await??);
            }
            Ok::<_, Box<dyn std::error::Error>>((start.elapsed(), all))
        })?;
        latencies.sort_unstable();
        let stats = store.stats();
        let secs = elapsed.as_secs_f64();
        println!(
            "{writers:>7}  {:>8.0}  {:>9.0}  {:>11.1}  {:>6.2}  {:>6.2}",
            latencies.len() as f64 / secs,
            stats.commits as f64 / secs,
            stats.writes as f64 / stats.commits.max(1) as f64,
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
