//! The one scan service every front end calls (the milter, `mxguard scan`,
//! the coming HTTP API): envelope + bytes in, the [`Verdict`] and rspamd's
//! [`MilterBlock`] out, with history, counters and autolearn recorded here
//! once.
//!
//! CPU and waiting are bounded apart. The CPU phase (parse, prefilter,
//! inline checks) holds one of `cpu_slots` and, on a multi-threaded
//! runtime, leaves the worker through `block_in_place` when the message is
//! big enough to stall it; the waiting phase holds no slot, so a scan
//! waiting 100 ms on DNS does not keep another message from the CPU.

use crate::checks::BoxFuture;
use crate::greylist::ScoreGreylist;
use crate::milter_headers::{AddHeader, MilterBlock};
use crate::record_failures::RecordFailures;
use crate::{Pipeline, Prepared};
use mxguard_auth::arc::ArcVerdict;
use mxguard_auth::seal::ArcChain;
use mxguard_auth::sign::Outbound;
use mxguard_core::shared::Shared;
use mxguard_core::{Action, Envelope, SmtpStage, Verdict};
use mxguard_store::{Counters, History, HistoryRow};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{self, error::TrySendError};

/// From this size up, the CPU phase leaves the tokio worker
/// (`block_in_place`) so other sessions keep being served meanwhile;
/// below it the phase takes tens of microseconds and runs in place.
pub const BLOCK_IN_PLACE_FROM: usize = 32 * 1024;

/// Verdicts waiting to be recorded, at most (each a history row of a
/// few hundred bytes): a second of traffic at the measured rate.
const RECORD_QUEUE: usize = 8192;

/// The most verdicts recorded in one store request.
const RECORD_BATCH: usize = 512;

/// How long the recorder lets verdicts gather before it writes them: the
/// history lags the answers by this much, and a kill -9 may lose it on top
/// of the store's relaxed window (1 s).
const RECORD_GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// One message to scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanInput<'a> {
    pub envelope: &'a Envelope,
    /// The whole message: headers with CRLF line endings, the blank line,
    /// the body.
    pub raw: &'a [u8],
    /// The MTA's host name (Postfix's `j` macro), the authserv-id of
    /// Authentication-Results unless `[milter.headers] authserv_id` is set.
    pub mta_name: Option<&'a str>,
}

/// What a scan gives every front end.
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    pub verdict: Verdict,
    pub milter: MilterBlock,
}

/// What the front ends ask about a message. [`ScanService`] implements it
/// over the pipeline; tests of a front end use fakes.
pub trait MessageScanner: Send + Sync + 'static {
    /// Checks that can decide before DATA (prefilter lists on ip, helo,
    /// from, rcpt). `None` = go on. Called on the async runtime at each of
    /// those stages, so it is quick and does not wait. At
    /// [`SmtpStage::Rcpt`] the recipient being judged is the last one in
    /// `envelope.rcpts`.
    fn early(&self, stage: SmtpStage, envelope: &Envelope) -> Option<Verdict>;

    /// Whether [`MessageScanner::early`] can answer anything at `stage` now;
    /// where it cannot, a front end need not ask (nor wait for its peer).
    /// Fakes answer at every stage unless they say otherwise.
    fn acts_early_at(&self, _stage: SmtpStage) -> bool {
        true
    }

    /// The full scan at end of message.
    fn scan<'a>(&'a self, input: ScanInput<'a>) -> BoxFuture<'a, ScanOutcome>;
}

/// Learns from clear verdicts (the binary's classifier owns the queue).
pub trait Autolearn: Send + Sync {
    fn offer(&self, verdict: &Verdict, raw: &[u8], envelope_sender: Option<&str>);
}

/// Where verdicts are recorded: the store's history and counters.
pub struct Recording {
    pub history: History,
    pub counters: Counters,
    /// Wait for the store before answering (`mxguard scan --record`,
    /// which must not exit with rows unwritten) or record behind the
    /// answer on the runtime (the milter: a commit must not hold up
    /// Postfix).
    pub wait: bool,
}

