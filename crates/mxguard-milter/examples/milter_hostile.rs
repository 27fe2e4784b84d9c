//! Hostile milter load: N sessions at once each send one hostile message
//! (or a macro flood), the way Postfix would pass it on, while a few other
//! sessions keep sending ordinary messages; reports how each hostile session
//! ended and whether every ordinary message got its answer. With
//! `bench/milter-hostile.sh`, which samples the daemon's RSS meanwhile, it is
//! the memory benchmark of issue 11 (docs/BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p mxguard-milter --example milter_hostile -- \
//!     --connect 127.0.0.1:11336 --sessions 50
//! ```
//!
//! Shapes (`--shapes`, comma-separated, round-robin over the sessions):
//!
//! | shape | what |
//! |---|---|
//! | `tiny10`, `tiny45` | 10 MB / 45 MB of tiny headers, each name unique (`H123: x`) |
//! | `parts500k` | one multipart of 500,000 small parts, 42.8 MB |
//! | `nested100k` | 100,000 multiparts nested in each other, 8.3 MB |
//! | `rfc822` | `Content-Type:message/rfc822` + blank line, 33,000 times over (depth 33,000) |
//! | `macros` | `--macro-mb` MB of uniquely named macros, then an ordinary message |
//!
//! Other options: `--normal-sessions N` (4) ordinary sessions sending
//! `--dir` messages (default `$MXGUARD_TESTDATA/corpus-dev/ham`, else a
//! built-in one) one after the other until the hostile sessions are done;
//! `--timeout S` (300) the longest wait for one answer; `--json`.
//!
//! Exit status: 0 when every ordinary message was answered, 1 otherwise.

use mxguard_milter::client::{BODY_CHUNK, Client, MessageSpec, Outcome, postfix_offer};
use mxguard_milter::codec::{Command, Reply, cmd};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const ALL_SHAPES: &[&str] = &[
    "tiny10",
    "tiny45",
    "parts500k",
    "nested100k",
    "rfc822",
    "macros",
];

struct Options {
    connect: String,
    sessions: usize,
    shapes: Vec<String>,
    normal_sessions: usize,
    dir: Option<PathBuf>,
    macro_mb: usize,
    timeout: Duration,
    json: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: milter_hostile [--connect host:port] [--sessions N] [--shapes a,b,...] \
         [--normal-sessions N] [--dir DIR] [--macro-mb N] [--timeout S] [--json]\n\
         shapes: {}",
        ALL_SHAPES.join(",")
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        connect: "127.0.0.1:11336".into(),
        sessions: 50,
        shapes: ALL_SHAPES.iter().map(|s| s.to_string()).collect(),
        normal_sessions: 4,
        dir: None,
        macro_mb: 50,
        timeout: Duration::from_secs(300),
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--connect" => o.connect = val(),
            "--sessions" => o.sessions = val().parse().unwrap_or_else(|_| usage()),
            "--shapes" => {
                o.shapes = val()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "--normal-sessions" => o.normal_sessions = val().parse().unwrap_or_else(|_| usage()),
            "--dir" => o.dir = Some(PathBuf::from(val())),
            "--macro-mb" => o.macro_mb = val().parse().unwrap_or_else(|_| usage()),
            "--timeout" => {
                o.timeout = Duration::from_secs(val().parse().unwrap_or_else(|_| usage()))
            }
            "--json" => o.json = true,
            _ => usage(),
        }
    }
    if o.shapes.is_empty() || o.shapes.iter().any(|s| !ALL_SHAPES.contains(&s.as_str())) {
        usage();
    }
    o
}

/// A hostile message: headers made on the fly (millions of them would cost
/// the load generator more than the daemon), and a shared body.
#[derive(Clone)]
enum Headers {
    /// `H<n>: x` until this many bytes.
    Tiny(usize),
    Fixed(Vec<(String, Vec<u8>)>),
}

#[derive(Clone)]
struct Hostile {
    headers: Headers,
    body: Arc<Vec<u8>>,
}

