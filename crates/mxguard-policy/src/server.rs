//! The policy server: TCP or unix socket, one task per connection, many
//! requests per connection, answers in order.
//!
//! Limits (so no client can take the machine's memory or descriptors):
//! at most `max_connections` connections; a request of at most
//! [`MAX_REQUEST`](crate::protocol::MAX_REQUEST) bytes, complete within
//! [`REQUEST_TIMEOUT`] of its first line; a connection silent for
//! `idle_timeout` between requests is closed. At the connection cap, the
//! connection idle longest is closed to make room: Postfix notices an idle
//! connection closed by the server and reconnects for its next request
//! without a warning. When none is idle, the new connection is closed at
//! once: Postfix tries once more, then answers
//! `smtpd_policy_service_default_action` (451 4.3.5 by default), so the
//! client retries later. Each kind of refusal is logged once per burst.
//! Once connections fall to half their peak, the memory they freed is given
//! back to the system ([`mxguard_net::memory`]).
//!
//! Shutdown (like the milter's): the accept loop stops and the listener is
//! closed, so new connections are refused; connections waiting for a
//! request close at once, and a connection in the middle of a request
//! answers it, then closes (Postfix reconnects to the restarted daemon).
//! After the grace period the rest are cut, with one log line.

use crate::engine::Engine;
use crate::protocol::{RequestBuilder, push_answer};
use mxguard_core::config::PolicyConfig;
use mxguard_core::shared::Shared;
use mxguard_net::accept::Acceptor;
use mxguard_net::burst::{Burst, Report};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use mxguard_net::Listener;

/// How long connections get to finish their request after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A request must be complete this long after its first line. Postfix
/// writes a request at once; only a stalled or hostile client is slower.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served past `max_connections` while the idle ones closed to
/// make room are going (kept in [`mxguard_net::fd::RESERVE`]).
pub const EVICTION_SLACK: usize = 32;

/// A connection's read buffer. Requests are a few KiB; a longer line is
/// gathered across refills.
const READ_BUFFER: usize = 4096;

/// What bounds the server (from `[policy]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection silent this long between requests is closed.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// A request must be complete this long after its first line
    /// ([`REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
}

impl Limits {
    pub fn from_config(c: &PolicyConfig) -> Limits {
        Limits {
            idle_timeout: c.idle_timeout.as_duration(),
            max_connections: c.max_connections,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Serves until `shutdown` turns true, then lets open connections finish
/// their current request (at most [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve(
    listener: Listener,
    engine: Arc<Shared<Engine>>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    serve_with_grace(listener, engine, limits, SHUTDOWN_GRACE, shutdown).await;
}

/// [`serve`] with another grace period for the connections in flight.
pub async fn serve_with_grace(
    listener: Listener,
    engine: Arc<Shared<Engine>>,
    limits: Limits,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let shared = Arc::new(Conns::default());
    let mut conns: JoinSet<()> = JoinSet::new();
    let mut acceptor = Acceptor::new("policy");
    let mut refused = Burst::default();
    let mut evicted = Burst::default();
    let mut trimmer = mxguard_net::memory::Trimmer::start();
    let cap = limits.max_connections.max(1);
    loop {
        tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            (conn, peer) = acceptor.accept(&listener) => {
                let active = shared.active.load(Ordering::Acquire);
                if active >= cap {
                    if active < cap + EVICTION_SLACK && shared.evict_longest_idle() {
                        match evicted.fault() {
                            Report::First => tracing::warn!(max_connections = cap, "policy: max_connections ({cap}) connections open; closing the connection idle longest for each new one (Postfix reconnects when it needs to)"),
                            Report::Ongoing { count, since } => tracing::warn!(closed = count, "policy: still at max_connections ({cap}): {count} idle connections closed to make room in {}s", since.as_secs()),
                            Report::Quiet => {}
                        }
                    } else {
                        drop(conn);
                        match refused.fault() {
                            Report::First => tracing::warn!(max_connections = cap, peer, "policy: max_connections ({cap}) connections open and none idle; closing new connections at once (Postfix answers smtpd_policy_service_default_action) while it lasts"),
                            Report::Ongoing { count, since } => tracing::warn!(refused = count, "policy: still at max_connections ({cap}) with none idle: {count} new connections closed in {}s", since.as_secs()),
                            Report::Quiet => {}
                        }
                        continue;
                    }
                } else {
                    if let Some(ended) = evicted.clear() {
                        tracing::info!(closed = ended.count, "policy: under max_connections again, after closing {} idle connections to make room", ended.count);
                    }
                    if let Some(ended) = refused.clear() {
                        tracing::warn!(refused = ended.count, "policy: under max_connections again, after closing {} new connections at once", ended.count);
                    }
                }
                let guard = ConnGuard::new(shared.clone());
                trimmer.opened(shared.active.load(Ordering::Acquire));
                conns.spawn(handle(conn, engine.clone(), limits, guard, shutdown.clone()));
            }
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                trimmer.closed(shared.active.load(Ordering::Acquire));
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!("policy: a connection failed: {e}");
                }
            }
        }
    }
    drop(listener);
    let cut = mxguard_net::drain(&mut conns, grace).await;
    if cut > 0 {
        tracing::warn!(
            connections = cut,
            "policy: connections still answering after the shutdown grace period ({grace:?}); closed them"
        );
    }
    // Answered writes still gathering for their round go to the store now:
    // a clean stop loses none.
    let engine = engine.get();
    if !engine.settle(crate::engine::WRITE_WAIT).await {
        tracing::warn!(
            pending = engine.pending_writes(),
            "policy: greylist writes still not in the store {:?} after shutdown began (is the store failing?); they are lost, which costs their senders one more deferral",
            crate::engine::WRITE_WAIT
        );
    }
}