/// How many CPU phases run now, and the most that ever ran at once.
#[derive(Debug, Default)]
pub struct CpuPhases {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl CpuPhases {
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn enter(&self) -> PhaseGuard<'_> {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        PhaseGuard(self)
    }
}

struct PhaseGuard<'a>(&'a CpuPhases);

impl Drop for PhaseGuard<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct ScanService {
    pipeline: Arc<Shared<Pipeline>>,
    cpu_slots: Semaphore,
    phases: CpuPhases,
    recording: Option<Recording>,
    /// Failed history writes: logged once per burst, the rest counted.
    record_failures: Arc<RecordFailures>,
    autolearn: Option<Arc<dyn Autolearn>>,
    /// Score greylisting (replaced on reload): what a greylist verdict
    /// means once the message was seen before. None: 451 every time.
    greylist: Option<Arc<Shared<ScoreGreylist>>>,
    /// Whether outcomes carry the milter block (off for a front end that
    /// shows only the verdict: formatting it is ~5% of a scan's CPU).
    milter_block: bool,
    /// DKIM signing and ARC sealing (replaced on reload; `None` inside
    /// when neither is enabled).
    signing: Option<Arc<Shared<Option<Outbound>>>>,
    /// The queue of the recorder task (`recorder`), once started; `None`
    /// inside when there was no runtime to start it on.
    recorder: OnceLock<Option<mpsc::Sender<HistoryRow>>>,
    /// Rows dropped at a full recorder queue.
    unrecorded: AtomicU64,
}

impl ScanService {
    /// A service over `pipeline` (replaced on reload) running at most
    /// `cpu_slots` CPU phases at once (at least one).
    pub fn new(pipeline: Arc<Shared<Pipeline>>, cpu_slots: usize) -> ScanService {
        ScanService {
            pipeline,
            cpu_slots: Semaphore::new(cpu_slots.clamp(1, Semaphore::MAX_PERMITS)),
            phases: CpuPhases::default(),
            recording: None,
            record_failures: Arc::default(),
            autolearn: None,
            greylist: None,
            milter_block: true,
            signing: None,
            recorder: OnceLock::new(),
            unrecorded: AtomicU64::new(0),
        }
    }

    /// Outcomes with an empty milter block: for `mxguard scan`, which
    /// prints only the verdict.
    pub fn without_milter_block(mut self) -> ScanService {
        self.milter_block = false;
        self
    }

    pub fn with_recording(mut self, recording: Recording) -> ScanService {
        self.recording = Some(recording);
        self
    }

    pub fn with_autolearn(mut self, autolearn: Arc<dyn Autolearn>) -> ScanService {
        self.autolearn = Some(autolearn);
        self
    }

    /// Puts greylist verdicts through score greylisting (the milter; not
    /// `mxguard scan`, which has no retrying MTA behind it).
    pub fn with_greylist(mut self, greylist: Arc<Shared<ScoreGreylist>>) -> ScanService {
        self.greylist = Some(greylist);
        self
    }

    /// Signs and seals the mail it delivers (the milter; `mxguard scan`
    /// does not sign).
    pub fn with_signing(mut self, signing: Arc<Shared<Option<Outbound>>>) -> ScanService {
        self.signing = Some(signing);
        self
    }

