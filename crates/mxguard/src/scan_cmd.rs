//! `mxguard scan`: verdicts for files, directories or stdin, through the
//! same scan service the milter uses. Files are scanned in parallel
//! threads, each driving its scans on its own current-thread runtime (so a
//! check that waits can wait; the CPU work stays on the thread).

use crate::settings::{Globals, display, format_errors, peak_rss};
use clap::Args;
use mxguard_core::shared::Shared;
use mxguard_core::{Envelope, Verdict};
use mxguard_scan::{Pipeline, Recording, ScanInput, ScanService, Services};
use mxguard_store::{Counters, History};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

#[derive(Args)]
pub struct ScanArgs {
    /// Files or directories (scanned recursively); `-` reads one message from stdin.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    inputs: Vec<PathBuf>,
    /// One JSON object per message, with rspamd's field names.
    #[arg(long)]
    json: bool,
    /// Client IP address.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Client host name (as the MTA resolved it).
    #[arg(long)]
    hostname: Option<String>,
    /// HELO/EHLO name.
    #[arg(long)]
    helo: Option<String>,
    /// Envelope sender (MAIL FROM).
    #[arg(long)]
    from: Option<String>,
    /// Envelope recipient (RCPT TO); repeat for several.
    #[arg(long)]
    rcpt: Vec<String>,
    /// SASL user name: marks the sender as authenticated.
    #[arg(long)]
    user: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Print throughput and peak memory to stderr when done.
    #[arg(long)]
    stats: bool,
    /// Record each verdict in the store's history and counters (the data
    /// directory must not be in use by `mxguard serve`).
    #[arg(long)]
    record: bool,
}

/// Messages bigger than this are refused before reading, whatever the
/// scan limit, so a stray huge file cannot exhaust memory.
const MAX_INPUT: u64 = 1 << 30;