/// What the accept loop knows of the open connections.
#[derive(Default)]
struct Conns {
    active: AtomicUsize,
    ids: AtomicU64,
    /// Every open connection's idle slot, by id: registered once per
    /// connection, so waiting for the next request costs an atomic store,
    /// not a lock, a map insert and an allocation per request.
    idle: Mutex<HashMap<u64, Arc<IdleSlot>>>,
    /// Malformed or oversized requests (one log line per burst).
    malformed: Mutex<Burst>,
}

/// A connection's idle state, shared with the accept loop.
struct IdleSlot {
    /// Since when (nanoseconds after [`Conns::epoch`]) the connection has
    /// waited for its next request, plus one; 0 while it is busy.
    since: AtomicU64,
    /// Fired when the accept loop needs the room.
    wake: Notify,
}

/// What [`IdleSlot::since`] counts from.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Conns {
    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<IdleSlot>>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the connection idle longest to close; false when none is idle.
    /// The slot is claimed (marked busy) here, so it is chosen once; should
    /// its request arrive at the same moment, it answers it and closes at
    /// its next wait.
    fn evict_longest_idle(&self) -> bool {
        let idle = self.idle();
        loop {
            let Some((since, slot)) = idle
                .values()
                .filter_map(|s| {
                    let since = s.since.load(Ordering::Acquire);
                    (since != 0).then_some((since, s))
                })
                .min_by_key(|(since, _)| *since)
            else {
                return false;
            };
            if slot
                .since
                .compare_exchange(since, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // A stored permit: it closes even if it is not waiting yet.
                slot.wake.notify_one();
                return true;
            }
        }
    }

    fn malformed(&self, e: &dyn std::fmt::Display) {
        let report = self
            .malformed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .fault();
        match report {
            Report::First => tracing::warn!(
                "policy: malformed request, closing connection: {e} (further ones counted, \
                 reported once a minute)"
            ),
            Report::Ongoing { count, since } => tracing::warn!(
                malformed = count,
                "policy: {count} malformed requests in {}s, connections closed; last: {e}",
                since.as_secs()
            ),
            Report::Quiet => {}
        }
    }
}

/// One open connection: counted while it lives, and its idle slot while
/// it waits between requests.
struct ConnGuard {
    conns: Arc<Conns>,
    id: u64,
    slot: Arc<IdleSlot>,
}

impl ConnGuard {
    fn new(conns: Arc<Conns>) -> ConnGuard {
        conns.active.fetch_add(1, Ordering::AcqRel);
        let id = conns.ids.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(IdleSlot {
            since: AtomicU64::new(0),
            wake: Notify::new(),
        });
        conns.idle().insert(id, slot.clone());
        ConnGuard { conns, id, slot }
    }

