//! Accepting connections when accept itself fails.
//!
//! Out of descriptors (EMFILE, ENFILE) or kernel memory, the listener stays
//! readable, so a loop that retries at a fixed pace spins and logs on every
//! try while the connection waits in the backlog. [`Acceptor`] waits
//! longer after each failure in a row (from [`FIRST_BACKOFF`], doubling up
//! to [`MAX_BACKOFF`]), starts over after a success, and logs the burst
//! once (with a count when it ends). The milter and the policy server both
//! accept through it.

use crate::burst::{Burst, Report};
use crate::{Listener, Stream};
use std::io;
use std::time::Duration;
use tokio::time::Instant;

/// The wait after the first failed accept of a burst.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The back-off arithmetic, apart from any clock or socket.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// One more failure in a row: how long to wait before the next try.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next.unwrap_or(FIRST_BACKOFF);
        self.next = Some((wait * 2).min(MAX_BACKOFF));
        wait
    }

    /// A success: the next failure waits [`FIRST_BACKOFF`] again.
    pub fn succeeded(&mut self) {
        self.next = None;
    }
}

/// Accepts from a [`Listener`], backing off while accept fails.
///
/// [`Acceptor::accept`] is cancel-safe: when a `select!` drops it during a
/// wait, the next call finishes that wait first, so other branches firing
/// cannot turn the back-off into a busy loop.
pub struct Acceptor {
    /// The server's name in log lines (`milter`, `policy`).
    server: &'static str,
    backoff: Backoff,
    retry_at: Option<Instant>,
    failures: Burst,
}

impl Acceptor {
    pub fn new(server: &'static str) -> Acceptor {
        Acceptor {
            server,
            backoff: Backoff::default(),
            retry_at: None,
            failures: Burst::default(),
        }
    }

    /// The next connection and a name for its peer; waits out failures.
    pub async fn accept(&mut self, listener: &Listener) -> (Box<dyn Stream>, String) {
        loop {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
                self.retry_at = None;
            }
            match listener.accept().await {
                Ok(accepted) => {
                    self.succeeded();
                    return accepted;
                }
                Err(e) => {
                    let wait = self.failed(&e);
                    self.retry_at = Some(Instant::now() + wait);
                }
            }
        }
    }

    /// Accept failures since the start.
    pub fn failures(&self) -> u64 {
        self.failures.total()
    }

    fn failed(&mut self, e: &io::Error) -> Duration {
        let wait = self.backoff.failed();
        let server = self.server;
        let hint = if is_out_of_descriptors(e) {
            "out of file descriptors: raise LimitNOFILE, or lower milter.max_sessions / \
             policy.max_connections"
        } else {
            "the connection waits in the listen queue"
        };
        match self.failures.fault() {
            Report::First => tracing::error!(
                "{server}: accept failed: {e} ({hint}); retrying with back-off up to \
                 {MAX_BACKOFF:?}, further failures counted"
            ),
            Report::Ongoing { count, since } => tracing::error!(
                failures = count,
                "{server}: accept still failing: {count} failures in {}s, last: {e} ({hint})",
                since.as_secs()
            ),
            Report::Quiet => {}
        }
        wait
    }

    fn succeeded(&mut self) {
        self.backoff.succeeded();
        if let Some(ended) = self.failures.clear() {
            tracing::warn!(
                failures = ended.count,
                "{}: accepting again after {} failed accepts in {:.1}s",
                self.server,
                ended.count,
                ended.lasted.as_secs_f64()
            );
        }
    }
}

/// EMFILE or ENFILE: the process's or the system's descriptor table is full.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE)
}

// Linux's and the BSDs' values (errno.h), the same on every Unix we build for.
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_restarts_after_a_success() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| b.failed()).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        // Ten seconds of failures cost a handful of tries, not one per 50 ms.
        let mut spent = Duration::ZERO;
        let mut b = Backoff::default();
        let mut tries = 0;
        while spent < Duration::from_secs(10) {
            spent += b.failed();
            tries += 1;
        }
        assert!(tries <= 20, "{tries} tries in 10 s");
        b.succeeded();
        assert_eq!(b.failed(), FIRST_BACKOFF);
    }

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(24)));
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(23)));
        assert!(!is_out_of_descriptors(&io::Error::from_raw_os_error(103)));
        assert!(!is_out_of_descriptors(&io::Error::other("x")));
    }

    /// A listener whose accept fails is retried after the back-off, and the
    /// connection that waited is served once accept works again.
    #[tokio::test]
    async fn a_failing_accept_is_waited_out() {
        let l = Listener::bind("127.0.0.1:0", 0o666).await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut a = Acceptor::new("test");
        // Two failures in a row, as accept would report them.
        a.failed(&io::Error::from_raw_os_error(24));
        a.retry_at = Some(Instant::now() + a.failed(&io::Error::from_raw_os_error(24)));
        assert_eq!(a.failures(), 2);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_conn, peer) = a.accept(&l).await;
        assert_eq!(peer, client.local_addr().unwrap().to_string());
        assert!(a.retry_at.is_none() && !a.failures.active());
        assert_eq!(a.backoff.failed(), FIRST_BACKOFF, "back-off restarted");
    }
}
