//! `mxguard history` and `mxguard stats`: what the store remembers.

use crate::settings::Globals;
use clap::Args;
use mxguard_store::{Counters, History, HistoryRow, Store};
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
    let store = crate::store_cmd::open(&loaded.config.store)?;
    Ok((store, loaded.config.store.history_size as usize))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

pub fn history(globals: &Globals, args: HistoryArgs) -> Result<ExitCode, String> {
    // While serve runs it holds the store: ask it over the control socket.
    let rows = match crate::web::via_serve(
        globals,
        "GET",
        &format!("/history?format=mxguard&to={}", args.limit),
        b"",
    )? {
        Some(answer) => {
            let v = answer.json()?;
            serde_json::from_value::<Vec<HistoryRow>>(v["rows"].clone()).map_err(|e| {
                format!("mxguard serve sent history rows this build cannot read: {e}")
            })?
        }
        None => {
            let (store, size) = open_store(globals)?;
            runtime()?
                .block_on(History::new(store, size).recent(args.limit))
                .map_err(|e| e.to_string())?
        }
    };
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
    if let Some(answer) = crate::web::via_serve(globals, "GET", "/stat", b"")? {
        return print_served_stats(&answer.json()?);
    }
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

/// `mxguard stats` from a running serve's `/stat`.
fn print_served_stats(stat: &serde_json::Value) -> Result<ExitCode, String> {
    let counters = stat["counters"]
        .as_object()
        .ok_or("mxguard serve sent a /stat without counters")?;
    if counters.is_empty() {
        println!("no counters yet");
    }
    for (name, n) in counters {
        println!("{name:<32} {n}");
    }
    let c = &stat["classifier"];
    println!();
    println!("classifier (from the running mxguard serve)");
    println!("  learned spam                   {}", c["spam_learns"]);
    println!("  learned ham                    {}", c["ham_learns"]);
    println!(
        "  state                          {}",
        c["state"].as_str().unwrap_or("unknown")
    );
    Ok(ExitCode::SUCCESS)
}
