//! The milter server: TCP (`host:port`) or a unix socket, one task per MTA
//! connection, several messages per connection (ABORT between them).
//!
//! Each session collects the envelope from commands and macros, assembles
//! the raw message (headers as received with CRLF, the blank line, the
//! body) up to `max_message_size`, asks the [`Scanner`] before DATA and at
//! end of message, and answers through [`crate::reply`]. A malformed packet
//! or a time-out closes that session only, with one log line.
//!
//! Limits: at most `max_sessions` connections are served at once (one past
//! the cap is accepted and closed at once, so Postfix applies its
//! `milter_default_action`; the refusals are logged once per burst). The
//! scan runs as a future inside the session's task: the scan service
//! bounds its CPU phase (`max_scans` at once) and its waiting checks
//! (`[scan] scan_timeout`); the session gives up on it at `scan_timeout`
//! and drops it, which ends its waiting.
//!
//! Memory: what every session holds of its message, and each scan's working
//! memory, is claimed from one [`MemoryBudget`] (`memory_budget`, see
//! [`crate::budget`]). A message that finds no room waits for it up to
//! `memory_wait` (the MTA is not read meanwhile; before the scan, PROGRESS
//! goes on), then gives its buffer back, reads the rest of the message
//! without keeping it and answers 451 4.3.2, so the MTA retries it later;
//! those tempfails are logged once per burst with a count. Besides the
//! message, a session keeps only the macros it reads ([`crate::macros`]),
//! the first Subject, and a counter per header it may delete; packets are
//! at most [`MAX_FRAME`] bytes.
//!
//! Shutdown: the future passed to [`MilterServer::run`] resolving stops the
//! accept loop; sessions between messages close at once, sessions in the
//! middle of a message finish it; after `shutdown_grace` the rest are cut.

use crate::Scanner;
use crate::budget::{Burst, Claim, MemoryBudget};
use crate::codec::{
    Command, Family, OptNeg, PROTOCOL_VERSION, Reply, action, cmd, decode_header, macro_stage,
    parse_ip, proto,
};
use crate::macros::{Kept, MacroStore};
use crate::reply::{self, Early, HeaderCounts, MessageFacts};
use crate::stream::{FrameReader, ReadError};
use futures_util::FutureExt;
use mxguard_core::config::MilterConfig;
use mxguard_core::envelope::strip_path;
use mxguard_core::shared::Shared;
use mxguard_core::{Envelope, SmtpStage, Verdict};
pub use mxguard_net::{Listener, Stream};
use mxguard_scan::{ScanInput, ScanOutcome};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

/// The largest packet a session reads. Postfix sends body chunks of 64 KiB
/// and each header whole, up to its `header_size_limit` (100 KiB by
/// default); libmilter's largest is 1 MiB (`SMFIP_MDS_1M`). A larger packet
/// is malformed and closes the session.
pub const MAX_FRAME: usize = 1 << 20;

/// The first buffer of a message; it then grows by a quarter at a time, so
/// its capacity (what is claimed) stays within a quarter of its length.
const FIRST_BUFFER: usize = 16 * 1024;

/// The actions mxguard asks the MTA for (kept only when offered).
pub const WANTED_ACTIONS: u32 =
    action::ADD_HEADERS | action::CHANGE_HEADERS | action::QUARANTINE | action::SET_SYMLIST;

/// The protocol flags mxguard asks for (kept only when offered): skip DATA,
/// EOH and unknown commands; no replies to headers, body chunks, EOH, DATA
/// and unknown commands; header values with their leading space.
pub const WANTED_PROTOCOL: u32 = proto::NO_DATA
    | proto::NO_EOH
    | proto::NO_UNKNOWN
    | proto::NR_HDR
    | proto::NR_BODY
    | proto::NR_EOH
    | proto::NR_DATA
    | proto::NR_UNKN
    | proto::HDR_LEADSPC;

/// The macros mxguard asks for at each stage (when the MTA lets it).
pub fn wanted_macros() -> Vec<(u32, String)> {
    vec![
        (
            macro_stage::CONNECT,
            "j {daemon_name} {client_addr} {client_name}".into(),
        ),
        (
            macro_stage::MAIL,
            "i {auth_authen} {mail_addr} {daemon_name}".into(),
        ),
        (macro_stage::RCPT, "i {rcpt_addr}".into()),
        (macro_stage::EOM, "i".into()),
    ]
}

/// A bound milter server, ready to run.
pub struct MilterServer {
    listener: Listener,
    config: Arc<Shared<MilterConfig>>,
}

impl MilterServer {
    /// Binds `config.listen` (with `config.socket_mode` for a unix socket).
    pub async fn bind(config: &MilterConfig) -> io::Result<MilterServer> {
        let mode = config.socket_mode_bits().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "milter.socket_mode `{}` is not octal like 0660",
                    config.socket_mode
                ),
            )
        })?;
        let listener = Listener::bind(&config.listen, mode).await?;
        Ok(MilterServer {
            listener,
            config: Arc::new(Shared::new(config.clone())),
        })
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: Listener, config: Arc<Shared<MilterConfig>>) -> MilterServer {
        MilterServer { listener, config }
    }

    /// The TCP address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr()
    }

    /// The live configuration: `replace` it on SIGHUP and new messages use
    /// the new one (the listen address is not re-bound).
    pub fn config(&self) -> Arc<Shared<MilterConfig>> {
        self.config.clone()
    }

    /// Serves until `shutdown` resolves, then lets sessions in flight finish
    /// (at most `shutdown_grace`) and returns.
    pub async fn run<F>(self, scanner: Arc<dyn Scanner>, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        let MilterServer { listener, config } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sessions: JoinSet<()> = JoinSet::new();
        let ids = AtomicU64::new(0);
        let limits = Arc::new(Limits::new(&config.get()));
        let active = Arc::new(AtomicUsize::new(0));
        let mut refusals = Refusals::default();
        let mut acceptor = mxguard_net::accept::Acceptor::new("milter");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                // Failed accepts (out of descriptors) back off and are logged once per burst.
                (stream, peer) = acceptor.accept(&listener) => {
                    let cap = config.get().max_sessions;
                    if active.load(Ordering::Acquire) >= cap {
                        // Closed at once: Postfix applies its
                        // milter_default_action to that SMTP session.
                        drop(stream);
                        refusals.refused(&peer, cap);
                        continue;
                    }
                    refusals.served();
                    let guard = SessionGuard::new(active.clone());
                    let ctx = SessionCtx {
                        id: ids.fetch_add(1, Ordering::Relaxed) + 1,
                        scanner: scanner.clone(),
                        config: config.clone(),
                        stop: stop_rx.clone(),
                        limits: limits.clone(),
                    };
                    sessions.spawn(async move {
                        let _guard = guard;
                        run_session(stream, peer, ctx).await;
                    });
                }
                Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                    if let Err(e) = done
                        && e.is_panic()
                    {
                        tracing::error!("milter: a session failed: {e}");
                    }
                }
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let grace = config.get().shutdown_grace.as_duration();
        let cut = mxguard_net::drain(&mut sessions, grace).await;
        if cut > 0 {
            tracing::warn!(
                sessions = cut,
                "milter: sessions still open after the shutdown grace period; closed them"
            );
        }
        Ok(())
    }
}

