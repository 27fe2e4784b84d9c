//! The policy server: TCP or unix socket, one task per connection, many
//! requests per connection, answers in order.
//!
//! Shutdown (like the milter's): the accept loop stops and the listener is
//! closed, so new connections are refused; connections waiting for a
//! request close at once, and a connection in the middle of a request
//! answers it, then closes (Postfix reconnects to the restarted daemon).
//! After the grace period the rest are cut, with one log line.

use crate::engine::Engine;
use crate::protocol::{RequestBuilder, answer};
use mxguard_core::shared::Shared;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use mxguard_net::Listener;

/// How long connections get to finish their request after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves until `shutdown` turns true, then lets open connections finish
/// their current request (at most [`SHUTDOWN_GRACE`]) and returns.
pub async fn serve(
    listener: Listener,
    engine: Arc<Shared<Engine>>,
    idle: Duration,
    shutdown: watch::Receiver<bool>,
) {
    serve_with_grace(listener, engine, idle, SHUTDOWN_GRACE, shutdown).await;
}

/// [`serve`] with another grace period for the connections in flight.
pub async fn serve_with_grace(
    listener: Listener,
    engine: Arc<Shared<Engine>>,
    idle: Duration,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((conn, _peer)) => {
                    conns.spawn(handle(conn, engine.clone(), idle, shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!("policy: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
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
}

async fn handle(
    conn: Box<dyn mxguard_net::Stream>,
    engine: Arc<Shared<Engine>>,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reader = BufReader::new(conn);
    let mut builder = RequestBuilder::default();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let between_requests = builder.is_empty() && reader.buffer().is_empty();
        let read = if between_requests {
            // Between requests, shutdown closes the connection at once.
            let first = tokio::select! {
                r = tokio::time::timeout(idle, read_line(&mut reader, &mut line)) => Some(r),
                _ = stop_requested(&mut shutdown) => None,
            };
            match first {
                Some(r) => r,
                None if line.is_empty() => return,
                // A request had begun to arrive: read it and answer it.
                None => tokio::time::timeout(idle, read_line(&mut reader, &mut line)).await,
            }
        } else {
            tokio::time::timeout(idle, read_line(&mut reader, &mut line)).await
        };
        let n = match read {
            Err(_) => return, // idle: Postfix reconnects when it needs to
            Ok(Err(e)) => {
                tracing::info!("policy: closing connection: {e}");
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
                if reader
                    .get_mut()
                    .write_all(answer(&action).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                if *shutdown.borrow() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("policy: malformed request, closing connection: {e}");
                return;
            }
        }
    }
}

/// Resolves once shutdown is asked for (or its sender is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
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
        if total > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request line too long",
            ));
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}
