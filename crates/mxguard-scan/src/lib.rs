//! mxguard-scan: the one scan pipeline and the one scan service that every
//! front end shares.
//!
//! A [`Task`] (the envelope + the message model, `mxguard_message::Mail`) goes through the
//! registered checks, each in its own module under [`checks`], and the
//! [`SymbolTable`](mxguard_core::SymbolTable) turns their symbols into a
//! [`Verdict`](mxguard_core::Verdict). Cheap checks run inline; checks
//! that wait (DNS, the store, clamd) run side by side, each with its
//! time-out, within `[scan] scan_timeout`. What checks may use besides the
//! message (resolver, store, classifier model, clock) is handed to them as
//! [`Services`] when the pipeline is built: this crate reaches the network
//! and the store only through those (`mxguard-dns`, `mxguard-store`), and
//! reads map files through `mxguard_core::maps`. [`greylist`], a stage
//! after scoring, keeps score greylisting's state in the store.
//!
//! The milter, `mxguard scan` and the HTTP API call the [`ScanService`]
//! and only translate to and from its [`ScanOutcome`]: the verdict and
//! rspamd's milter block ([`milter_headers`]).

pub mod checks;
pub mod greylist;
mod lead_text;
pub mod milter_headers;
mod phrases;
mod pipeline;
pub mod record_failures;
mod schedule;
pub mod service;
mod services;
mod task;
#[cfg(test)]
mod test_corpus;

pub use checks::{BoxFuture, sections};
pub use milter_headers::MilterBlock;
pub use pipeline::{Pipeline, PipelineWarning, Prepared};
pub use service::{
    Autolearn, MessageScanner, Recording, ScanInput, ScanOutcome, ScanService, history_row,
};
pub use services::Services;
pub use task::Task;
