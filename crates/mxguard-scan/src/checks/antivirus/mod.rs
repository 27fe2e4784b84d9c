//! Antivirus through clamd, as rspamd's `antivirus` module does it: each
//! `[antivirus.<name>]` section is one scanner (rspamd's `antivirus {
//! <name> { ... } }` block, same keys). The message, or each of its
//! attachments, goes to clamd with INSTREAM ([`clamd`]); a virus gives the
//! scanner's `symbol` with the signature names as options and, with
//! `action = "reject"`, a forced reject whose SMTP text is `message`.
//!
//! clamd down, restarting, silent or refusing the stream gives
//! `symbol_fail` and, by `on_failure`, either nothing more (the message
//! goes on, the default) or a forced tempfail. Never a hang: every connect,
//! write and read shares the scanner's `timeout`. Failures are counted in
//! the store (`antivirus:fail`) and logged once per burst.
//!
//! Off unless configured: a config without `[antivirus]` builds no check.

pub mod clamd;

use super::{BoxFuture, BuildError, BuildReport, Check, Output, Outputs, Waiting};
use crate::Task;
use clamd::{Failure, Reply, Server};
use futures_util::stream::{self, StreamExt};
use mxguard_core::config::{ByteSize, Config, Millis, Problems, Section};
use mxguard_core::iptable::{IpTable, parse_network};
use mxguard_core::maps::{LineError, MapData, MapFile, MapLimits, logical_lines};
use mxguard_core::{Action, ScanResults, SymbolDef};
use mxguard_message::attachment::Detected;
use mxguard_store::{Counters, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use toml::Spanned;

pub const NAME: &str = "antivirus";
/// Given by the pipeline only if a scanner outlives its own time-out,
/// which its own deadline prevents (see [`Waiting::timeout`] below).
pub const TIMEOUT_SYMBOL: &str = "ANTIVIRUS_TIMEOUT";
/// Parts scanned at most per message and scanner.
pub const MAX_PARTS: usize = 64;
/// Streams in flight at once per message and scanner.
const PARALLEL: usize = 4;
/// A burst of failures is logged once per this period.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What a failed scan does besides `symbol_fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The message goes on (rspamd's behaviour).
    #[default]
    Accept,
    /// A forced soft reject: the sender retries later.
    Tempfail,
}

/// rspamd's `servers`: one string (entries separated by commas) or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Servers {
    One(String),
    Many(Vec<String>),
}

impl Default for Servers {
    fn default() -> Self {
        Servers::Many(Vec::new())
    }
}

impl Servers {
    pub fn parse(&self) -> Result<Vec<Server>, String> {
        let list = match self {
            Servers::One(s) => Server::parse_list(s)?,
            Servers::Many(v) => {
                let mut out = Vec::new();
                for s in v {
                    out.extend(Server::parse_list(s)?);
                }
                out
            }
        };
        if list.is_empty() {
            return Err(
                "no servers: give clamd's unix socket (\"/run/clamav/clamd.ctl\") \
                 or host:port (\"127.0.0.1:3310\"), or remove the section"
                    .to_string(),
            );
        }
        Ok(list)
    }
}

/// `[antivirus.<name>]`: one scanner, rspamd's keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerConfig {
    /// `clamav`, the only protocol spoken.
    #[serde(rename = "type")]
    pub kind: String,
    pub servers: Servers,
    /// Given on a virus, with the signature names as options.
    pub symbol: String,
    /// Given when no clamd answered; default `<symbol>_FAIL`.
    pub symbol_fail: Option<String>,
    /// Weight of `symbol`.
    pub score: f64,
    /// Forced on a virus (`reject`, or any action name).
    pub action: Option<String>,
    /// SMTP text of the forced action: `${SCANNER}` is the section's
    /// name, `${VIRUS}` the signature names.
    pub message: String,
    /// Clients (IPs, networks) whose mail is not scanned, and signature
    /// names whose hits are ignored; one per line.
    pub whitelist: Option<Spanned<PathBuf>>,
    /// Larger messages (or parts) are not sent.
    pub max_size: ByteSize,
    /// Each attachment alone (true) or the whole message (false).
    pub scan_mime_parts: bool,
    /// With `scan_mime_parts`: the message's text and HTML bodies too.
    pub scan_text_mime: bool,
    /// With `scan_mime_parts`: images too.
    pub scan_image_mime: bool,
    /// For everything about one message: connects, writes, reads, retries.
    pub timeout: Millis,
    /// Further attempts after a connection failure, cycling through
    /// `servers`.
    pub retransmits: u32,
    pub on_failure: OnFailure,
    /// Log clean results too (info level).
    pub log_clean: bool,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            kind: "clamav".to_string(),
            servers: Servers::default(),
            symbol: "CLAM_VIRUS".to_string(),
            symbol_fail: None,
            score: 10.0,
            action: None,
            message: "${SCANNER}: virus found: \"${VIRUS}\"".to_string(),
            whitelist: None,
            max_size: ByteSize(20_000_000),
            scan_mime_parts: true,
            scan_text_mime: false,
            scan_image_mime: false,
            timeout: Millis(5_000),
            retransmits: 2,
            on_failure: OnFailure::Accept,
            log_clean: false,
        }
    }
}

