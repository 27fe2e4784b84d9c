//! Milter load generator: replays message files through the milter protocol,
//! the way Postfix sends them, over N concurrent connections, and reports
//! throughput, latency and the replies received.
//!
//! ```text
//! cargo run --release -p mxguard-milter --example milter_load -- \
//!     --connect 127.0.0.1:11336 --concurrency 50 --messages 5000
//! ```
//!
//! Works against mxguard (`mxguard serve`) and rspamd's milter proxy
//! (`--connect 127.0.0.1:11332`). It writes as Postfix does
//! ([`Client::buffered`]): commands that get no reply wait in a 4 KiB
//! buffer until one that does, so the headers, the body and end of message
//! go out in a few writes, not one per header; each connection ends with
//! ABORT and QUIT. Options:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `--connect ADDR` | 127.0.0.1:11336 | `host:port`, or a unix socket path |
//! | `--dir DIR` (repeatable) | $MXGUARD_TESTDATA/corpus-dev/{ham,spam}, else /work/shared/testdata/corpus-dev/{ham,spam} | message files, one per file |
//! | `--concurrency N` | 50 | connections sending at the same time |
//! | `--messages N` | every file once | messages in total (files are reused round-robin) |
//! | `--seconds S` | no limit | stop starting messages after S seconds (with no `--messages`: send until then) |
//! | `--per-connection N` | 0 (no limit) | messages per connection before QUIT and a new one, like an SMTP session |
//! | `--warmup N` | 0 | messages sent first and left out of the figures |
//! | `--client-ip IP` | 192.0.2.10 | the SMTP client address given in CONNECT |
//! | `--from ADDR`, `--rcpt ADDR` | sender@example.com, user@example.org | envelope |
//! | `--json` | off | one JSON object instead of the text report |

use mxguard_milter::client::{Client, MessageSpec, Outcome, postfix_offer};
use mxguard_milter::codec::{Reply, cmd};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

struct Options {
    connect: String,
    dirs: Vec<PathBuf>,
    concurrency: usize,
    messages: Option<usize>,
    seconds: Option<f64>,
    per_connection: usize,
    warmup: usize,
    client_ip: IpAddr,
    from: String,
    rcpt: String,
    json: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: milter_load [--connect host:port|/socket] [--dir DIR]... [--concurrency N] [--messages N] [--seconds S]\n\
         \x20                  [--per-connection N] [--warmup N] [--client-ip IP] [--from ADDR] [--rcpt ADDR] [--json]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        connect: "127.0.0.1:11336".into(),
        dirs: Vec::new(),
        concurrency: 50,
        messages: None,
        seconds: None,
        per_connection: 0,
        warmup: 0,
        client_ip: "192.0.2.10".parse().unwrap(),
        from: "sender@example.com".into(),
        rcpt: "user@example.org".into(),
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--connect" => o.connect = val(),
            "--dir" => o.dirs.push(PathBuf::from(val())),
            "--concurrency" => o.concurrency = val().parse().unwrap_or_else(|_| usage()),
            "--messages" => o.messages = Some(val().parse().unwrap_or_else(|_| usage())),
            "--seconds" => o.seconds = Some(val().parse().unwrap_or_else(|_| usage())),
            "--per-connection" => o.per_connection = val().parse().unwrap_or_else(|_| usage()),
            "--warmup" => o.warmup = val().parse().unwrap_or_else(|_| usage()),
            "--client-ip" => o.client_ip = val().parse().unwrap_or_else(|_| usage()),
            "--from" => o.from = val(),
            "--rcpt" => o.rcpt = val(),
            "--json" => o.json = true,
            _ => usage(),
        }
    }
    if o.dirs.is_empty() {
        let base = std::env::var_os("MXGUARD_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/work/shared/testdata"));
        o.dirs = vec![base.join("corpus-dev/ham"), base.join("corpus-dev/spam")];
    }
    o.concurrency = o.concurrency.max(1);
    o
}

fn load(dirs: &[PathBuf], from: &str, rcpt: &str) -> Vec<MessageSpec> {
    let mut files: Vec<PathBuf> = Vec::new();
    for d in dirs {
        match std::fs::read_dir(d) {
            Ok(rd) => files.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file())),
            Err(e) => {
                eprintln!("milter_load: cannot read {}: {e}", d.display());
                std::process::exit(1);
            }
        }
    }
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|raw| MessageSpec::from_raw(from, &[rcpt], &raw))
        .collect()
}

