//! mxguard-milter: the milter front end that Postfix calls
//! (`smtpd_milters = inet:127.0.0.1:11336`, `milter_protocol = 6`).
//!
//! It owns the milter protocol (version 6) in [`codec`], the server that
//! speaks it to the MTA in [`server`] (one task per connection, several
//! messages per connection, PROGRESS while a scan is slow, graceful
//! shutdown), and the translation of a [`Verdict`] into milter replies and
//! rspamd-style spam headers in [`reply`]. It decides nothing about a
//! message itself: every decision comes from a [`Scanner`], which the binary
//! implements over the scan pipeline. [`client`] speaks the MTA's side, for
//! tests and the load generator.

pub mod budget;
pub mod client;
pub mod codec;
pub mod macros;
pub mod reply;
pub mod server;
pub mod stream;

pub use mxguard_core::{Envelope, SmtpStage, Verdict};
pub use server::{Listener, MilterServer, serve};

/// What the milter asks about a message. The binary implements it over the
/// scan pipeline; tests use fakes.
pub trait Scanner: Send + Sync + 'static {
    /// Checks that can decide before DATA (prefilter lists on ip, helo,
    /// from, rcpt). `None` = go on. Called on the async runtime at each of
    /// those stages, so it must be quick and must not block on I/O. At
    /// [`SmtpStage::Rcpt`] the recipient being judged is the last one in
    /// `envelope.rcpts`.
    fn early(&self, stage: SmtpStage, envelope: &Envelope) -> Option<Verdict>;

    /// The full scan at end of message: `message` is the whole message as
    /// received (headers with CRLF line endings, the blank line, the body).
    /// CPU work: the server calls it through `spawn_blocking`.
    fn scan(&self, envelope: &Envelope, message: &[u8]) -> Verdict;
}