impl ScannerConfig {
    pub fn symbol_fail(&self) -> String {
        self.symbol_fail
            .clone()
            .unwrap_or_else(|| format!("{}_FAIL", self.symbol))
    }
}

/// `[antivirus]`: the scanners by name. Empty by default: no clamd needed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AntivirusConfig(pub BTreeMap<String, ScannerConfig>);

fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl Section for AntivirusConfig {
    const KEY: &'static str = "antivirus";

    fn validate(&self, problems: &mut Problems) {
        for (name, s) in &self.0 {
            if s.kind != "clamav" {
                problems.at(
                    format!("{name}.type"),
                    format!(
                        "type `{}` is not supported: mxguard speaks clamd's protocol only, write type = \"clamav\"",
                        s.kind
                    ),
                );
            }
            if let Err(e) = s.servers.parse() {
                problems.at(format!("{name}.servers"), e);
            }
            for (key, sym) in [
                ("symbol", s.symbol.clone()),
                ("symbol_fail", s.symbol_fail()),
            ] {
                if !valid_symbol(&sym) {
                    problems.at(
                        format!("{name}.{key}"),
                        format!(
                            "symbol name `{sym}` must be 1-128 letters, digits, `_`, `-` or `.`, like CLAM_VIRUS"
                        ),
                    );
                }
            }
            problems.finite_score(format!("{name}.score"), Some(s.score));
            if let Some(a) = &s.action
                && Action::parse(a).is_none()
            {
                problems.at(
                    format!("{name}.action"),
                    format!(
                        "unknown action `{a}`, expected reject, soft reject, add header, discard or quarantine"
                    ),
                );
            }
            if s.timeout.0 == 0 || s.timeout.0 > 600_000 {
                problems.at(
                    format!("{name}.timeout"),
                    "must be between 1ms and 10 minutes, like \"5s\"",
                );
            }
            if s.retransmits > 16 {
                problems.at(format!("{name}.retransmits"), "at most 16");
            }
        }
    }
}

/// The whitelist map: IP addresses and networks (mail from them is not
/// scanned) and signature names (their hits are ignored, as rspamd does).
#[derive(Debug, Default)]
pub struct Whitelist {
    clients: IpTable<()>,
    signatures: HashSet<String>,
}

impl MapData for Whitelist {
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
        let mut list = Whitelist::default();
        for (line, content) in logical_lines(text) {
            let entry = content.split_whitespace().next().unwrap_or_default();
            if let Ok(net) = parse_network(entry) {
                list.clients.insert(net, ());
            } else if entry.bytes().all(|b| b.is_ascii_graphic()) && !entry.is_empty() {
                list.signatures.insert(entry.to_ascii_lowercase());
            } else {
                errors.push(LineError {
                    file: path.to_path_buf(),
                    line,
                    message: format!("`{entry}` is neither an IP/network nor a signature name"),
                });
            }
        }
        list
    }
}

impl Whitelist {
    pub fn client(&self, ip: IpAddr) -> bool {
        self.clients.lookup(ip).is_some()
    }

    pub fn signature(&self, name: &str) -> bool {
        self.signatures.contains(&name.to_ascii_lowercase())
    }
}

/// Logs the first failure of a burst, and how many followed, once per
/// [`LOG_EVERY`]: clamd down must not flood the log at every message.
#[derive(Default)]
struct BurstLog {
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

impl BurstLog {
    fn failed(&self, scanner: &str, what: &str) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        if s.0.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            let more = std::mem::take(&mut s.1);
            s.0 = Some(now);
            drop(s);
            if more > 0 {
                tracing::warn!(
                    "antivirus {scanner}: {what} ({more} more failures since the last report)"
                );
            } else {
                tracing::warn!("antivirus {scanner}: {what}");
            }
        } else {
            s.1 += 1;
            tracing::debug!("antivirus {scanner}: {what}");
        }
    }
}