pub fn run(globals: &Globals, args: ScanArgs) -> Result<ExitCode, String> {
    let loaded = globals.load_config()?;
    // The classifier's model comes from the store, opened once and shared
    // with --record.
    let (store, classifier) = crate::learn_cmd::scan_store(&loaded, args.record)?;
    let store = match (args.record, store) {
        (true, None) => Some(crate::history_cmd::open_store(globals)?.0),
        (_, store) => store,
    };
    let services = Services {
        store: store.clone(),
        classifier,
        ..Services::default()
    };
    let (pipeline, warnings) = Pipeline::new(&loaded, &services).map_err(|e| format_errors(&e))?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let envelope = Envelope {
        ip: args.ip,
        hostname: args.hostname.clone(),
        helo: args.helo.clone(),
        mail_from: args.from.clone(),
        rcpts: args.rcpt.clone(),
        user: args.user.clone(),
        queue_id: None,
        daemon_name: None,
    };
    let multi = args.inputs.len() > 1 || args.inputs.iter().any(|p| p.is_dir());
    let walker = Mutex::new(Walker::new(&args.inputs));
    let mut failures = 0usize;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256);
    // One CPU slot per thread: the threads are the limit here.
    let mut service =
        ScanService::new(Arc::new(Shared::new(pipeline)), jobs).without_milter_block();
    if let (true, Some(store)) = (args.record, store) {
        service = service.with_recording(Recording {
            history: History::new(store.clone(), loaded.config.store.history_size as usize),
            counters: Counters::new(store),
            // The process exits after the last message: rows must be written.
            wait: true,
        });
    }
    let started = Instant::now();
    let scanned = AtomicUsize::new(0);
    // Results travel in batches: one wake-up of the printing thread per
    // batch, not per message (those hand-offs were a tenth of the CPU).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, Result<String, String>)>>(jobs * 4);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let runtimes = (0..jobs)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    std::thread::scope(|s| {
        for runtime in runtimes {
            let tx = tx.clone();
            let (walker, scanned, service, envelope, args) =
                (&walker, &scanned, &service, &envelope, &args);
            s.spawn(move || {
                let mut batch = Vec::with_capacity(RESULT_BATCH);
                let mut raw = Vec::new();
                loop {
                    let next = match walker.lock() {
                        Ok(mut w) => w.next(),
                        Err(_) => None,
                    };
                    let Some((i, item)) = next else { break };
                    let result = item.and_then(|path| {
                        let len = read_input(&path, &mut raw)?;
                        let t = Instant::now();
                        let out = run_here(
                            &runtime,
                            service.scan_message(ScanInput {
                                envelope,
                                raw: &raw[..len],
                                mta_name: None,
                            }),
                        );
                        scanned.fetch_add(1, Ordering::Relaxed);
                        Ok(render(
                            &path,
                            &out.verdict,
                            t.elapsed().as_secs_f64(),
                            multi,
                            args.json,
                        ))
                    });
                    batch.push((i, result));
                    if batch.len() == RESULT_BATCH
                        && tx
                            .send(std::mem::replace(
                                &mut batch,
                                Vec::with_capacity(RESULT_BATCH),
                            ))
                            .is_err()
                    {
                        return;
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            });
        }
        drop(tx);
        // Print in input order; results that arrive early wait here.
        let mut pending = BTreeMap::new();
        let mut next_out = 0usize;
        for (i, r) in rx.into_iter().flatten() {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&next_out) {
                match r {
                    Ok(text) => {
                        let _ = out.write_all(text.as_bytes());
                    }
                    Err(e) => {
                        let _ = out.flush();
                        eprintln!("mxguard: {e}");
                        failures += 1;
                    }
                }
                next_out += 1;
            }
        }
    });
    out.flush()
        .map_err(|e| format!("cannot write the results: {e}"))?;
    if args.stats {
        let secs = started.elapsed().as_secs_f64();
        let n = scanned.load(Ordering::Relaxed);
        eprintln!(
            "scanned {n} messages in {secs:.3} s with {jobs} thread(s): {:.0} messages/s; peak RSS {:.1} MiB; check failures {}",
            n as f64 / secs.max(1e-9),
            peak_rss().unwrap_or(0) as f64 / (1024.0 * 1024.0),
            service.pipeline().check_failures()
        );
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Results a worker hands to the printing thread at once.
const RESULT_BATCH: usize = 32;

/// Drives one scan on this thread: polled in place first, so a scan whose
/// checks do not wait (every check today) finishes without a trip through
/// the runtime's scheduler; the runtime only drives a scan that waits.
fn run_here<F: Future>(runtime: &tokio::runtime::Runtime, scan: F) -> F::Output {
    let mut scan = std::pin::pin!(scan);
    {
        // Timers and sockets a check creates need the runtime's context.
        let _context = runtime.enter();
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(out) = scan.as_mut().poll(&mut cx) {
            return out;
        }
    }
    runtime.block_on(scan)
}

/// Yields the files to scan one at a time, numbered in order, expanding
/// directories recursively (sorted, hidden entries skipped). Lazy, so memory
/// does not grow with the number of messages; it holds one listing per
/// directory level.
struct Walker {
    /// Paths still to visit, in reverse order at each level, with the type
    /// their directory listing gave (none for the named inputs).
    stack: Vec<Vec<(PathBuf, Option<std::fs::FileType>)>>,
    count: usize,
}

impl Walker {
    fn new(inputs: &[PathBuf]) -> Walker {
        Walker {
            stack: vec![inputs.iter().rev().map(|p| (p.clone(), None)).collect()],
            count: 0,
        }
    }

    fn next(&mut self) -> Option<(usize, Result<PathBuf, String>)> {
        loop {
            let level = self.stack.last_mut()?;
            let Some((path, listed)) = level.pop() else {
                self.stack.pop();
                continue;
            };
            let item = if path == Path::new("-") {
                Ok(path)
            } else if listed.is_some_and(|t| t.is_file()) {
                // A plain file by its listing: no stat call per message.
                Ok(path)
            } else {
                // Symbolic links to directories are not followed inside a
                // walk (a link to a parent would loop); named inputs are.
                let inside = self.stack.len() > 1;
                let meta = if inside {
                    std::fs::symlink_metadata(&path)
                } else {
                    std::fs::metadata(&path)
                };
                match meta {
                    Err(e) => Err(format!("cannot read {}: {e}", display(&path))),
                    Ok(m) if m.file_type().is_symlink() => match std::fs::metadata(&path) {
                        Ok(t) if t.is_file() => Ok(path),
                        _ => continue,
                    },
                    Ok(m) if m.is_dir() => match list_dir(&path) {
                        Ok(mut entries) => {
                            entries.reverse();
                            self.stack.push(entries);
                            continue;
                        }
                        Err(e) => Err(e),
                    },
                    Ok(_) => Ok(path),
                }
            };
            self.count += 1;
            return Some((self.count - 1, item));
        }
    }
}

/// A directory's entries, sorted, hidden ones left out, each with the
/// type the listing gives (most file systems give it without a stat call).
fn list_dir(dir: &Path) -> Result<Vec<(PathBuf, Option<std::fs::FileType>)>, String> {
    let mut named: Vec<(std::ffi::OsString, Option<std::fs::FileType>)> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", display(dir)))?
        .filter_map(|e| e.ok().map(|e| (e.file_name(), e.file_type().ok())))
        .filter(|(name, _)| !name.as_encoded_bytes().starts_with(b"."))
        .collect();
    // By file name (the same order as by path within one directory), the
    // names compared as they came, not re-parsed out of joined paths.
    named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let entries = named
        .into_iter()
        .map(|(name, kind)| (dir.join(name), kind))
        .collect();
    Ok(entries)
}

/// Reads `path` (or stdin for `-`) into `buf`, which each worker reuses,
/// and returns the message's length. A fresh buffer per message cost a
/// large allocation, the page faults to fill it, a stat call for its
/// size and a read per doubling; the reused one stays initialised to its
/// length, so one read takes a whole message and one more sees the end.
/// It is let go after a message far above the usual size.
fn read_input(path: &Path, buf: &mut Vec<u8>) -> Result<usize, String> {
    if buf.len() > KEPT_BUFFER {
        *buf = Vec::new();
    }
    let what = |e: std::io::Error| format!("cannot read {}: {e}", display(path));
    let limit = MAX_INPUT as usize + 1;
    let n = if path == Path::new("-") {
        buf.clear();
        std::io::stdin()
            .lock()
            .take(limit as u64)
            .read_to_end(buf)
            .map_err(what)?
    } else {
        let mut file = std::fs::File::open(path).map_err(what)?;
        let mut n = 0;
        loop {
            if n == buf.len() {
                if n >= limit {
                    break;
                }
                buf.resize((n * 2).clamp(FIRST_BUFFER, limit), 0);
            }
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(what(e)),
            }
        }
        n
    };
    if n as u64 > MAX_INPUT {
        return Err(format!(
            "{}: larger than {MAX_INPUT} bytes, not scanned",
            display(path)
        ));
    }
    Ok(n)
}