fn build(shape: &str) -> Option<Hostile> {
    let fixed = |h: &[(&str, &str)], body: Vec<u8>| Hostile {
        headers: Headers::Fixed(
            h.iter()
                .map(|(n, v)| (n.to_string(), format!(" {v}").into_bytes()))
                .collect(),
        ),
        body: Arc::new(body),
    };
    Some(match shape {
        "tiny10" => Hostile {
            headers: Headers::Tiny(10_000_000),
            body: Arc::new(b"x\r\n".to_vec()),
        },
        "tiny45" => Hostile {
            headers: Headers::Tiny(45_000_000),
            body: Arc::new(b"x\r\n".to_vec()),
        },
        "parts500k" => {
            let mut body = Vec::with_capacity(43_000_000);
            for i in 0..500_000 {
                body.extend_from_slice(
                    format!(
                        "--b\r\nContent-Type: text/plain\r\n\r\npart {i:06} of a very long multipart message\r\n"
                    )
                    .as_bytes(),
                );
            }
            body.extend_from_slice(b"--b--\r\n");
            fixed(
                &[
                    ("Subject", "500k parts"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "multipart/mixed; boundary=\"b\""),
                ],
                body,
            )
        }
        "nested100k" => {
            let mut body = Vec::with_capacity(8_500_000);
            for i in 1..=100_000 {
                body.extend_from_slice(
                    format!(
                        "--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n",
                        i - 1
                    )
                    .as_bytes(),
                );
            }
            body.extend_from_slice(b"x\r\n");
            fixed(
                &[
                    ("Subject", "100k nested multiparts"),
                    ("MIME-Version", "1.0"),
                    ("Content-Type", "multipart/mixed; boundary=b0"),
                ],
                body,
            )
        }
        "rfc822" => {
            let mut body = b"Content-Type:message/rfc822\r\n\r\n".repeat(32_999);
            body.extend_from_slice(b"x\r\n");
            fixed(&[("Content-Type", "message/rfc822")], body)
        }
        _ => return None,
    })
}

fn ordinary() -> MessageSpec {
    MessageSpec::from_raw(
        "sender@example.com",
        &["user@example.org"],
        b"From: Alice <alice@example.com>\nTo: user@example.org\nSubject: lunch on Friday?\n\
          Date: Mon, 1 Dec 2025 10:00:00 +0000\nMessage-ID: <lunch@example.com>\n\n\
          Hi, are we still on for lunch on Friday? Same place as last time.\n-- Alice\n",
    )
}

fn load_dir(dir: &std::path::Path) -> Vec<MessageSpec> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .iter()
        .take(500)
        .filter_map(|p| std::fs::read(p).ok())
        .map(|raw| MessageSpec::from_raw("sender@example.com", &["user@example.org"], &raw))
        .collect()
}

fn label(r: &Reply) -> String {
    match r {
        Reply::Accept => "accept".into(),
        Reply::Continue => "continue".into(),
        Reply::Reject => "reject".into(),
        Reply::Tempfail => "tempfail".into(),
        Reply::Discard => "discard".into(),
        Reply::ReplyCode(text) => format!("replycode {}", text.get(..9).unwrap_or(text)),
        other => format!("{other:?}"),
    }
}

type Conn = Client<TcpStream>;

