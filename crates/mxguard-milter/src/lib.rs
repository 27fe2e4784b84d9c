//! mxguard-milter: the milter front end that Postfix calls
//! (`smtpd_milters = inet:127.0.0.1:11336`, `milter_protocol = 6`).
//!
//! It owns the milter protocol (version 6) in [`codec`], the server that
//! speaks it to the MTA in [`server`] (one task per connection, several
//! messages per connection, PROGRESS while a scan is slow, graceful
//! shutdown), and the translation of a [`Verdict`] and its [`MilterBlock`]
//! (the spam headers, computed by the scan service) into milter replies in
//! [`reply`]. It decides nothing about a message itself: every decision
//! comes from a [`Scanner`], the scan service in the binary. [`client`]
//! speaks the MTA's side, for tests and the load generator.

pub mod budget;
pub mod client;
pub mod codec;
pub mod macros;
pub mod reply;
pub mod server;
pub mod stream;

pub use mxguard_core::{Envelope, SmtpStage, Verdict};
pub use server::{Listener, MilterServer, serve};

/// What the milter asks about a message: the scan service's trait. The
/// binary hands it the [`ScanService`](mxguard_scan::ScanService); tests
/// use fakes.
pub use mxguard_scan::MessageScanner as Scanner;
pub use mxguard_scan::{MilterBlock, ScanInput, ScanOutcome};