    /// The pipeline scans use now.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.get()
    }

    /// Failed history writes since the service started (logged once per
    /// burst).
    pub fn history_write_failures(&self) -> u64 {
        self.record_failures.total()
    }

    pub fn cpu_phases(&self) -> &CpuPhases {
        &self.phases
    }

    /// Scans one message.
    pub async fn scan_message(&self, input: ScanInput<'_>) -> ScanOutcome {
        let started = Instant::now();
        let pipeline = self.pipeline.get();
        let ScanInput {
            envelope,
            raw,
            mta_name,
        } = input;
        let prepared = {
            // The semaphore is never closed; without a permit the scan
            // still runs rather than failing the message.
            let _permit = self.cpu_slots.acquire().await.ok();
            let _phase = self.phases.enter();
            cpu_phase(raw.len(), || pipeline.prepare(envelope, raw))
        };
        let (mut verdict, outputs) = pipeline.finish_with_outputs(prepared).await;
        let mut dkim_signed = false;
        // Only greylist verdicts wait for the store here.
        let greylisted = if verdict.action == Action::Greylist
            && let Some(g) = &self.greylist
        {
            g.get().judge(&mut verdict, envelope, raw).await
        } else {
            None
        };
        if let Some(outcome) = greylisted
            && let Some(r) = &self.recording
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            // Counted behind the answer, as the history is.
            let counters = r.counters.clone();
            rt.spawn(async move {
                let _ = counters
                    .incr_relaxed(&format!("greylist:{}", outcome.as_str()), 1)
                    .await;
            });
        }
        let mut milter = if self.milter_block {
            MilterBlock::for_verdict(pipeline.header_options(), &verdict, envelope, mta_name)
                .keep_trusted_auth_results(
                    pipeline.header_options(),
                    raw,
                    mta_name,
                    pipeline.trusted_authserv_ids(),
                )
        } else {
            MilterBlock::default()
        };
        // Signing is not a check: it runs once the verdict is final (after
        // score greylisting) and only on mail the verdict delivers as it
        // is, so nothing rejected, deferred or rewritten is signed.
        if self.milter_block
            && let Some(signing) = &self.signing
            && let Some(outbound) = signing.get().as_ref()
            && outbound.may_sign(verdict.action, envelope)
        {
            let signed = {
                let _permit = self.cpu_slots.acquire().await.ok();
                let authserv_id = authserv_id(pipeline.header_options(), mta_name);
                outbound.sign(
                    verdict.action,
                    envelope,
                    raw,
                    || {
                        crate::milter_headers::authentication_results(
                            &verdict,
                            envelope,
                            &authserv_id,
                        )
                        .unwrap_or_else(|| format!("{authserv_id}; none"))
                    },
                    ArcChain::of(outputs.get::<ArcVerdict>(crate::checks::arc::NAME)),
                )
            };
            self.count_signing(&signed);
            dkim_signed = signed.headers.iter().any(|(n, _)| n == "DKIM-Signature");
            // Each is inserted at the top: the last inserted ends topmost.
            for (name, value) in signed.headers.into_iter().rev() {
                milter.add_headers.push(AddHeader {
                    name,
                    value,
                    order: Some(0),
                });
            }
        }
        if let Some(a) = &self.autolearn {
            let sender = envelope
                .mail_from
                .as_deref()
                .map(mxguard_core::envelope::strip_path);
            a.offer(&verdict, raw, sender);
        }
        if let Some(r) = &self.recording {
            let row = history_row(
                envelope,
                raw,
                &verdict,
                started.elapsed().as_secs_f64() * 1000.0,
            );
            if r.wait {
                record(
                    &r.history,
                    &self.record_failures,
                    std::slice::from_ref(&row),
                )
                .await;
            } else {
                self.record_behind(r, row);
            }
        }
        log_verdict(
            envelope,
            &verdict,
            greylisted.map(|o| o.as_str()),
            dkim_signed,
        );
        ScanOutcome { verdict, milter }
    }

    /// Queues `row` for the recorder task (started on first use, on the
    /// runtime of that scan). A full queue drops the row, counted and
    /// logged: the store is far behind, and the answer must not wait.
    fn record_behind(&self, r: &Recording, row: HistoryRow) {
        let queue = self.recorder.get_or_init(|| {
            let rt = tokio::runtime::Handle::try_current().ok()?;
            let (tx, rx) = mpsc::channel(RECORD_QUEUE);
            rt.spawn(recorder(
                r.history.clone(),
                self.record_failures.clone(),
                rx,
            ));
            Some(tx)
        });
        let Some(tx) = queue else { return };
        match tx.try_send(row) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.unrecorded.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(
                        unrecorded = n,
                        "history: the store is behind by {RECORD_QUEUE} verdicts; {n} not \
                         recorded in the history and counters so far"
                    );
                }
            }
            // The runtime the recorder ran on is gone (a test's): record
            // this one on its own.
            Err(TrySendError::Closed(row)) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let (history, failures) = (r.history.clone(), self.record_failures.clone());
                    rt.spawn(async move { record(&history, &failures, &[row]).await });
                }
            }
        }
    }

    /// Verdicts left out of the history and counters because the
    /// recorder's queue was full, since start.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }

    fn count_signing(&self, signed: &mxguard_auth::sign::Signed) {
        let mut names = Vec::new();
        for (name, _) in &signed.headers {
            match name.as_str() {
                "DKIM-Signature" => names.push("sign:dkim".to_string()),
                "ARC-Seal" => names.push("sign:arc".to_string()),
                _ => {}
            }
        }
        for (what, skip) in [("dkim", signed.dkim_skipped), ("arc", signed.arc_skipped)] {
            if let Some(s) = skip {
                tracing::debug!("{what}: not signed: {}", s.as_str());
                if s == mxguard_auth::sign::Skip::Failed {
                    names.push(format!("sign:{what}_failed"));
                }
            }
        }
        if let Some(r) = &self.recording
            && !names.is_empty()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let counters = r.counters.clone();
            rt.spawn(async move {
                for n in names {
                    let _ = counters.incr(&n, 1).await;
                }
            });
        }
    }

    /// Envelope checks at an SMTP stage before DATA.
    pub fn early_verdict(&self, stage: SmtpStage, envelope: &Envelope) -> Option<Verdict> {
        let v = self.pipeline.get().early(stage, envelope)?;
        if let Some(r) = &self.recording
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (counters, action) = (r.counters.clone(), v.action);
            rt.spawn(async move {
                let _ = counters.incr_relaxed(&format!("early:{action}"), 1).await;
            });
        }
        Some(v)
    }
}

