//! `mxguard history` and `mxguard stats`: what the store remembers.

use crate::settings::Globals;
use clap::Args;
use mxguard_core::{Envelope, Verdict};
use mxguard_store::{Counters, EmbeddedStore, History, HistoryRow, Store};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct HistoryArgs {
    /// How many verdicts to show, newest first.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn open_store(globals: &Globals) -> Result<(Arc<dyn Store>, usize), String> {
    let loaded = globals.load_config()?;
    let store = EmbeddedStore::open(&loaded.config.store.data_dir).map_err(|e| e.to_string())?;
    Ok((Arc::new(store), loaded.config.store.history_size as usize))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

pub fn history(globals: &Globals, args: HistoryArgs) -> Result<ExitCode, String> {
    let (store, size) = open_store(globals)?;
    let rows = runtime()?
        .block_on(History::new(store, size).recent(args.limit))
        .map_err(|e| e.to_string())?;
    for r in rows {
        if args.json {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
        } else {
            println!(
                "{:.0}  {:<16} {:>6.2}/{:<6.2} {:<15} {:<30} {}",
                r.time,
                r.action,
                r.score,
                r.required_score,
                r.ip.as_deref().unwrap_or("-"),
                r.from.as_deref().unwrap_or("-"),
                r.symbols.join(" ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn stats(globals: &Globals) -> Result<ExitCode, String> {
    let (store, _) = open_store(globals)?;
    let counters = runtime()?
        .block_on(Counters::new(store.clone()).all())
        .map_err(|e| e.to_string())?;
    if counters.is_empty() {
        println!("no counters yet");
    }
    for (name, n) in counters {
        println!("{name:<32} {n}");
    }
    crate::learn_cmd::print_status(globals, &store)?;
    Ok(ExitCode::SUCCESS)
}

/// A history row for a verdict.
pub fn row(envelope: &Envelope, raw: &[u8], v: &Verdict, scan_ms: f64) -> HistoryRow {
    let header = |name: &str| -> Option<String> {
        let end = memfind(raw, b"\r\n\r\n")
            .or_else(|| memfind(raw, b"\n\n"))
            .unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end]).lines().find_map(|l| {
            let (k, val) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| val.trim().chars().take(200).collect())
        })
    };
    HistoryRow {
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        queue_id: envelope.queue_id.clone(),
        ip: envelope.ip.map(|ip| ip.to_string()),
        from: envelope.mail_from.clone(),
        rcpts: envelope.rcpts.clone(),
        subject: header("subject"),
        message_id: header("message-id"),
        action: v.action.as_str().to_string(),
        score: v.score,
        required_score: v.required_score,
        symbols: v
            .symbols_by_score()
            .iter()
            .map(|s| format!("{}({:.2})", s.name, s.score))
            .collect(),
        size: raw.len() as u64,
        scan_time_ms: scan_ms,
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Records verdicts of a scan run: history rows and counters.
pub struct Recorder {
    rt: tokio::runtime::Runtime,
    history: History,
    counters: Counters,
}

impl Recorder {
    pub fn open(globals: &Globals) -> Result<Recorder, String> {
        let (store, size) = open_store(globals)?;
        Recorder::with_store(store, size)
    }

    /// Over a store the caller already opened (`mxguard scan` shares it
    /// with the classifier).
    pub fn with_store(store: Arc<dyn Store>, size: usize) -> Result<Recorder, String> {
        Ok(Recorder {
            rt: runtime()?,
            history: History::new(store.clone(), size),
            counters: Counters::new(store),
        })
    }

    pub fn record(&self, row: &HistoryRow) -> Result<(), String> {
        self.rt
            .block_on(async {
                self.history.push(row).await?;
                self.counters.incr("scanned", 1).await?;
                self.counters
                    .incr(&format!("action:{}", row.action), 1)
                    .await
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