/// The read buffer's first size, and the size past which a worker does
/// not keep it (see [`read_input`]).
const FIRST_BUFFER: usize = 256 << 10;
const KEPT_BUFFER: usize = 4 << 20;

fn render(path: &Path, v: &Verdict, secs: f64, multi: bool, json: bool) -> String {
    if json {
        // Straight to text (no `serde_json::Value` tree per message): the
        // file name leads the object when several inputs are scanned.
        let mut s = serde_json::to_string(v).unwrap_or_else(|_| "{}".into());
        if multi && s.starts_with('{') {
            let file = serde_json::to_string(&display(path)).unwrap_or_else(|_| "\"\"".into());
            let rest = if s.len() > 2 { "," } else { "" };
            s.insert_str(1, &format!("\"file\":{file}{rest}"));
        }
        s.push('\n');
        return s;
    }
    let mut s = format!("Results for file: {} ({secs:.3} seconds)\n", display(path));
    s.push_str(&format!("Action: {}\n", v.action));
    s.push_str(&format!("Spam: {}\n", v.action.is_spam()));
    s.push_str(&format!(
        "Score: {:.2} / {:.2}\n",
        v.score, v.required_score
    ));
    if let Some(m) = v.smtp_message() {
        s.push_str(&format!("Message: {m}\n"));
    }
    for sym in v.symbols_by_score() {
        s.push_str(&format!("Symbol: {} ({:.2})", sym.name, sym.score));
        if !sym.options.is_empty() {
            s.push_str(&format!("[{}]", sym.options.join(", ")));
        }
        s.push('\n');
    }
    s.push('\n');
    s
}