/// Binds `config.listen` and serves until `shutdown` resolves.
pub async fn serve<F>(
    config: &MilterConfig,
    scanner: Arc<dyn Scanner>,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    MilterServer::bind(config)
        .await?
        .run(scanner, shutdown)
        .await
}

/// Serves one MTA connection accepted elsewhere, or an in-memory stream
/// (tests, fuzzing), with the session code of [`MilterServer::run`], until
/// the MTA closes it. It has its own scan slots and memory budget.
pub async fn serve_connection<S: Stream>(
    stream: S,
    peer: &str,
    scanner: Arc<dyn Scanner>,
    config: Arc<Shared<MilterConfig>>,
) {
    let (_stop_tx, stop) = watch::channel(false);
    let limits = Arc::new(Limits::new(&config.get()));
    let ctx = SessionCtx {
        id: 0,
        scanner,
        config,
        stop,
        limits,
    };
    run_session(stream, peer.to_string(), ctx).await;
}

/// A scan whose claim on the memory budget was at least this large is
/// followed by giving freed memory back to the system.
const TRIM_AFTER: u64 = 16 << 20;

/// Counts a session among the active ones while it lives.
struct SessionGuard(Arc<AtomicUsize>);

impl SessionGuard {
    fn new(active: Arc<AtomicUsize>) -> SessionGuard {
        active.fetch_add(1, Ordering::AcqRel);
        SessionGuard(active)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connections refused at `max_sessions`: one log line when a burst of
/// refusals starts, one with its count when connections are served again.
#[derive(Default)]
struct Refusals {
    /// Refused since the server started.
    total: u64,
    /// Refused in the current burst (0: not refusing).
    burst: u64,
}

impl Refusals {
    fn refused(&mut self, peer: &str, cap: usize) {
        self.total += 1;
        self.burst += 1;
        if self.burst == 1 {
            tracing::warn!(
                max_sessions = cap,
                peer,
                "milter: max_sessions ({cap}) connections already open; closing new connections \
                 (Postfix applies milter_default_action to them) until one ends"
            );
        }
    }

    fn served(&mut self) {
        if self.burst > 0 {
            tracing::warn!(
                refused = self.burst,
                refused_total = self.total,
                "milter: serving new connections again after refusing {} at max_sessions",
                self.burst
            );
            self.burst = 0;
        }
    }
}

/// A burst of tempfails for want of memory ends once a message gets room
/// this long after the last one.
const BUSY_QUIET: Duration = Duration::from_secs(10);

/// What all sessions share and draw from: the memory budget (sized at
/// start), and the bursts of faults they log.
struct Limits {
    budget: Arc<MemoryBudget>,
    /// Messages tempfailed for want of room in the budget.
    busy: Burst,
    /// Macro values dropped for their length.
    long_macros: Burst,
}

impl Limits {
    fn new(config: &MilterConfig) -> Limits {
        Limits {
            budget: MemoryBudget::new(config.memory_budget.0),
            busy: Burst::new(BUSY_QUIET),
            long_macros: Burst::default(),
        }
    }

    /// A message found no room within `memory_wait` and is tempfailed.
    fn no_room(&self, session: u64, wait: Duration, stage: &str) {
        if self.busy.hit() {
            tracing::warn!(
                session,
                memory_budget = self.budget.limit(),
                in_use = self.budget.used(),
                "milter: memory_budget is full: a message found no room {stage} within \
                 memory_wait ({wait:?}); answering 451 4.3.2 so the MTA retries it (more are \
                 counted until room comes back)"
            );
        }
    }

    /// A message got the room it asked for: ends a burst of tempfails.
    fn room(&self) {
        if let Some((n, total)) = self.busy.calm() {
            tracing::warn!(
                tempfailed = n,
                tempfailed_total = total,
                "milter: memory_budget has room again; {n} messages were tempfailed for want \
                 of it"
            );
        }
    }
}

struct SessionCtx {
    id: u64,
    scanner: Arc<dyn Scanner>,
    config: Arc<Shared<MilterConfig>>,
    stop: watch::Receiver<bool>,
    limits: Arc<Limits>,
}

async fn run_session<S: Stream>(stream: S, peer: String, ctx: SessionCtx) {
    let cfg = ctx.config.get();
    let mut session = Session {
        id: ctx.id,
        peer,
        scanner: ctx.scanner,
        limits: ctx.limits,
        shared: ctx.config,
        cfg,
        negotiated: None,
        macros: MacroStore::default(),
        conn: Envelope::default(),
        conn_pending: None,
        msg: None,
    };
    let mut reader = FrameReader::new(stream, MAX_FRAME);
    let mut stop = ctx.stop;
    session.run(&mut reader, &mut stop).await;
}

/// The message being received.
struct Message {
    env: Envelope,
    /// What is kept of the message; its capacity is covered by `claim`.
    raw: Vec<u8>,
    /// Bytes received, kept or not.
    size: u64,
    limit: u64,
    oversized: bool,
    /// No room in the memory budget within `memory_wait`: the buffer was
    /// given back, the rest is read and dropped, and the message is
    /// tempfailed.
    over_budget: bool,
    in_content: bool,
    headers_done: bool,
    /// Copies of each header mxguard may delete ([`owned_headers`]),
    /// up to [`MAX_COUNTED_COPIES`]; no other name is counted. Counted
    /// even past the size limit: it is a handful of numbers, and forged
    /// copies must go whatever the size.
    ///
    /// [`owned_headers`]: mxguard_scan::milter_headers::owned_headers
    /// [`MAX_COUNTED_COPIES`]: crate::reply::MAX_COUNTED_COPIES
    header_counts: HeaderCounts,
    subject: Option<Vec<u8>>,
    /// A verdict from before DATA, applied at end of message without a scan.
    pending: Option<Verdict>,
    /// What the message holds of the memory budget.
    claim: Claim,
}

impl Message {
    fn new(env: Envelope, config: &Arc<MilterConfig>, claim: Claim) -> Message {
        Message {
            env,
            raw: Vec::new(),
            size: 0,
            limit: config.max_message_size.0,
            oversized: false,
            over_budget: false,
            in_content: false,
            headers_done: false,
            header_counts: HeaderCounts::new(config.clone()),
            subject: None,
            pending: None,
            claim,
        }
    }

    /// Whether what arrives is no longer kept.
    fn dropping(&self) -> bool {
        self.oversized || self.over_budget
    }

    /// Gives the buffer and its claim back.
    fn release(&mut self) {
        self.raw = Vec::new();
        self.claim.shrink_to(0);
    }

    /// The buffer capacity to claim before `incoming` more bytes are kept,
    /// when the buffer must grow for them.
    fn room_needed(&self, incoming: usize) -> Option<usize> {
        if self.dropping() || self.size.saturating_add(incoming as u64) > self.limit {
            return None;
        }
        let need = self.raw.len() + incoming;
        let cap = self.raw.capacity();
        if need <= cap {
            return None;
        }
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        Some((cap + cap / 4).max(FIRST_BUFFER).min(limit).max(need))
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.take(bytes.len()) {
            self.raw.extend_from_slice(bytes);
        }
    }

    /// Counts `len` more bytes received; whether they are to be kept.
    fn take(&mut self, len: usize) -> bool {
        self.size += len as u64;
        if self.dropping() {
            return false;
        }
        if self.size > self.limit {
            self.oversized = true;
            self.release();
            return false;
        }
        true
    }

    /// `Name: value` + CRLF, folded lines with CRLF.
    fn header(&mut self, name: &str, value: &[u8], leading_space: bool) {
        self.in_content = true;
        self.header_counts.add(name);
        if self.subject.is_none() && name.eq_ignore_ascii_case("subject") {
            self.subject = Some(value.to_vec());
        }
        // Written in place: the room was claimed (`make_room`) before.
        if !self.take(header_line_len(name, value, leading_space)) {
            return;
        }
        let line = &mut self.raw;
        line.extend_from_slice(name.as_bytes());
        line.push(b':');
        if !leading_space {
            line.push(b' ');
        }
        let mut rest = value;
        // A bare LF (folded lines as Postfix passes them) becomes CRLF.
        while let Some(i) = memchr::memchr(b'\n', rest) {
            line.extend_from_slice(&rest[..i]);
            if i == 0 || rest[i - 1] != b'\r' {
                line.push(b'\r');
            }
            line.push(b'\n');
            rest = &rest[i + 1..];
        }
        line.extend_from_slice(rest);
        line.extend_from_slice(b"\r\n");
    }

    fn end_headers(&mut self) {
        self.in_content = true;
        if !self.headers_done {
            self.headers_done = true;
            self.append(b"\r\n");
        }
    }
}

/// The bytes `Message::header` adds for one header.
fn header_line_len(name: &str, value: &[u8], leading_space: bool) -> usize {
    let bare_lf = memchr::memchr_iter(b'\n', value)
        .filter(|&i| i == 0 || value[i - 1] != b'\r')
        .count();
    name.len() + 1 + usize::from(!leading_space) + value.len() + bare_lf + 2
}

struct Session {
    id: u64,
    peer: String,
    scanner: Arc<dyn Scanner>,
    /// Scan slots and the memory budget, shared by all sessions.
    limits: Arc<Limits>,
    shared: Arc<Shared<MilterConfig>>,
    cfg: Arc<MilterConfig>,
    /// The options agreed at OPTNEG.
    negotiated: Option<OptNeg>,
    /// The macros the session reads.
    macros: MacroStore,
    /// What is known of the SMTP connection (ip, hostname, helo).
    conn: Envelope,
    /// A verdict made at connect or HELO, for every message of the connection.
    conn_pending: Option<Verdict>,
    msg: Option<Message>,
}

enum Flow {
    Continue,
    Close,
}

impl Session {
    fn protocol(&self) -> u32 {
        self.negotiated.as_ref().map_or(0, |n| n.protocol)
    }

    fn leading_space(&self) -> bool {
        self.protocol() & proto::HDR_LEADSPC != 0
    }

    /// Whether the MTA waits for a reply to this command.
    fn expects_reply(&self, code: u8) -> bool {
        let nr = match code {
            cmd::CONNECT => proto::NR_CONN,
            cmd::HELO => proto::NR_HELO,
            cmd::MAIL => proto::NR_MAIL,
            cmd::RCPT => proto::NR_RCPT,
            cmd::DATA => proto::NR_DATA,
            cmd::HEADER => proto::NR_HDR,
            cmd::EOH => proto::NR_EOH,
            cmd::BODY => proto::NR_BODY,
            cmd::UNKNOWN => proto::NR_UNKN,
            _ => 0,
        };
        self.protocol() & nr == 0
    }

    fn macro_value(&self, name: &str) -> Option<&str> {
        self.macros.get(name).filter(|v| !v.is_empty())
    }

    /// Keeps what the session reads of a macro packet.
    fn take_macros(&mut self, pairs: Vec<(String, String)>) {
        let mut dropped = false;
        for (name, value) in pairs {
            let len = value.len();
            if self.macros.set(&name, value) == Kept::TooLong {
                dropped = true;
                if self.limits.long_macros.hit() {
                    tracing::warn!(
                        session = self.id,
                        peer = %self.peer,
                        name,
                        bytes = len,
                        "milter: macro value over {} bytes dropped (more are counted until \
                         one packet has none)",
                        crate::macros::MAX_VALUE
                    );
                }
            }
        }
        if !dropped && let Some((n, total)) = self.limits.long_macros.calm() {
            tracing::warn!(
                dropped = n,
                dropped_total = total,
                "milter: {n} over-long macro values were dropped"
            );
        }
    }

    /// Makes room in the memory budget for `incoming` more bytes of the
    /// current message before they are kept: at once when there is room,
    /// else waiting up to `memory_wait`, else the message stops being kept
    /// and will be tempfailed.
    async fn make_room(&mut self, incoming: usize) {
        // Most calls find room (the buffer grows by a quarter at a time):
        // they return before anything else is looked up.
        let Some(msg) = self.msg.as_mut() else {
            return;
        };
        let Some(want) = msg.room_needed(incoming) else {
            return;
        };
        let wait = self.cfg.memory_wait.as_duration();
        let scan_claim = self
            .cfg
            .scan_claim(msg.size.saturating_add(incoming as u64));
        let (id, limits) = (self.id, self.limits.clone());
        let ok = if msg.claim.try_grow_to(want as u64) {
            true
        } else if !msg.claim.could_hold(scan_claim) {
            // Only after a reload raised max_message_size past what the
            // budget (sized at start) can ever hold for one scan.
            tracing::info!(
                session = id,
                size = msg.size,
                "milter: message too large to scan within memory_budget; treated as over \
                 max_message_size"
            );
            msg.oversized = true;
            msg.release();
            return;
        } else {
            msg.claim.grow_to(want as u64, Instant::now() + wait).await
        };
        if ok {
            msg.raw.reserve_exact(want - msg.raw.len());
        } else {
            msg.over_budget = true;
            msg.release();
            limits.no_room(id, wait, "while it was received");
        }
    }

    async fn run<S: Stream>(
        &mut self,
        reader: &mut FrameReader<S>,
        stop: &mut watch::Receiver<bool>,
    ) {
        loop {
            let (wait, phase) = if self.negotiated.is_none() {
                (self.cfg.negotiate_timeout, "option negotiation")
            } else if self.msg.as_ref().is_some_and(|m| m.in_content) {
                (self.cfg.content_timeout, "message content")
            } else {
                (self.cfg.command_timeout, "the next command")
            };
            let read = timeout(wait.as_duration(), reader.read_frame());
            let got = if self.msg.is_some() {
                read.await
            } else {
                tokio::select! {
                    r = read => r,
                    _ = stop.wait_for(|s| *s) => {
                        tracing::debug!(session = self.id, "milter: closing an idle session for shutdown");
                        return;
                    }
                }
            };
            let (code, range) = match got {
                Err(_) => {
                    tracing::info!(
                        session = self.id,
                        peer = %self.peer,
                        "milter: no data from the MTA for {:?} while waiting for {phase}; closing the connection",
                        wait.as_duration()
                    );
                    return;
                }
                Ok(Err(ReadError::Codec(e))) => return self.malformed(&e),
                Ok(Err(e)) => {
                    tracing::debug!(session = self.id, "milter: connection closed: {e}");
                    return;
                }
                Ok(Ok(None)) => return,
                Ok(Ok(Some(frame))) => frame,
            };
            let mut out = Vec::new();
            // Headers and body chunks, most packets of a message, go into
            // the message straight from the read buffer; the rest is
            // decoded into a `Command` first.
            let flow = match code {
                cmd::HEADER => match decode_header(&reader.buffered()[range]) {
                    Ok((name, value)) => {
                        self.on_header(&name, value).await;
                        self.answer(code, Reply::Continue, &mut out);
                        Flow::Continue
                    }
                    Err(e) => return self.malformed(&e),
                },
                cmd::BODY => {
                    self.on_body(&reader.buffered()[range]).await;
                    self.answer(code, Reply::Continue, &mut out);
                    Flow::Continue
                }
                _ => match Command::decode(code, &reader.buffered()[range]) {
                    Ok(command) => self.handle(command, &mut out, reader).await,
                    Err(e) => return self.malformed(&e),
                },
            };
            // All the replies to one command go in one write.
            if !out.is_empty() && reader.get_mut().write_all(&out).await.is_err() {
                return;
            }
            if let Flow::Close = flow {
                return;
            }
            if out.is_empty() && reader.needs_read() {
                // Nothing to answer (macros; headers and body chunks with
                // the no-reply flags; ABORT) and nothing left to read: ACK
                // now. Postfix leaves Nagle's algorithm on for its milter
                // socket and sends the DATA macros (19 bytes) alone, then
                // the whole content in its next write, which its kernel
                // holds until those 19 bytes are acknowledged. An ACK that
                // rides on no reply waits for the delayed-ACK timer: 40 ms
                // per message through Postfix (docs/BENCHMARKS.md).
                let _ = reader.get_ref().ack_now();
            }
        }
    }

    /// Handles one command; replies are appended to `out`.
    async fn handle<S>(
        &mut self,
        command: Command,
        out: &mut Vec<u8>,
        reader: &mut FrameReader<S>,
    ) -> Flow
    where
        S: Stream,
    {
        let code = command.code();
        let reply: Option<Reply> = match command {
            Command::OptNeg(offer) => {
                if offer.version < 2 {
                    tracing::warn!(
                        session = self.id,
                        peer = %self.peer,
                        "milter: MTA offers protocol version {}, closing the connection",
                        offer.version
                    );
                    return Flow::Close;
                }
                let actions = offer.actions & WANTED_ACTIONS;
                let agreed = OptNeg {
                    version: offer.version.min(PROTOCOL_VERSION),
                    actions,
                    protocol: offer.protocol & (WANTED_PROTOCOL | self.quiet_stages()),
                    macros: if actions & action::SET_SYMLIST != 0 {
                        wanted_macros()
                    } else {
                        Vec::new()
                    },
                };
                tracing::debug!(
                    session = self.id,
                    "milter: MTA offers version {} actions {:#x} protocol {:#x}; agreed actions {:#x} protocol {:#x}",
                    offer.version,
                    offer.actions,
                    offer.protocol,
                    agreed.actions,
                    agreed.protocol
                );
                self.negotiated = Some(agreed.clone());
                Some(Reply::OptNeg(agreed))
            }
            Command::Macro { stage, pairs } => {
                if stage == cmd::MAIL {
                    self.macros.clear_message();
                }
                self.take_macros(pairs);
                None
            }
            Command::Connect {
                hostname,
                family,
                address,
                ..
            } => {
                self.new_connection();
                self.conn.ip = match family {
                    Family::Inet | Family::Inet6 => parse_ip(&address),
                    _ => None,
                }
                .or_else(|| self.macro_value("client_addr").and_then(parse_ip));
                self.conn.hostname = resolved_name(&hostname)
                    .or_else(|| self.macro_value("client_name").and_then(resolved_name));
                self.early_conn(SmtpStage::Connect)
            }
            Command::Helo(name) => {
                self.conn.helo = Some(name).filter(|h| !h.is_empty());
                self.early_conn(SmtpStage::Helo)
            }
            Command::Mail(args) => {
                self.cfg = self.shared.get();
                let mut env = self.conn.clone();
                let from = args
                    .first()
                    .map(|a| strip_path(a).to_string())
                    .or_else(|| self.macro_value("mail_addr").map(str::to_string));
                env.mail_from = Some(from.unwrap_or_default());
                env.user = self.macro_value("auth_authen").map(str::to_string);
                env.queue_id = self.macro_value("i").map(str::to_string);
                env.daemon_name = self.macro_value("daemon_name").map(str::to_string);
                let mut msg = Message::new(env, &self.cfg, self.new_claim());
                msg.pending = self.conn_pending.clone();
                let early = self.ask_early(SmtpStage::MailFrom, cmd::MAIL, &msg.env);
                self.msg = Some(msg);
                match early {
                    None => Some(Reply::Continue),
                    Some(v) => match reply::early_reply(&self.cfg, SmtpStage::MailFrom, &v) {
                        Early::Respond(r) => {
                            self.log_early(SmtpStage::MailFrom, &v);
                            // The MTA sends nothing more for this message.
                            self.msg = None;
                            Some(r)
                        }
                        Early::Defer => {
                            if let Some(m) = self.msg.as_mut() {
                                m.pending = Some(v);
                            }
                            Some(Reply::Continue)
                        }
                    },
                }
            }
            Command::Rcpt(args) => {
                let rcpt = args
                    .first()
                    .map(|a| strip_path(a).to_string())
                    .or_else(|| self.macro_value("rcpt_addr").map(str::to_string))
                    .unwrap_or_default();
                let qid = self.macro_value("i").map(str::to_string);
                let msg = self.message();
                msg.env.rcpts.push(rcpt);
                if qid.is_some() {
                    msg.env.queue_id = qid;
                }
                let early = match &self.msg {
                    Some(m) => self.ask_early(SmtpStage::Rcpt, cmd::RCPT, &m.env),
                    None => None,
                };
                match early {
                    None => Some(Reply::Continue),
                    Some(v) => match reply::early_reply(&self.cfg, SmtpStage::Rcpt, &v) {
                        Early::Respond(r) => {
                            self.log_early(SmtpStage::Rcpt, &v);
                            // That recipient is refused; the others go on.
                            self.message().env.rcpts.pop();
                            Some(r)
                        }
                        Early::Defer => {
                            self.message().pending = Some(v);
                            Some(Reply::Continue)
                        }
                    },
                }
            }
            Command::Data => {
                self.message().in_content = true;
                Some(Reply::Continue)
            }
            Command::Header { name, value } => {
                self.on_header(&name, &value).await;
                Some(Reply::Continue)
            }
            Command::Eoh => {
                self.message().end_headers();
                Some(Reply::Continue)
            }
            Command::Body(chunk) => {
                self.on_body(&chunk).await;
                Some(Reply::Continue)
            }
            Command::EndOfMessage(chunk) => {
                self.message();
                self.make_room(chunk.len() + 2).await;
                let m = self.message();
                m.end_headers();
                if !chunk.is_empty() {
                    m.append(&chunk);
                }
                self.end_of_message(out, reader).await;
                None
            }
            Command::Abort => {
                self.msg = None;
                self.macros.clear_message();
                None
            }
            Command::Quit => return Flow::Close,
            Command::QuitNc => {
                self.new_connection();
                self.macros.clear();
                None
            }
            Command::Unknown(_) => Some(Reply::Continue),
        };
        if let Some(r) = reply {
            self.answer(code, r, out);
        }
        Flow::Continue
    }

    /// Appends `reply` to `out` unless the command was negotiated without
    /// one.
    fn answer(&self, code: u8, reply: Reply, out: &mut Vec<u8>) {
        if matches!(reply, Reply::OptNeg(_)) || self.expects_reply(code) {
            reply.encode(out);
        }
    }

    /// A bad packet closes the session, with one log line.
    fn malformed(&self, e: &dyn std::fmt::Display) {
        tracing::warn!(
            session = self.id,
            peer = %self.peer,
            "milter: malformed packet, closing the connection: {e}"
        );
    }

    /// One header: counted, and written into the message.
    async fn on_header(&mut self, name: &str, value: &[u8]) {
        let lead = self.leading_space();
        self.message();
        self.make_room(header_line_len(name, value, lead)).await;
        self.message().header(name, value, lead);
    }

    /// A body chunk, after the blank line ending the headers.
    async fn on_body(&mut self, chunk: &[u8]) {
        self.message();
        self.make_room(chunk.len() + 2).await;
        let m = self.message();
        m.end_headers();
        m.append(chunk);
    }

    fn new_connection(&mut self) {
        self.conn = Envelope::default();
        self.conn_pending = None;
        self.msg = None;
    }

    /// A claim on the memory budget, for a new message.
    fn new_claim(&self) -> Claim {
        Claim::new(self.limits.budget.clone())
    }

    /// The current message; one is started if the MTA skipped MAIL.
    fn message(&mut self) -> &mut Message {
        let (conn, cfg, limits, pending) =
            (&self.conn, &self.cfg, &self.limits, &self.conn_pending);
        self.msg.get_or_insert_with(|| {
            let mut m = Message::new(conn.clone(), cfg, Claim::new(limits.budget.clone()));
            m.pending = pending.clone();
            m
        })
    }

    /// An early check at connect or HELO.
    /// No reply (`SMFIP_NR_*`) at the envelope stages where no check can
    /// answer early with the config of this connection's start: the MTA
    /// then sends the next command without waiting, one round trip fewer
    /// per stage. The stages negotiated quiet are not asked at all during
    /// the connection, even if a reload adds a check there (the new config
    /// applies from the next connection).
    fn quiet_stages(&self) -> u32 {
        [
            (SmtpStage::Connect, proto::NR_CONN),
            (SmtpStage::Helo, proto::NR_HELO),
            (SmtpStage::MailFrom, proto::NR_MAIL),
            (SmtpStage::Rcpt, proto::NR_RCPT),
        ]
        .into_iter()
        .filter(|(stage, _)| !self.scanner.acts_early_at(*stage))
        .fold(0, |bits, (_, bit)| bits | bit)
    }

    /// The early verdict at `stage`, unless the stage was negotiated quiet.
    fn ask_early(&self, stage: SmtpStage, code: u8, envelope: &Envelope) -> Option<Verdict> {
        if self.expects_reply(code) {
            self.scanner.early(stage, envelope)
        } else {
            None
        }
    }

    fn early_conn(&mut self, stage: SmtpStage) -> Option<Reply> {
        let code = match stage {
            SmtpStage::Connect => cmd::CONNECT,
            _ => cmd::HELO,
        };
        let Some(v) = self.ask_early(stage, code, &self.conn) else {
            return Some(Reply::Continue);
        };
        match reply::early_reply(&self.cfg, stage, &v) {
            Early::Respond(r) => {
                self.log_early(stage, &v);
                Some(r)
            }
            Early::Defer => {
                self.conn_pending = Some(v);
                Some(Reply::Continue)
            }
        }
    }

    fn log_early(&self, stage: SmtpStage, v: &Verdict) {
        tracing::info!(
            session = self.id,
            ip = ?self.conn.ip,
            stage = ?stage,
            action = %v.action,
            forced_by = v.forced_by.as_deref().unwrap_or(""),
            "milter: early verdict"
        );
    }

    async fn end_of_message<S>(&mut self, out: &mut Vec<u8>, reader: &mut FrameReader<S>)
    where
        S: Stream,
    {
        let Some(mut msg) = self.msg.take() else {
            return;
        };
        if let Some(q) = self.macro_value("i") {
            msg.env.queue_id = Some(q.to_string());
        }
        let negotiated = self.negotiated.clone().unwrap_or_default();
        let replies = if let Some(v) = msg.pending.take() {
            tracing::debug!(session = self.id, queue_id = ?msg.env.queue_id, action = %v.action, "milter: verdict from before DATA, not scanned");
            let block = mxguard_scan::MilterBlock::for_verdict(
                &self.cfg.headers,
                &v,
                &msg.env,
                self.macro_value("j"),
            );
            reply::final_replies(&self.cfg, &v, &block, &self.facts(&msg, &negotiated))
        } else if msg.oversized {
            tracing::info!(
                session = self.id,
                queue_id = ?msg.env.queue_id,
                size = msg.size,
                "milter: message over max_message_size, not scanned"
            );
            reply::oversize_replies(&self.cfg, msg.size, &self.facts(&msg, &negotiated))
        } else if msg.over_budget {
            vec![reply::busy_reply()]
        } else {
            let raw = std::mem::take(&mut msg.raw);
            let claim = msg.claim.split_off();
            match self.scan(&msg.env, raw, claim, reader).await {
                ScanEnd::Busy => vec![reply::busy_reply()],
                ScanEnd::Done(out) => {
                    let v = &out.verdict;
                    tracing::debug!(
                        session = self.id,
                        queue_id = ?msg.env.queue_id,
                        action = %v.action,
                        score = v.score,
                        "milter: scanned"
                    );
                    reply::final_replies(&self.cfg, v, &out.milter, &self.facts(&msg, &negotiated))
                }
                ScanEnd::Failed => vec![reply::scan_failed_reply()],
            }
        };
        for r in &replies {
            r.encode(out);
        }
    }

    fn facts<'a>(&'a self, msg: &'a Message, negotiated: &OptNeg) -> MessageFacts<'a> {
        MessageFacts {
            envelope: &msg.env,
            header_counts: &msg.header_counts,
            subject: msg.subject.as_deref(),
            leading_space: negotiated.protocol & proto::HDR_LEADSPC != 0,
            actions: negotiated.actions,
        }
    }

    /// Runs the scan once its memory is claimed (up to `memory_wait`),
    /// sending PROGRESS meanwhile, and gives up on it at `scan_timeout`.
    /// The claim is held until the scan ends or is dropped.
    async fn scan<S>(
        &self,
        env: &Envelope,
        raw: Vec<u8>,
        mut claim: Claim,
        reader: &mut FrameReader<S>,
    ) -> ScanEnd
    where
        S: Stream,
    {
        let queue_id = &env.queue_id;
        let every = self
            .cfg
            .progress_interval
            .as_duration()
            .max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        let progress = Reply::Progress.to_bytes();
        let mut mta_gone = false;
        let need = self.cfg.scan_claim(raw.len() as u64).max(claim.held());
        if !claim.try_grow_to(need) {
            let wait = self.cfg.memory_wait.as_duration();
            let got = {
                let grow = claim.grow_to(need, Instant::now() + wait);
                tokio::pin!(grow);
                loop {
                    tokio::select! {
                        got = &mut grow => break got,
                        _ = ticks.tick() => {
                            if !mta_gone && reader.get_mut().write_all(&progress).await.is_err() {
                                mta_gone = true;
                            }
                        }
                    }
                }
            };
            if !got {
                self.limits.no_room(self.id, wait, "for its scan");
                return ScanEnd::Busy;
            }
        }
        self.limits.room();
        let deadline = tokio::time::sleep(self.cfg.scan_timeout.as_duration());
        tokio::pin!(deadline);
        let input = ScanInput {
            envelope: env,
            raw: &raw,
            mta_name: self.macro_value("j"),
        };
        // The service catches a failing check; this catches the rest, so
        // a bug answers tempfail instead of closing the session.
        let mut scan =
            Box::pin(std::panic::AssertUnwindSafe(self.scanner.scan(input)).catch_unwind());
        let end = loop {
            tokio::select! {
                done = &mut scan => break match done {
                    Ok(out) => ScanEnd::Done(Box::new(out)),
                    Err(_) => {
                        tracing::error!(session = self.id, ?queue_id, "milter: the scan failed (panicked)");
                        ScanEnd::Failed
                    }
                },
                _ = ticks.tick() => {
                    if !mta_gone && reader.get_mut().write_all(&progress).await.is_err() {
                        mta_gone = true;
                    }
                }
                _ = &mut deadline => {
                    tracing::warn!(
                        session = self.id,
                        ?queue_id,
                        "milter: the scan took longer than scan_timeout ({:?}); answering tempfail",
                        self.cfg.scan_timeout.as_duration()
                    );
                    break ScanEnd::Failed;
                }
            }
        };
        drop(scan);
        let large = claim.held() >= TRIM_AFTER;
        drop(raw);
        drop(claim);
        // glibc keeps what a big scan freed in its arenas (hundreds of MiB
        // after a burst of hostile messages); give it back.
        if large {
            mxguard_net::memory::release_soon();
        }
        end
    }
}

/// How a scan ended.
enum ScanEnd {
    Done(Box<ScanOutcome>),
    /// It failed, or gave no verdict within `scan_timeout`.
    Failed,
    /// No room in the memory budget within `memory_wait`.
    Busy,
}

/// The client's host name from CONNECT or `{client_name}`: `None` when the
/// MTA could not resolve it (`unknown`, or an address in brackets).
fn resolved_name(name: &str) -> Option<String> {
    let n = name.trim();
    if n.is_empty() || n.eq_ignore_ascii_case("unknown") || n.starts_with('[') {
        None
    } else {
        Some(n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::postfix_offer;
    use crate::codec::decode_replies;
    use mxguard_core::Action;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
    use tokio::sync::mpsc;

    /// What the session did to its connection.
    #[derive(Debug)]
    enum Event {
        /// One write, with the bytes it wrote.
        Write(Vec<u8>),
        /// A request to acknowledge what was received at once.
        Ack,
    }

    /// The session's end of an in-memory connection, reporting each write
    /// and each `ack_now` in the order the session made them.
    struct Probe {
        inner: DuplexStream,
        events: mpsc::UnboundedSender<Event>,
    }

    impl AsyncRead for Probe {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Probe {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = &polled {
                let _ = self.events.send(Event::Write(buf[..*n].to_vec()));
            }
            polled
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    impl Stream for Probe {
        fn ack_now(&self) -> io::Result<()> {
            let _ = self.events.send(Event::Ack);
            Ok(())
        }
    }

    struct Accept;

    impl Scanner for Accept {
        fn early(&self, _: SmtpStage, _: &Envelope) -> Option<Verdict> {
            None
        }

        fn scan<'a>(&'a self, input: ScanInput<'a>) -> mxguard_scan::BoxFuture<'a, ScanOutcome> {
            Box::pin(async move {
                let verdict = Verdict {
                    action: Action::NoAction,
                    score: 0.0,
                    required_score: 15.0,
                    symbols: Default::default(),
                    messages: Default::default(),
                    is_skipped: false,
                    forced_by: None,
                    add_headers: Vec::new(),
                };
                let milter = mxguard_scan::MilterBlock::for_verdict(
                    &Default::default(),
                    &verdict,
                    input.envelope,
                    None,
                );
                ScanOutcome { verdict, milter }
            })
        }
    }

    fn packet(commands: &[Command]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in commands {
            c.encode(&mut out);
        }
        out
    }

    fn macros(stage: u8, pairs: &[(&str, &str)]) -> Command {
        Command::Macro {
            stage,
            pairs: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A session over an in-memory pipe whose writes and ACK requests are
    /// reported as events; the stop signal is kept alive for the session.
    fn start_session(
        scanner: Arc<dyn Scanner>,
    ) -> (
        tokio::io::DuplexStream,
        mpsc::UnboundedReceiver<Event>,
        tokio::task::JoinHandle<()>,
    ) {
        let (mta, server_end) = tokio::io::duplex(1 << 20);
        let (tx, events) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = SessionCtx {
            id: 1,
            scanner,
            config: Arc::new(Shared::new(MilterConfig::default())),
            stop: stop_rx,
            limits: Arc::new(Limits::new(&MilterConfig::default())),
        };
        let probe = Probe {
            inner: server_end,
            events: tx,
        };
        let session = tokio::spawn(async move {
            run_session(probe, "test".into(), ctx).await;
            drop(stop_tx);
        });
        (mta, events, session)
    }

    async fn next(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
        timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the session did nothing")
            .expect("the session ended")
    }

    /// The replies in one write; an ACK request instead is a failure.
    async fn one_write(events: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Reply> {
        match next(events).await {
            Event::Write(bytes) => decode_replies(&bytes, MAX_FRAME).unwrap(),
            Event::Ack => panic!("an ACK request where a reply was due"),
        }
    }

    async fn ack(events: &mut mpsc::UnboundedReceiver<Event>) {
        match next(events).await {
            Event::Ack => {}
            Event::Write(bytes) => panic!(
                "a write ({:?}) where only an ACK was due",
                decode_replies(&bytes, MAX_FRAME)
            ),
        }
    }

    /// Postfix (Nagle on) sends its DATA macros alone, then the content in
    /// one packet once they are acknowledged: a packet that gets no reply
    /// must be acknowledged at once, or the content waits for the 40 ms
    /// delayed-ACK timer. Replies carry the ACK themselves; all the replies
    /// to one command go in one write; frames still buffered need no ACK.
    #[tokio::test]
    async fn packets_without_a_reply_are_acked_at_once_and_replies_go_in_one_write() {
        let (mut mta, mut events, session) = start_session(Arc::new(Accept));

        mta.write_all(&Command::OptNeg(postfix_offer()).to_bytes())
            .await
            .unwrap();
        let agreed = one_write(&mut events).await;
        assert!(matches!(agreed[..], [Reply::OptNeg(_)]), "{agreed:?}");

        // Macros and their command in one packet: one reply, no extra ACK.
        mta.write_all(&packet(&[
            macros(cmd::CONNECT, &[("{client_addr}", "192.0.2.10")]),
            Command::Connect {
                hostname: "client.example".into(),
                family: Family::Inet,
                port: 40000,
                address: "192.0.2.10".into(),
            },
        ]))
        .await
        .unwrap();
        assert_eq!(one_write(&mut events).await, [Reply::Continue]);
        for c in [
            Command::Helo("client.example".into()),
            Command::Mail(vec!["<a@example.com>".into()]),
            Command::Rcpt(vec!["<b@example.org>".into()]),
        ] {
            mta.write_all(&c.to_bytes()).await.unwrap();
            assert_eq!(one_write(&mut events).await, [Reply::Continue], "{c:?}");
        }

        // The DATA macros alone (what smtpd flushes before cleanup sends the
        // content): nothing to answer, so an ACK at once.
        mta.write_all(&macros(cmd::DATA, &[("i", "4AB12C")]).to_bytes())
            .await
            .unwrap();
        ack(&mut events).await;
        // A header alone (negotiated without a reply): the same.
        mta.write_all(
            &Command::Header {
                name: "From".into(),
                value: b" a@example.com".to_vec(),
            }
            .to_bytes(),
        )
        .await
        .unwrap();
        ack(&mut events).await;

        // The rest of the message in one packet: no ACK for the frames
        // followed by others, and every end-of-message reply in one write.
        mta.write_all(&packet(&[
            Command::Header {
                name: "Subject".into(),
                value: b" hello".to_vec(),
            },
            Command::Body(b"Hi.\r\n".to_vec()),
            macros(cmd::BODYEOB, &[("i", "4AB12C")]),
            Command::EndOfMessage(Vec::new()),
        ]))
        .await
        .unwrap();
        let last = one_write(&mut events).await;
        assert!(last.len() > 1, "header additions and the verdict: {last:?}");
        assert!(last.last().unwrap().is_final(), "{last:?}");
        assert!(
            !last[..last.len() - 1].iter().any(Reply::is_final),
            "{last:?}"
        );

        // ABORT gets no reply either.
        mta.write_all(&Command::Abort.to_bytes()).await.unwrap();
        ack(&mut events).await;

        drop(mta);
        session.await.unwrap();
        assert!(events.recv().await.is_none(), "nothing after the close");
    }

    /// Answers early only at RCPT: the other envelope stages are negotiated
    /// without a reply, and the scanner is not asked there.
    struct RcptOnly;

    impl Scanner for RcptOnly {
        fn early(&self, stage: SmtpStage, _: &Envelope) -> Option<Verdict> {
            assert_eq!(stage, SmtpStage::Rcpt, "asked at a quiet stage");
            None
        }

        fn acts_early_at(&self, stage: SmtpStage) -> bool {
            stage == SmtpStage::Rcpt
        }

        fn scan<'a>(&'a self, input: ScanInput<'a>) -> mxguard_scan::BoxFuture<'a, ScanOutcome> {
            Accept.scan(input)
        }
    }

    /// Where no check can answer before DATA, Postfix is asked for no reply
    /// (SMFIP_NR_CONN/HELO/MAIL): one round trip fewer per stage; a stage
    /// with a check keeps its reply.
    #[tokio::test]
    async fn stages_without_an_early_check_are_negotiated_without_a_reply() {
        let (mut mta, mut events, session) = start_session(Arc::new(RcptOnly));

        mta.write_all(&Command::OptNeg(postfix_offer()).to_bytes())
            .await
            .unwrap();
        let Reply::OptNeg(agreed) = one_write(&mut events).await.remove(0) else {
            panic!("no OPTNEG reply");
        };
        let quiet = proto::NR_CONN | proto::NR_HELO | proto::NR_MAIL;
        assert_eq!(agreed.protocol & quiet, quiet, "{:#x}", agreed.protocol);
        assert_eq!(
            agreed.protocol & proto::NR_RCPT,
            0,
            "{:#x}",
            agreed.protocol
        );

        for c in [
            Command::Connect {
                hostname: "client.example".into(),
                family: Family::Inet,
                port: 40000,
                address: "192.0.2.10".into(),
            },
            Command::Helo("client.example".into()),
            Command::Mail(vec!["<a@example.com>".into()]),
        ] {
            mta.write_all(&c.to_bytes()).await.unwrap();
            ack(&mut events).await;
        }
        mta.write_all(&Command::Rcpt(vec!["<b@example.org>".into()]).to_bytes())
            .await
            .unwrap();
        assert_eq!(one_write(&mut events).await, [Reply::Continue]);
        mta.write_all(&packet(&[
            Command::Header {
                name: "Subject".into(),
                value: b" hello".to_vec(),
            },
            Command::Body(b"Hi.\r\n".to_vec()),
            Command::EndOfMessage(Vec::new()),
        ]))
        .await
        .unwrap();
        let last = one_write(&mut events).await;
        assert!(last.last().unwrap().is_final(), "{last:?}");
        drop(mta);
        session.await.unwrap();
    }
}

#[cfg(test)]
mod bounds_tests {
    use super::*;
    use crate::codec::cmd;

    struct Nothing;

    impl Scanner for Nothing {
        fn early(&self, _: SmtpStage, _: &Envelope) -> Option<Verdict> {
            None
        }

        fn scan<'a>(&'a self, _: ScanInput<'a>) -> mxguard_scan::BoxFuture<'a, ScanOutcome> {
            unreachable!("no scan in these tests")
        }
    }

    fn session(cfg: MilterConfig) -> Session {
        let shared = Arc::new(Shared::new(cfg.clone()));
        Session {
            id: 1,
            peer: "test".into(),
            scanner: Arc::new(Nothing),
            limits: Arc::new(Limits::new(&cfg)),
            cfg: shared.get(),
            shared,
            negotiated: None,
            macros: Default::default(),
            conn: Envelope::default(),
            conn_pending: None,
            msg: None,
        }
    }

    /// 200 MiB of uniquely named macros once took 453 MiB: the session
    /// keeps only the macros it reads, whatever the MTA sends.
    #[tokio::test]
    async fn a_flood_of_unique_macros_leaves_the_session_bounded() {
        let mut s = session(MilterConfig::default());
        let (_mta, end) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(end, MAX_FRAME);
        let mut out = Vec::new();
        for round in 0..100 {
            let pairs = (0..500)
                .map(|i| (format!("{{flood_{round}_{i}}}"), "x".repeat(64)))
                .collect();
            let _ = s
                .handle(
                    Command::Macro {
                        stage: cmd::CONNECT,
                        pairs,
                    },
                    &mut out,
                    &mut reader,
                )
                .await;
        }
        let wanted = Command::Macro {
            stage: cmd::CONNECT,
            pairs: vec![
                ("{client_addr}".into(), "192.0.2.1".into()),
                ("j".into(), "mx.test".into()),
            ],
        };
        let _ = s.handle(wanted, &mut out, &mut reader).await;
        assert!(out.is_empty(), "macros get no reply");
        assert!(s.macros.len() <= 16, "{} macros held", s.macros.len());
        assert!(s.macros.bytes() <= 16 * crate::macros::MAX_VALUE);
        assert_eq!(s.macro_value("client_addr"), Some("192.0.2.1"));
        assert_eq!(s.macro_value("j"), Some("mx.test"));
    }

    /// The per-name header counter once kept growing after the message
    /// passed max_message_size (6M names: 500 MiB).
    #[test]
    fn headers_past_max_message_size_are_not_collected() {
        let cfg = MilterConfig {
            max_message_size: mxguard_core::config::ByteSize(1000),
            ..MilterConfig::default()
        };
        let limits = Limits::new(&cfg);
        let cfg = Arc::new(cfg);
        let mut m = Message::new(Envelope::default(), &cfg, Claim::new(limits.budget.clone()));
        for i in 0..100_000 {
            m.header(&format!("X-Flood-{i}"), b" v", true);
        }
        assert!(m.oversized);
        assert!(m.raw.is_empty());
        // Only the owned names are counted (a fixed array: nothing grows).
        assert_eq!(m.header_counts.get("X-Flood-0"), 0);
        // The headers mxguard deletes are still counted, up to a bound.
        for _ in 0..5000 {
            m.header("X-Spam-Flag", b" NO", true);
        }
        assert_eq!(
            m.header_counts.get("x-spam-flag"),
            crate::reply::MAX_COUNTED_COPIES
        );
        // Every byte received is still counted: `Name:value` and CRLF.
        let flood: u64 = (0..100_000)
            .map(|i| format!("X-Flood-{i}").len() as u64 + 5)
            .sum();
        assert_eq!(m.size, flood + 5000 * 17);
    }

    /// No room while the message is received: after memory_wait its buffer
    /// is given back, the rest is read without being kept, and the answer
    /// is a tempfail; the next message, with room again, is kept.
    #[tokio::test]
    async fn no_room_while_receiving_gives_the_buffer_back_and_tempfails() {
        let cfg = MilterConfig {
            memory_wait: mxguard_core::config::Millis(50),
            memory_budget: mxguard_core::config::ByteSize(8 << 20),
            max_message_size: mxguard_core::config::ByteSize(3 << 19),
            ..MilterConfig::default()
        };
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        let mut s = session(cfg);
        let (_mta, end) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(end, MAX_FRAME);
        let mut out = Vec::new();
        let budget = s.limits.budget.clone();
        let mut other = Claim::new(budget.clone());
        assert!(other.try_grow_to(budget.large_ceiling() - (1 << 19)));

        let mail = || Command::Mail(vec!["<a@example.com>".into()]);
        let _ = s.handle(mail(), &mut out, &mut reader).await;
        out.clear();
        for _ in 0..40 {
            let chunk = Command::Body(vec![b'x'; 30_000]);
            let _ = s.handle(chunk, &mut out, &mut reader).await;
        }
        let m = s.msg.as_ref().unwrap();
        assert!(m.over_budget);
        assert!(m.raw.is_empty());
        assert_eq!(m.size, 2 + 40 * 30_000);
        assert_eq!(budget.used(), other.held());
        out.clear();
        let _ = s
            .handle(Command::EndOfMessage(Vec::new()), &mut out, &mut reader)
            .await;
        let replies = crate::codec::decode_replies(&out, MAX_FRAME).unwrap();
        assert_eq!(replies, [reply::busy_reply()]);
        assert_eq!(s.limits.busy.total(), 1);

        drop(other);
        out.clear();
        let _ = s.handle(mail(), &mut out, &mut reader).await;
        for _ in 0..40 {
            let chunk = Command::Body(vec![b'x'; 30_000]);
            let _ = s.handle(chunk, &mut out, &mut reader).await;
        }
        let m = s.msg.as_ref().unwrap();
        assert!(!m.over_budget);
        assert_eq!(m.raw.len(), 2 + 40 * 30_000);
    }

    /// Before they are kept, a message's bytes are claimed from the budget,
    /// with the buffer's spare capacity; dropping the message gives them
    /// back.
    #[tokio::test]
    async fn a_message_claims_what_it_buffers() {
        let mut s = session(MilterConfig::default());
        let (_mta, end) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(end, MAX_FRAME);
        let mut out = Vec::new();
        let _ = s
            .handle(
                Command::Mail(vec!["<a@example.com>".into()]),
                &mut out,
                &mut reader,
            )
            .await;
        for _ in 0..100 {
            let chunk = Command::Body(vec![b'x'; 10_000]);
            let _ = s.handle(chunk, &mut out, &mut reader).await;
        }
        let m = s.msg.as_ref().unwrap();
        assert_eq!(m.raw.len(), 2 + 100 * 10_000);
        assert_eq!(m.claim.held(), m.raw.capacity() as u64);
        assert!(m.raw.capacity() <= m.raw.len() + m.raw.len() / 4 + FIRST_BUFFER);
        assert_eq!(s.limits.budget.used(), m.claim.held());
        let _ = s.handle(Command::Abort, &mut out, &mut reader).await;
        assert_eq!(s.limits.budget.used(), 0);
    }
}
