//! The policy server: TCP or unix socket, one task per connection, many
//! requests per connection, answers in order.

use crate::engine::Engine;
use crate::protocol::{RequestBuilder, answer};
use mxguard_core::shared::Shared;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

pub use mxguard_net::Listener;

/// Serves until `shutdown` turns true, then lets open connections finish
/// their current request.
pub async fn serve(
    listener: Listener,
    engine: Arc<Shared<Engine>>,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((conn, _peer)) => {
                let engine = engine.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { handle(conn, engine, idle, shutdown).await });
            }
            Err(e) => {
                tracing::warn!("policy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(
    conn: Box<dyn mxguard_net::Stream>,
    engine: Arc<Shared<Engine>>,
    idle: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let mut reader = BufReader::new(conn);
    let mut builder = RequestBuilder::default();
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let read = tokio::time::timeout(idle, read_line(&mut reader, &mut line)).await;
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