async fn open(addr: &str) -> Result<Conn, String> {
    let mut c = Client::connect_tcp(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    c.negotiate(postfix_offer())
        .await
        .map_err(|e| format!("negotiate: {e}"))?;
    let ip = "192.0.2.10".parse().unwrap();
    for r in [
        c.connect("client.example", ip, 40000).await,
        c.helo("client.example").await,
    ] {
        match r.map_err(|e| e.to_string())? {
            Some(r) if r.reply != Reply::Continue => {
                return Err(format!("answered before MAIL: {:?}", r.reply));
            }
            _ => {}
        }
    }
    Ok(c)
}

/// Writes commands in batches of about 64 KiB, like a busy MTA; reads an
/// answer after each when the milter gives one.
struct Batch {
    buf: Vec<u8>,
}

impl Batch {
    async fn push(&mut self, c: &mut Conn, command: Command) -> Result<Option<Reply>, String> {
        if c.skips(command.code()) {
            return Ok(None);
        }
        if c.answers(command.code()) {
            self.flush(c).await?;
            return match c.call(&command).await.map_err(|e| e.to_string())? {
                Some(r) if r.reply != Reply::Continue => Ok(Some(r.reply)),
                _ => Ok(None),
            };
        }
        command.encode(&mut self.buf);
        if self.buf.len() >= 64 * 1024 {
            self.flush(c).await?;
        }
        Ok(None)
    }

    async fn flush(&mut self, c: &mut Conn) -> Result<(), String> {
        if !self.buf.is_empty() {
            c.send_raw(&self.buf).await.map_err(|e| e.to_string())?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// MAIL to end of message with a hostile message; the final reply.
async fn send_hostile(c: &mut Conn, m: &Hostile) -> Result<Reply, String> {
    c.macros(cmd::MAIL, &[("{mail_addr}", "sender@example.com")])
        .await
        .map_err(|e| e.to_string())?;
    for command in [
        Command::Mail(vec!["<sender@example.com>".into()]),
        Command::Rcpt(vec!["<user@example.org>".into()]),
        Command::Data,
    ] {
        if let Some(r) = c.call(&command).await.map_err(|e| e.to_string())?
            && r.reply != Reply::Continue
        {
            return Ok(r.reply);
        }
    }
    let mut batch = Batch {
        buf: Vec::with_capacity(128 * 1024),
    };
    match &m.headers {
        Headers::Tiny(total) => {
            let (mut sent, mut i) = (0usize, 0u64);
            while sent < *total {
                let name = format!("H{i}");
                sent += name.len() + 4;
                i += 1;
                let h = Command::Header {
                    name,
                    value: b" x".to_vec(),
                };
                if let Some(r) = batch.push(c, h).await? {
                    return Ok(r);
                }
            }
        }
        Headers::Fixed(list) => {
            for (name, value) in list {
                let h = Command::Header {
                    name: name.clone(),
                    value: value.clone(),
                };
                if let Some(r) = batch.push(c, h).await? {
                    return Ok(r);
                }
            }
        }
    }
    if let Some(r) = batch.push(c, Command::Eoh).await? {
        return Ok(r);
    }
    for chunk in m.body.chunks(BODY_CHUNK) {
        if let Some(r) = batch.push(c, Command::Body(chunk.to_vec())).await? {
            return Ok(r);
        }
    }
    batch.flush(c).await?;
    c.send(&Command::EndOfMessage(Vec::new()))
        .await
        .map_err(|e| e.to_string())?;
    let r = c.read_response().await.map_err(|e| e.to_string())?;
    Ok(r.reply)
}

/// `mb` MB of uniquely named macros, in packets of 1,000, then an ordinary
/// message, whose final reply is returned.
async fn send_macros(c: &mut Conn, mb: usize, session: usize) -> Result<Reply, String> {
    let value = "v".repeat(190);
    let mut sent = 0usize;
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(256 * 1024);
    while sent < mb * 1_000_000 {
        let pairs: Vec<(String, String)> = (0..1000)
            .map(|_| {
                n += 1;
                (format!("{{flood_{session}_{n}}}"), value.clone())
            })
            .collect();
        sent += pairs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>();
        Command::Macro {
            stage: cmd::HELO,
            pairs,
        }
        .encode(&mut buf);
        c.send_raw(&buf).await.map_err(|e| e.to_string())?;
        buf.clear();
    }
    let o: Outcome = c.message(&ordinary()).await.map_err(|e| e.to_string())?;
    Ok(o.reply)
}

#[derive(Default)]
struct Tally {
    replies: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    max_ms: u128,
}

impl Tally {
    fn add(&mut self, r: Result<Reply, String>, took: Duration) {
        self.max_ms = self.max_ms.max(took.as_millis());
        match r {
            Ok(reply) => *self.replies.entry(label(&reply)).or_default() += 1,
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    fn json(&self) -> String {
        let map = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("\"{}\":{v}", k.replace(['"', '\\'], "'")))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{{\"replies\":{{{}}},\"errors\":{{{}}},\"max_ms\":{}}}",
            map(&self.replies),
            map(&self.errors),
            self.max_ms
        )
    }

    fn count(&self) -> u64 {
        self.replies.values().sum::<u64>() + self.errors.values().sum::<u64>()
    }
}

#[tokio::main]
async fn main() {
    let o = Arc::new(parse_args());
    let started = Instant::now();
    let mut built: BTreeMap<String, Hostile> = BTreeMap::new();
    for s in &o.shapes {
        if let Some(h) = build(s) {
            built.insert(s.clone(), h);
        }
    }
    let built = Arc::new(built);
    let normal_dir = o.dir.clone().or_else(|| {
        let base = std::env::var_os("MXGUARD_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/work/shared/testdata"));
        Some(base.join("corpus-dev/ham"))
    });
    let mut normal_msgs = normal_dir.as_deref().map(load_dir).unwrap_or_default();
    if normal_msgs.is_empty() {
        normal_msgs.push(ordinary());
    }
    let normal_msgs = Arc::new(normal_msgs);

    let hostile_done = Arc::new(AtomicBool::new(false));
    let tallies: Arc<Mutex<BTreeMap<String, Tally>>> = Arc::default();
    let normal_tally: Arc<Mutex<Tally>> = Arc::default();
    let unanswered = Arc::new(std::sync::atomic::AtomicU64::new(0));

    let mut normal = Vec::new();
    for w in 0..o.normal_sessions {
        let (o, msgs, done, tally, unanswered) = (
            o.clone(),
            normal_msgs.clone(),
            hostile_done.clone(),
            normal_tally.clone(),
            unanswered.clone(),
        );
        normal.push(tokio::spawn(async move {
            let mut conn: Option<Conn> = None;
            let mut n = w;
            while !done.load(Ordering::Acquire) {
                let t = Instant::now();
                let result = tokio::time::timeout(o.timeout, async {
                    if conn.is_none() {
                        conn = Some(open(&o.connect).await?);
                    }
                    let c = conn.as_mut().ok_or("no connection")?;
                    let out = c
                        .message(&msgs[n % msgs.len()])
                        .await
                        .map_err(|e| e.to_string())?;
                    c.abort().await.map_err(|e| e.to_string())?;
                    Ok::<Reply, String>(out.reply)
                })
                .await
                .unwrap_or_else(|_| Err("no answer within --timeout".to_string()));
                if result.is_err() {
                    conn = None;
                    unanswered.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tally.lock().await.add(result, t.elapsed());
                n += o.normal_sessions.max(1);
            }
        }));
    }

    let mut hostile = Vec::new();
    for i in 0..o.sessions {
        let shape = o.shapes[i % o.shapes.len()].clone();
        let (o, built, tallies) = (o.clone(), built.clone(), tallies.clone());
        hostile.push(tokio::spawn(async move {
            let t = Instant::now();
            let result = tokio::time::timeout(o.timeout, async {
                let mut c = open(&o.connect).await?;
                match built.get(&shape) {
                    Some(m) => send_hostile(&mut c, m).await,
                    None => send_macros(&mut c, o.macro_mb, i).await,
                }
            })
            .await
            .unwrap_or_else(|_| Err("no answer within --timeout".to_string()));
            tallies
                .lock()
                .await
                .entry(shape)
                .or_default()
                .add(result, t.elapsed());
        }));
    }
    for h in hostile {
        let _ = h.await;
    }
    let hostile_secs = started.elapsed().as_secs_f64();
    hostile_done.store(true, Ordering::Release);
    for n in normal {
        let _ = n.await;
    }
    let tallies = tallies.lock().await;
    let normal = normal_tally.lock().await;
    let unanswered = unanswered.load(Ordering::Relaxed);
    if o.json {
        let shapes: Vec<String> = tallies
            .iter()
            .map(|(k, t)| format!("\"{k}\":{}", t.json()))
            .collect();
        println!(
            "{{\"sessions\":{},\"hostile_seconds\":{hostile_secs:.1},\"hostile\":{{{}}},\"normal_sent\":{},\"normal_unanswered\":{unanswered},\"normal\":{}}}",
            o.sessions,
            shapes.join(","),
            normal.count(),
            normal.json()
        );
    } else {
        println!("{} hostile sessions done in {hostile_secs:.1}s", o.sessions);
        for (k, t) in tallies.iter() {
            println!("  {k:<11} {}", t.json());
        }
        println!(
            "ordinary messages: {} sent, {unanswered} unanswered: {}",
            normal.count(),
            normal.json()
        );
    }
    std::process::exit(if unanswered == 0 && normal.count() > 0 {
        0
    } else {
        1
    });
}