impl MessageScanner for ScanService {
    fn early(&self, stage: SmtpStage, envelope: &Envelope) -> Option<Verdict> {
        self.early_verdict(stage, envelope)
    }

    fn acts_early_at(&self, stage: SmtpStage) -> bool {
        self.pipeline.get().acts_early_at(stage)
    }

    fn scan<'a>(&'a self, input: ScanInput<'a>) -> BoxFuture<'a, ScanOutcome> {
        Box::pin(self.scan_message(input))
    }
}

/// One info line per scanned message: what `mxguard report` counts for
/// its mxguard section (mxguard_report::events reads these lines back, so
/// the message text and the field names are a format: change both sides
/// together). Only `serve` logs at info by default.
fn log_verdict(envelope: &Envelope, v: &Verdict, greylist: Option<&str>, dkim_signed: bool) {
    // `mxguard scan` and the benchmarks log at warn: no sort, no join.
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let symbols = v.symbols_by_score();
    tracing::info!(
        queue_id = ?Quoted(envelope.queue_id.as_deref().unwrap_or("-")),
        action = ?Quoted(v.action.as_str()),
        score = v.score,
        symbols = %Names(&symbols),
        greylist = greylist.unwrap_or("-"),
        dkim = if dkim_signed { "signed" } else { "-" },
        "scan: verdict"
    );
}

/// A string shown as `str`'s `Debug` shows it, without its escaping
/// machinery for the usual queue ids and action names, which need none
/// (the same bytes either way: `report` reads them back).
struct Quoted<'a>(&'a str);

impl std::fmt::Debug for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = self
            .0
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' && b != b'\'');
        if plain && !f.alternate() {
            f.write_str("\"")?;
            f.write_str(self.0)?;
            f.write_str("\"")
        } else {
            std::fmt::Debug::fmt(self.0, f)
        }
    }
}

/// Symbol names joined by commas, written without a joined copy.
struct Names<'a>(&'a [&'a mxguard_core::SymbolResult]);

impl std::fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&s.name)?;
        }
        Ok(())
    }
}

/// The authserv-id of this host's Authentication-Results: configured, or
/// the MTA's name.
fn authserv_id(config: &mxguard_core::config::MilterHeaders, mta_name: Option<&str>) -> String {
    if config.authserv_id.is_empty() {
        mta_name.unwrap_or("localhost").to_string()
    } else {
        config.authserv_id.clone()
    }
}