/// One configured scanner, ready.
struct Scanner {
    name: String,
    servers: Vec<Server>,
    symbol: String,
    score: f64,
    symbol_fail: String,
    action: Option<Action>,
    message: String,
    whitelist: Option<MapFile<Whitelist>>,
    max_size: u64,
    scan_mime_parts: bool,
    scan_text_mime: bool,
    scan_image_mime: bool,
    timeout: Duration,
    attempts: usize,
    on_failure: OnFailure,
    log_clean: bool,
    /// Where the next stream starts in `servers`, so load spreads.
    next: AtomicUsize,
    log: BurstLog,
}

/// What one scanner found in one message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub viruses: Vec<String>,
    pub failures: Vec<String>,
    pub scanned: usize,
}

/// The antivirus check: every `[antivirus.*]` scanner, side by side.
pub struct Antivirus {
    scanners: Vec<Scanner>,
    counters: Option<Counters>,
}

impl Antivirus {
    /// `None` when no scanner is configured.
    pub fn new(
        config: &Config,
        store: Option<Arc<dyn Store>>,
        report: &mut BuildReport,
    ) -> Option<Antivirus> {
        let limits = MapLimits::of(&config.scan);
        // A scanner must stop itself (and give its own symbol_fail and
        // on_failure) before the scan's deadline cuts it off.
        let cap = config.scan.scan_timeout.as_duration().mul_f64(0.9);
        let mut scanners = Vec::new();
        for (name, c) in &config.section::<AntivirusConfig>().0 {
            let Ok(servers) = c.servers.parse() else {
                // The loader reported it.
                continue;
            };
            let whitelist = match &c.whitelist {
                None => None,
                Some(path) => match MapFile::<Whitelist>::load(path.get_ref(), limits) {
                    Ok((m, errs)) => {
                        report.line_errors.extend(errs);
                        Some(m)
                    }
                    Err(message) => {
                        report.errors.push(BuildError {
                            key: format!("antivirus.{name}.whitelist"),
                            span: Some(path.span()),
                            message,
                        });
                        continue;
                    }
                },
            };
            scanners.push(Scanner {
                name: name.clone(),
                attempts: c.retransmits as usize + 1,
                servers,
                symbol: c.symbol.clone(),
                score: c.score,
                symbol_fail: c.symbol_fail(),
                action: c.action.as_deref().and_then(Action::parse),
                message: c.message.clone(),
                whitelist,
                max_size: c.max_size.0,
                scan_mime_parts: c.scan_mime_parts,
                scan_text_mime: c.scan_text_mime,
                scan_image_mime: c.scan_image_mime,
                timeout: c.timeout.as_duration().min(cap),
                on_failure: c.on_failure,
                log_clean: c.log_clean,
                next: AtomicUsize::new(0),
                log: BurstLog::default(),
            });
        }
        if scanners.is_empty() {
            return None;
        }
        Some(Antivirus {
            scanners,
            counters: store.map(Counters::new),
        })
    }

    /// Counted behind the answer, like the scan service's own counters.
    fn count(&self, name: &'static str) {
        if let Some(c) = &self.counters
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let c = c.clone();
            rt.spawn(async move {
                let _ = c.incr_relaxed(name, 1).await;
            });
        }
    }
}

/// The bytes one scanner sends for a message: the whole message, or its
/// parts as rspamd's `scan_mime_parts` picks them.
fn streams<'t>(s: &Scanner, task: &'t Task<'_>) -> Vec<&'t [u8]> {
    if !s.scan_mime_parts {
        return vec![task.raw];
    }
    let mut out: Vec<&[u8]> = Vec::new();
    if s.scan_text_mime {
        let mut seen = HashSet::new();
        for part in task.message.text_bodies().chain(task.message.html_bodies()) {
            let bytes = part.contents();
            if seen.insert(bytes.as_ptr()) {
                out.push(bytes);
            }
        }
    }
    for a in task.attachments() {
        // Scanned through their own attachments, listed after them.
        if a.declared_type
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("message/"))
        {
            continue;
        }
        // Only what really is an image: a program declared image/png is sent.
        let image = matches!(a.detected, Detected::Png | Detected::Jpeg | Detected::Gif);
        if image && !s.scan_image_mime {
            continue;
        }
        out.push(a.bytes);
    }
    out.retain(|b| !b.is_empty());
    out
}