    /// Marks the connection idle; the slot's notice fires when the accept
    /// loop needs the room.
    fn park(&self) -> &Notify {
        let nanos = u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.slot.since.store(nanos + 1, Ordering::Release);
        &self.slot.wake
    }

    fn unpark(&self) {
        self.slot.since.store(0, Ordering::Release);
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.conns.idle().remove(&self.id);
        self.conns.active.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle(
    conn: Box<dyn mxguard_net::Stream>,
    engine: Arc<Shared<Engine>>,
    limits: Limits,
    guard: ConnGuard,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reader = BufReader::with_capacity(READ_BUFFER, conn);
    let mut builder = RequestBuilder::default();
    let mut line = Vec::with_capacity(256);
    // The answer being written: one buffer for the connection's answers.
    let mut reply = String::with_capacity(256);
    // When the request being read must be complete.
    let mut deadline = Instant::now() + limits.request_timeout;
    // The idle time-out: one timer for the connection, moved only when it
    // fires before the connection has been idle long enough, so waiting for
    // a request does not register a timer each time.
    let mut idle_timer = Box::pin(tokio::time::sleep(limits.idle_timeout));
    loop {
        line.clear();
        let between_requests = builder.is_empty() && reader.buffer().is_empty();
        let read = if let Some(n) = buffered_line(&mut reader, &mut line) {
            // The rest of a request that came in one segment: no wait, so
            // no timer to set up for each of its lines.
            Ok(Ok(n))
        } else if between_requests {
            // Between requests, shutdown or the connection cap closes the
            // connection at once.
            let evicted = guard.park();
            let idle_until = Instant::now() + limits.idle_timeout;
            let first = loop {
                tokio::select! {
                    r = read_line(&mut reader, &mut line) => break Some(r),
                    () = &mut idle_timer => {
                        if Instant::now() >= idle_until {
                            // Idle too long: Postfix reconnects when it needs to.
                            return;
                        }
                        idle_timer.as_mut().reset(idle_until);
                    }
                    _ = stop_requested(&mut shutdown) => break None,
                    _ = evicted.notified() => break None,
                }
            };
            guard.unpark();
            deadline = Instant::now() + limits.request_timeout;
            match first {
                Some(r) => Ok(r),
                None if line.is_empty() => return,
                // A request had begun to arrive: read it and answer it.
                None => tokio::time::timeout_at(deadline, read_line(&mut reader, &mut line)).await,
            }
        } else {
            tokio::time::timeout_at(deadline, read_line(&mut reader, &mut line)).await
        };
        let n = match read {
            Err(_) => return, // idle or too slow: Postfix reconnects when it needs to
            // A line past MAX_LINE; anything else is the peer going away.
            Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                guard.conns.malformed(&e);
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!("policy: connection lost: {e}");
                return;
            }
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        match builder.line(content) {
            Ok(None) => {}
            Ok(Some(req)) => {
                let action = engine.get().decide(&req).await;
                drop(req);
                reply.clear();
                push_answer(&mut reply, &action);
                drop(action);
                if reader.get_mut().write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                if *shutdown.borrow() {
                    return;
                }
                // A long line grew it: an idle connection keeps little.
                if line.capacity() > READ_BUFFER {
                    line = Vec::with_capacity(256);
                }
                if reply.capacity() > READ_BUFFER {
                    reply = String::with_capacity(256);
                }
            }
            Err(e) => {
                guard.conns.malformed(&e);
                return;
            }
        }
    }
}

/// Resolves once shutdown is asked for (or its sender is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Takes a whole line already in the read buffer into the empty `out`,
/// without waiting; `None` when no complete line is buffered. (A buffered
/// line is shorter than the buffer, so within what [`read_line`] accepts.)
fn buffered_line<R: tokio::io::AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let take = memchr(b'\n', r.buffer())? + 1;
    out.extend_from_slice(r.buffer().get(..take)?);
    r.consume(take);
    Some(take)
}

/// Reads one line, refusing to buffer more than a protocol line may hold.
async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R, out: &mut Vec<u8>) -> io::Result<usize> {
    let limit = crate::protocol::MAX_LINE + 2;
    let mut total = 0;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, done) = match memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        out.extend_from_slice(&buf[..take]);
        r.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
        if out.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "request line longer than {} bytes",
                    crate::protocol::MAX_LINE
                ),
            ));
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}