/// Runs the CPU phase, off the worker for big messages on a multi-threaded
/// runtime (`block_in_place` would panic on a current-thread one, where the
/// caller owns the thread anyway).
fn cpu_phase<'a>(size: usize, f: impl FnOnce() -> Prepared<'a>) -> Prepared<'a> {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi && size >= BLOCK_IN_PLACE_FROM {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// History and counters are relaxed writes (no fsync each): a power cut
/// may lose about the last second of them, a clean stop none
/// (`mxguard_store::Durability::Relaxed`); their fsyncs were a tenth of a
/// message's cost. The rows and their counters (`scanned`,
/// `action:<action>`, summed) go in one store request
/// (`History::record_relaxed`).
async fn record(history: &History, failures: &RecordFailures, rows: &[HistoryRow]) {
    let mut counts: Vec<(String, i64)> = vec![("scanned".to_string(), rows.len() as i64)];
    for row in rows {
        let name = format!("action:{}", row.action);
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, by)) => *by += 1,
            None => counts.push((name, 1)),
        }
    }
    let counts: Vec<(&str, i64)> = counts.iter().map(|(n, by)| (n.as_str(), *by)).collect();
    // A store that is down fails every write: logged once per burst
    // (RecordFailures), the rest counted.
    match history.record_relaxed(rows, &counts).await {
        Ok(()) => {
            failures.succeeded();
        }
        Err(e) => {
            failures.failed(&format_args!("recording verdicts (history, counters): {e}"));
        }
    }
}

/// The recorder task behind the answers: once a row comes, lets more
/// come for [`RECORD_GATHER`] (sleeping, so the rows queued meanwhile wake
/// nothing), then writes what is queued, at most [`RECORD_BATCH`], as one
/// store request. Under load that is one request, and one store commit,
/// for a hundred messages instead of three requests each; no task is
/// spawned per message. Ends when the service is dropped, after what is
/// queued.
async fn recorder(
    history: History,
    failures: Arc<RecordFailures>,
    mut rx: mpsc::Receiver<HistoryRow>,
) {
    let mut rows = Vec::with_capacity(RECORD_BATCH);
    while rx.recv_many(&mut rows, RECORD_BATCH).await > 0 {
        if rows.len() < RECORD_BATCH {
            tokio::time::sleep(RECORD_GATHER).await;
            while rows.len() < RECORD_BATCH {
                match rx.try_recv() {
                    Ok(row) => rows.push(row),
                    Err(_) => break,
                }
            }
        }
        record(&history, &failures, &rows).await;
        rows.clear();
    }
}

/// The first `Subject` and `Message-ID` lines of `head` (the header),
/// values trimmed and cut at 200 characters, in one pass over its lines;
/// only the lines looked at are decoded (lossily), not the whole header:
/// decoding it whole and searching it twice was a twelfth of the
/// daemon's CPU per message.
fn subject_and_message_id(head: &[u8]) -> (Option<String>, Option<String>) {
    let (mut subject, mut message_id) = (None, None);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', head).chain(std::iter::once(head.len()));
    for end in ends {
        let line = &head[start..end];
        start = end + 1;
        if subject.is_some() && message_id.is_some() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let key = &line[..colon];
        // An ASCII name is trimmed once and compared as bytes (no string
        // per line); others as before, decoded, so that Unicode white space
        // trims the same.
        let (is_subject, is_message_id) = if key.is_ascii() {
            // `str::trim`'s ASCII white space (with the vertical tab).
            let ws = |b: &u8| b.is_ascii_whitespace() || *b == 0x0b;
            let start = key.iter().position(|b| !ws(b)).unwrap_or(key.len());
            let end = key.iter().rposition(|b| !ws(b)).map_or(start, |e| e + 1);
            let name = &key[start..end];
            (
                name.eq_ignore_ascii_case(b"subject"),
                name.eq_ignore_ascii_case(b"message-id"),
            )
        } else {
            let decoded = String::from_utf8_lossy(key);
            let name = decoded.trim();
            (
                name.eq_ignore_ascii_case("subject"),
                name.eq_ignore_ascii_case("message-id"),
            )
        };
        let slot = if is_subject {
            &mut subject
        } else if is_message_id {
            &mut message_id
        } else {
            continue;
        };
        if slot.is_none() {
            let value = String::from_utf8_lossy(&line[colon + 1..]);
            *slot = Some(first_chars(value.trim(), 200).to_string());
        }
    }
    (subject, message_id)
}