/// How one message ended, as a short label.
fn kind(o: &Outcome) -> String {
    let stage = match o.stage {
        cmd::BODYEOB => "",
        cmd::MAIL => "@mail",
        cmd::RCPT => "@rcpt",
        cmd::CONNECT => "@connect",
        cmd::HELO => "@helo",
        cmd::DATA => "@data",
        cmd::HEADER => "@header",
        cmd::EOH => "@eoh",
        cmd::BODY => "@body",
        _ => "@other",
    };
    let quarantined = o
        .modifications
        .iter()
        .any(|m| matches!(m, Reply::Quarantine(_)));
    let base = match &o.reply {
        Reply::Accept | Reply::Continue if quarantined => "quarantine".to_string(),
        Reply::Accept => "accept".into(),
        Reply::Continue => "continue".into(),
        Reply::Reject => "reject".into(),
        Reply::Tempfail => "tempfail".into(),
        Reply::Discard => "discard".into(),
        Reply::ConnFail => "connfail".into(),
        Reply::Shutdown => "shutdown".into(),
        Reply::Skip => "skip".into(),
        Reply::ReplyCode(text) => format!("replycode {}", text.get(..3).unwrap_or("?")),
        other => format!("{other:?}"),
    };
    format!("{base}{stage}")
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    kinds: BTreeMap<String, u64>,
    modifications: BTreeMap<&'static str, u64>,
    progress: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn open(o: &Options) -> Result<Box<dyn Session>, String> {
    if o.connect.starts_with('/') {
        let c = Client::connect_unix(Path::new(&o.connect))
            .await
            .map_err(|e| format!("connect {}: {e}", o.connect))?;
        Ok(Box::new(c.buffered(true)))
    } else {
        let c = Client::connect_tcp(&o.connect)
            .await
            .map_err(|e| format!("connect {}: {e}", o.connect))?;
        Ok(Box::new(c.buffered(true)))
    }
}

/// A client over TCP or a unix socket, behind one type.
trait Session: Send {
    fn start<'a>(
        &'a mut self,
        ip: IpAddr,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<Outcome>, String>> + Send + 'a>,
    >;
    fn send<'a>(
        &'a mut self,
        m: &'a MessageSpec,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, String>> + Send + 'a>>;
    /// QUIT and close, as Postfix ends a milter connection with its SMTP
    /// session.
    fn close(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session for Client<S> {
    fn start<'a>(
        &'a mut self,
        ip: IpAddr,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<Outcome>, String>> + Send + 'a>,
    > {
        Box::pin(async move {
            self.negotiate(postfix_offer())
                .await
                .map_err(|e| e.to_string())?;
            for (stage, r) in [
                (
                    cmd::CONNECT,
                    self.connect("client.example", ip, 40000).await,
                ),
                (cmd::HELO, self.helo("client.example").await),
            ] {
                if let Some(r) = r.map_err(|e| e.to_string())?
                    && r.reply != Reply::Continue
                {
                    return Ok(Some(Outcome {
                        stage,
                        reply: r.reply,
                        modifications: r.modifications,
                        progress: r.progress,
                        rejected_rcpts: vec![],
                    }));
                }
            }
            Ok(None)
        })
    }

    fn send<'a>(
        &'a mut self,
        m: &'a MessageSpec,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, String>> + Send + 'a>>
    {
        Box::pin(async move {
            let o = self.message(m).await.map_err(|e| e.to_string())?;
            self.abort().await.map_err(|e| e.to_string())?;
            Ok(o)
        })
    }

    fn close(self: Box<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let _ = self.quit().await;
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let opts = Arc::new(parse_args());
    let corpus = Arc::new(load(&opts.dirs, &opts.from, &opts.rcpt));
    if corpus.is_empty() {
        eprintln!("milter_load: no messages found");
        std::process::exit(1);
    }
    let total = match (opts.messages, opts.seconds) {
        (Some(n), _) => n,
        (None, Some(_)) => usize::MAX / 2,
        (None, None) => corpus.len(),
    };
    let deadline = opts
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let warmup = opts.warmup;
    let next = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let measured_start = Arc::new(Mutex::new(None::<Instant>));

    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (opts, corpus, next, stats, measured_start) = (
            opts.clone(),
            corpus.clone(),
            next.clone(),
            stats.clone(),
            measured_start.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut session: Option<Box<dyn Session>> = None;
            let mut sent_on_session = 0usize;
            let mut local = Stats::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= warmup + total {
                    break;
                }
                if n == warmup {
                    measured_start.lock().await.get_or_insert_with(Instant::now);
                }
                if session.is_none()
                    || (opts.per_connection > 0 && sent_on_session >= opts.per_connection)
                {
                    if let Some(s) = session.take() {
                        s.close().await;
                    }
                    let mut s = match open(&opts).await {
                        Ok(s) => s,
                        Err(e) => {
                            local.errors += 1;
                            local.first_error.get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    match s.start(opts.client_ip).await {
                        Ok(None) => {}
                        Ok(Some(early)) => {
                            // The whole connection was answered at connect/HELO.
                            if n >= warmup {
                                *local.kinds.entry(kind(&early)).or_default() += 1;
                                local.latencies.push(Duration::ZERO);
                            }
                            continue;
                        }
                        Err(e) => {
                            local.errors += 1;
                            local.first_error.get_or_insert(e);
                            continue;
                        }
                    }
                    session = Some(s);
                    sent_on_session = 0;
                }
                let m = &corpus[n % corpus.len()];
                let t = Instant::now();
                let result = session.as_mut().unwrap().send(m).await;
                let took = t.elapsed();
                sent_on_session += 1;
                match result {
                    Ok(o) => {
                        if n >= warmup {
                            local.latencies.push(took);
                            *local.kinds.entry(kind(&o)).or_default() += 1;
                            local.progress += u64::from(o.progress);
                            for m in &o.modifications {
                                let k = match m {
                                    Reply::AddHeader { .. } => "add header",
                                    Reply::InsHeader { .. } => "insert header",
                                    Reply::ChgHeader { value, .. } if value.is_empty() => {
                                        "delete header"
                                    }
                                    Reply::ChgHeader { .. } => "change header",
                                    Reply::Quarantine(_) => "quarantine",
                                    Reply::AddRcpt(_) | Reply::AddRcptPar { .. } => "add rcpt",
                                    Reply::DelRcpt(_) => "delete rcpt",
                                    Reply::ChgFrom { .. } => "change from",
                                    Reply::ReplBody(_) => "replace body",
                                    _ => "other",
                                };
                                *local.modifications.entry(k).or_default() += 1;
                            }
                        }
                    }
                    Err(e) => {
                        local.errors += 1;
                        local.first_error.get_or_insert(e);
                        session = None;
                    }
                }
            }
            if let Some(s) = session.take() {
                s.close().await;
            }
            let mut s = stats.lock().await;
            s.latencies.extend(local.latencies);
            for (k, v) in local.kinds {
                *s.kinds.entry(k).or_default() += v;
            }
            for (k, v) in local.modifications {
                *s.modifications.entry(k).or_default() += v;
            }
            s.progress += local.progress;
            s.errors += local.errors;
            if s.first_error.is_none() {
                s.first_error = local.first_error;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = measured_start
        .lock()
        .await
        .map(|t| t.elapsed())
        .unwrap_or_default();
    let mut s = std::mem::take(&mut *stats.lock().await);
    s.latencies.sort();
    let done = s.latencies.len();
    let rate = if elapsed.is_zero() {
        0.0
    } else {
        done as f64 / elapsed.as_secs_f64()
    };
    let (p50, p90, p99, max) = (
        percentile(&s.latencies, 0.50),
        percentile(&s.latencies, 0.90),
        percentile(&s.latencies, 0.99),
        s.latencies.last().copied().unwrap_or_default(),
    );
    if opts.json {
        let kinds: Vec<String> = s
            .kinds
            .iter()
            .map(|(k, v)| format!("\"{}\":{v}", k.replace('"', "'")))
            .collect();
        let mods: Vec<String> = s
            .modifications
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        println!(
            "{{\"target\":\"{}\",\"concurrency\":{},\"messages\":{done},\"seconds\":{:.3},\"messages_per_second\":{rate:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"replies\":{{{}}},\"modifications\":{{{}}},\"progress\":{},\"errors\":{}}}",
            opts.connect,
            opts.concurrency,
            elapsed.as_secs_f64(),
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max),
            kinds.join(","),
            mods.join(","),
            s.progress,
            s.errors
        );
    } else {
        println!(
            "target {}  concurrency {}  corpus {} files",
            opts.connect,
            opts.concurrency,
            corpus.len()
        );
        println!(
            "messages {done} in {:.2}s: {rate:.1} msg/s",
            elapsed.as_secs_f64()
        );
        println!(
            "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max)
        );
        println!("replies:");
        for (k, v) in &s.kinds {
            println!("  {k:<20} {v}");
        }
        if !s.modifications.is_empty() {
            println!("modifications:");
            for (k, v) in &s.modifications {
                println!("  {k:<20} {v}");
            }
        }
        if s.progress > 0 {
            println!("progress packets: {}", s.progress);
        }
        println!("errors: {}", s.errors);
    }
    if let Some(e) = s.first_error {
        eprintln!("milter_load: first error: {e}");
    }
    if s.errors > 0 && done == 0 {
        std::process::exit(1);
    }
}