impl Scanner {
    /// One stream, trying the servers in turn on connection failures.
    async fn scan_one(&self, data: &[u8], deadline: Instant) -> Result<Reply, Failure> {
        let n = self.servers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = Failure::Timeout;
        for attempt in 0..self.attempts {
            let server = &self.servers[(start + attempt) % n];
            match clamd::scan(server, data, deadline).await {
                Ok(reply) => return Ok(reply),
                // Out of time: no server could answer now.
                Err(Failure::Timeout) => return Err(Failure::Timeout),
                Err(e) => {
                    tracing::debug!("antivirus {}: {server}: {e}", self.name);
                    last = e;
                }
            }
            if Instant::now() >= deadline {
                return Err(Failure::Timeout);
            }
        }
        Err(last)
    }

    async fn scan(&self, task: &Task<'_>) -> Found {
        let mut found = Found::default();
        if let (Some(wl), Some(ip)) = (&self.whitelist, task.envelope.ip)
            && wl.get().client(ip)
        {
            return found;
        }
        let mut parts = streams(self, task);
        parts.retain(|p| p.len() as u64 <= self.max_size);
        parts.truncate(MAX_PARTS);
        if parts.is_empty() {
            return found;
        }
        let deadline = Instant::now() + self.timeout;
        // Made before streaming: a closure inside the stream's type would
        // not be `Send` for every lifetime the scheduler needs.
        let pending: Vec<_> = parts
            .into_iter()
            .map(|p| self.scan_one(p, deadline))
            .collect();
        let replies: Vec<Result<Reply, Failure>> = stream::iter(pending)
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let whitelist = self.whitelist.as_ref().map(MapFile::get);
        for r in replies {
            match r {
                Ok(Reply::Clean) => found.scanned += 1,
                Ok(Reply::Found(name)) => {
                    found.scanned += 1;
                    if whitelist.as_ref().is_some_and(|w| w.signature(&name)) {
                        tracing::info!("antivirus {}: {name} is whitelisted", self.name);
                    } else if !found.viruses.contains(&name) {
                        found.viruses.push(name);
                    }
                }
                Ok(Reply::SizeLimit) => found.failures.push(
                    "clamd refused the stream: larger than its StreamMaxLength \
                     (raise it in clamd.conf or lower max_size)"
                        .to_string(),
                ),
                Ok(Reply::Error(e)) => found.failures.push(format!("clamd: {e}")),
                Err(Failure::Timeout) => found.failures.push(format!(
                    "no clamd answered within {} ms",
                    self.timeout.as_millis()
                )),
                Err(e) => found.failures.push(e.to_string()),
            }
        }
        found
    }

    fn message(&self, viruses: &[String]) -> String {
        self.message
            .replace("${SCANNER}", &self.name)
            .replace("${VIRUS}", &viruses.join(", "))
    }
}

impl Check for Antivirus {
    fn name(&self) -> &'static str {
        NAME
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let mut defs = vec![SymbolDef::new(
            TIMEOUT_SYMBOL,
            0.0,
            "antivirus",
            "An antivirus scan outlived the scan's deadline",
        )];
        for s in &self.scanners {
            defs.push(SymbolDef::new(
                &s.symbol,
                s.score,
                "antivirus",
                "A virus was found",
            ));
            defs.push(SymbolDef::new(
                &s.symbol_fail,
                0.0,
                "antivirus",
                "The antivirus scan failed (clamd down, slow or refusing)",
            ));
        }
        defs
    }

    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

impl Waiting for Antivirus {
    /// Each scanner stops itself at its own `timeout` and then gives its
    /// `symbol_fail` (and its `on_failure`); the pipeline's limit is a
    /// little later, a backstop only.
    fn timeout(&self) -> Duration {
        self.scanners
            .iter()
            .map(|s| s.timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_millis(500)
    }

    fn timeout_symbol(&self) -> &'static str {
        TIMEOUT_SYMBOL
    }