/// The first `n` characters of `s` (all of it when shorter): what
/// `s.chars().take(n).collect()` gives, without a push per character.
fn first_chars(s: &str, n: usize) -> &str {
    if s.len() <= n {
        // No more bytes than `n`, so no more characters.
        return s;
    }
    let cut = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
    &s[..cut]
}

/// The searchers of the header's end, built once: `memmem::find` builds
/// one per call, which cost more than the search in a short header.
static HEAD_END_CRLF: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
static HEAD_END_LF: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));

/// The history row of a verdict.
pub fn history_row(envelope: &Envelope, raw: &[u8], v: &Verdict, scan_ms: f64) -> HistoryRow {
    let end = HEAD_END_CRLF
        .find(raw)
        .or_else(|| HEAD_END_LF.find(raw))
        .unwrap_or(raw.len());
    let (subject, message_id) = subject_and_message_id(raw.get(..end).unwrap_or_default());
    HistoryRow {
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        queue_id: envelope.queue_id.clone(),
        ip: envelope.ip.map(|ip| ip.to_string()),
        from: envelope.mail_from.clone(),
        rcpts: envelope.rcpts.clone(),
        subject,
        message_id,
        action: v.action.as_str().to_string(),
        score: v.score,
        required_score: v.required_score,
        symbols: v
            .symbols_by_score()
            .iter()
            .map(|s| {
                let mut text = String::with_capacity(s.name.len() + 8);
                text.push_str(&s.name);
                text.push('(');
                crate::milter_headers::push_score(&mut text, s.score);
                text.push(')');
                text
            })
            .collect(),
        size: raw.len() as u64,
        scan_time_ms: scan_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the history kept before the one-pass reader: the whole header
    /// decoded, then searched once per name.
    fn by_lines(head: &[u8], name: &str) -> Option<String> {
        String::from_utf8_lossy(head).lines().find_map(|l| {
            let (k, val) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| val.trim().chars().take(200).collect())
        })
    }

    /// The verdict line's fields are a format `report` reads back: the
    /// shortcut writes what `str`'s `Debug` writes.
    #[test]
    fn quoted_writes_what_debug_writes() {
        for s in [
            "-",
            "4ABC123",
            "no action",
            "rewrite subject",
            "",
            "a\"b",
            "back\\slash",
            "it's",
            "tab\there",
            "nl\n",
            "caf\u{e9}",
            "\u{1b}[31m",
            "~ !#$%&()*+,-./:;<=>?@[]^_`{|}",
        ] {
            assert_eq!(format!("{:?}", Quoted(s)), format!("{s:?}"), "{s}");
        }
    }

    #[test]
    fn subject_and_message_id_as_a_line_by_line_search_finds_them() {
        let long = format!("Subject: {}\r\n", "é".repeat(300));
        let heads: Vec<Vec<u8>> = vec![
            b"From: a@b\r\nSubject:  Hello there \r\nMessage-ID: <1@b>\r\n".to_vec(),
            b"message-id:<2@b>\nSUBJECT: first\nSubject: second\n".to_vec(),
            b"X: y\r\n\tSubject: folded, looks like a field\r\nSubject: real\r\n".to_vec(),
            b"Subject: caf\xe9 \xff bytes\r\nMessage-ID <no colon>\r\nNo colon line\r\n".to_vec(),
            b"Subject".to_vec(),
            b"".to_vec(),
            b" Subject : spaced key\r\nMessage-Id: <3@b>".to_vec(),
            b"\x0bSubject\x0c: odd white space\r\n\xc2\xa0Message-ID: <4@b>\r\n".to_vec(),
            long.into_bytes(),
        ];
        for head in heads {
            let (subject, message_id) = subject_and_message_id(&head);
            assert_eq!(subject, by_lines(&head, "subject"), "{head:?}");
            assert_eq!(message_id, by_lines(&head, "message-id"), "{head:?}");
        }
    }
}
