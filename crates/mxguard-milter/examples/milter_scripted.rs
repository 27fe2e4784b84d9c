//! A milter whose verdicts the messages themselves choose, for checking the
//! server against a real Postfix by hand (see scripts/postfix-env.sh):
//!
//! ```text
//! cargo run -p mxguard-milter --example milter_scripted -- 127.0.0.1:11336
//! swaks --server 127.0.0.1:25 --to root@localhost \
//!   --header "X-Test-Action: add header" --header "X-Test-Score: 7.5"
//! ```
//!
//! Headers read: `X-Test-Action` (an action name), `X-Test-Score`,
//! `X-Test-Message` (`\n` for multi-line), `X-Test-Sleep` (milliseconds),
//! `X-Test-Symbols` (extra symbols, `NAME` or `NAME:opt|opt`, comma-separated).
//! Early checks: sender `spammer@bad.example` is rejected at MAIL FROM,
//! recipient `postmaster@localhost` at RCPT, HELO `bad.helo` at HELO.
//! Logs go to stderr (`RUST_LOG=debug` shows each packet decision).

use mxguard_core::config::MilterConfig;
use mxguard_core::{Action, Envelope, SmtpStage, SymbolResult, Verdict};
use mxguard_milter::{MilterServer, Scanner};
use mxguard_scan::{BoxFuture, MilterBlock, ScanInput, ScanOutcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

struct Scripted;

fn verdict(action: Action, score: f64, message: Option<String>) -> Verdict {
    let mut symbols = BTreeMap::new();
    symbols.insert(
        "SCRIPTED".to_string(),
        SymbolResult {
            name: "SCRIPTED".into(),
            score,
            description: None,
            options: vec!["test".into()],
        },
    );
    let mut messages = BTreeMap::new();
    if let Some(m) = message {
        messages.insert("smtp_message".to_string(), m);
    }
    Verdict {
        action,
        score,
        required_score: 15.0,
        symbols,
        messages,
        is_skipped: false,
        forced_by: None,
        add_headers: Vec::new(),
    }
}

fn header<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(raw).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Scanner for Scripted {
    fn early(&self, stage: SmtpStage, env: &Envelope) -> Option<Verdict> {
        let blocked = match stage {
            SmtpStage::Helo => env.helo.as_deref() == Some("bad.helo"),
            SmtpStage::MailFrom => env.mail_from.as_deref() == Some("spammer@bad.example"),
            SmtpStage::Rcpt => env.rcpts.last().map(String::as_str) == Some("postmaster@localhost"),
            SmtpStage::Connect => false,
        };
        blocked.then(|| {
            verdict(
                Action::Reject,
                0.0,
                Some(format!("Blocked at {stage:?}\nby the scripted milter")),
            )
        })
    }

    fn scan<'a>(&'a self, input: ScanInput<'a>) -> BoxFuture<'a, ScanOutcome> {
        Box::pin(async move {
            let verdict = scripted(input.envelope, input.raw).await;
            let milter = MilterBlock::for_verdict(
                &MilterConfig::default().headers,
                &verdict,
                input.envelope,
                input.mta_name,
            );
            ScanOutcome { verdict, milter }
        })
    }
}

/// The verdict the message asks for.
async fn scripted(env: &Envelope, raw: &[u8]) -> Verdict {
    tracing::info!(
        "scan: ip={:?} host={:?} helo={:?} from={:?} rcpts={:?} user={:?} qid={:?} bytes={}",
        env.ip,
        env.hostname,
        env.helo,
        env.mail_from,
        env.rcpts,
        env.user,
        env.queue_id,
        raw.len()
    );
    if std::env::var_os("MILTER_SCRIPTED_DUMP").is_some() {
        eprintln!("{}", String::from_utf8_lossy(raw).escape_debug());
    }
    if let Some(ms) = header(raw, "X-Test-Sleep").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let action = header(raw, "X-Test-Action")
        .and_then(Action::parse)
        .unwrap_or(Action::NoAction);
    let score = header(raw, "X-Test-Score")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let message = header(raw, "X-Test-Message").map(|m| m.replace("\\n", "\n"));
    let mut v = verdict(action, score, message);
    for sym in header(raw, "X-Test-Symbols").unwrap_or("").split(',') {
        let (name, opts) = sym.trim().split_once(':').unwrap_or((sym.trim(), ""));
        if name.is_empty() {
            continue;
        }
        v.symbols.insert(
            name.to_string(),
            SymbolResult {
                name: name.to_string(),
                score: 0.0,
                description: None,
                options: opts
                    .split('|')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
        );
    }
    v
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:11336".into());
    let config = MilterConfig {
        listen,
        progress_interval: mxguard_core::config::Millis(1000),
        ..MilterConfig::default()
    };
    let server = match MilterServer::bind(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", config.listen);
            std::process::exit(1);
        }
    };
    eprintln!("milter_scripted: listening on {}", config.listen);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = server.run(Arc::new(Scripted), stop).await {
        eprintln!("milter_scripted: {e}");
    }
}