    fn run<'a>(&'a self, task: &'a Task<'_>, _deps: Outputs) -> BoxFuture<'a, Output> {
        Box::pin(async move {
            let all = futures_util::future::join_all(self.scanners.iter().map(|s| s.scan(task)));
            let mut results = ScanResults::default();
            for (s, found) in self.scanners.iter().zip(all.await) {
                if !found.viruses.is_empty() {
                    self.count("antivirus:virus");
                    tracing::info!(
                        queue_id = task.envelope.queue_id.as_deref().unwrap_or("-"),
                        "antivirus {}: found {}",
                        s.name,
                        found.viruses.join(", ")
                    );
                    results.insert(&s.symbol, found.viruses.clone());
                    if let Some(action) = s.action {
                        results.force(action, Some(s.message(&found.viruses)), &s.symbol);
                    }
                }
                if !found.failures.is_empty() {
                    self.count("antivirus:fail");
                    s.log.failed(&s.name, &found.failures[0]);
                    results.insert(&s.symbol_fail, vec![found.failures[0].clone()]);
                    if s.on_failure == OnFailure::Tempfail && found.viruses.is_empty() {
                        results.force(
                            Action::SoftReject,
                            Some(format!(
                                "{}: virus scan unavailable, try again later",
                                s.name
                            )),
                            &s.symbol_fail,
                        );
                    }
                } else if found.viruses.is_empty() && found.scanned > 0 {
                    self.count("antivirus:clean");
                    if s.log_clean {
                        tracing::info!("antivirus {}: clean", s.name);
                    }
                }
            }
            Output::new(results)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;
    use mxguard_core::config::load_str;

    fn antivirus(extra: &str) -> Antivirus {
        let text = format!("[antivirus.clamav]\nservers = \"/run/clamav/clamd.ctl\"\n{extra}\n");
        let config = load_str(&text, "t.toml", &crate::sections()).unwrap();
        let mut report = BuildReport::default();
        let av = Antivirus::new(&config, None, &mut report).unwrap();
        assert!(report.errors.is_empty());
        av
    }

    const MSG: &[u8] = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
        --B\r\nContent-Type: text/plain\r\n\r\nbody text\r\n\
        --B\r\nContent-Type: image/png; name=a.png\r\n\r\n\x89PNG\r\n\x1a\nrest\r\n\
        --B\r\nContent-Type: image/png; name=b.png\r\n\r\nMZ not a png\r\n\
        --B\r\nContent-Type: application/octet-stream; name=c.bin\r\n\r\nbinary\r\n\
        --B--\r\n";

    fn picked(av: &Antivirus) -> Vec<Vec<u8>> {
        let env = Envelope::default();
        let task = Task::new(&env, MSG, 1 << 20);
        streams(&av.scanners[0], &task)
            .into_iter()
            .map(|b| b.to_vec())
            .collect()
    }

    #[test]
    fn which_parts_are_sent() {
        let contains = |v: &[Vec<u8>], needle: &[u8]| {
            v.iter().any(|b| memchr::memmem::find(b, needle).is_some())
        };
        let parts = picked(&antivirus(""));
        // The real PNG is skipped, the program declared as one is not.
        assert!(!contains(&parts, b"\x89PNG"), "{parts:?}");
        assert!(contains(&parts, b"MZ not a png"));
        assert!(contains(&parts, b"binary"));
        assert!(!contains(&parts, b"body text"));
        let parts = picked(&antivirus("scan_text_mime = true\nscan_image_mime = true"));
        assert!(contains(&parts, b"\x89PNG"));
        assert!(contains(&parts, b"body text"));
        let parts = picked(&antivirus("scan_mime_parts = false"));
        assert_eq!(parts, [MSG.to_vec()]);
    }

    #[test]
    fn the_reply_text_and_the_deadline() {
        let av = antivirus("");
        let s = &av.scanners[0];
        assert_eq!(
            s.message(&["A.B".into(), "C".into()]),
            "clamav: virus found: \"A.B, C\""
        );
        assert_eq!(s.symbol_fail, "CLAM_VIRUS_FAIL");
        assert_eq!(s.timeout, Duration::from_secs(5));
        // Never past the scan's deadline.
        let text = "[scan]\nscan_timeout = \"2s\"\n[antivirus.clamav]\nservers = \"/s\"\ntimeout = \"9s\"\n";
        let config = load_str(text, "t.toml", &crate::sections()).unwrap();
        let av = Antivirus::new(&config, None, &mut BuildReport::default()).unwrap();
        assert_eq!(av.scanners[0].timeout, Duration::from_millis(1800));
        assert!(av.timeout() < Duration::from_millis(2400));
    }

    #[test]
    fn whitelist_lines() {
        let mut errors = Vec::new();
        let w = Whitelist::parse(
            Path::new("av.wl"),
            "192.0.2.0/24\n2001:db8::1\nEicar-Test-Signature\n# comment\n",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(w.client("192.0.2.9".parse().unwrap()));
        assert!(!w.client("198.51.100.1".parse().unwrap()));
        assert!(w.client("2001:db8::1".parse().unwrap()));
        assert!(w.signature("eicar-test-signature"));
        assert!(!w.signature("Other"));
    }

    #[test]
    fn no_section_no_check() {
        let config = load_str("", "t.toml", &crate::sections()).unwrap();
        assert!(Antivirus::new(&config, None, &mut BuildReport::default()).is_none());
    }
}
