//! mxguard-scan: the one scan pipeline that every front end shares.
//!
//! A [`Task`] (the envelope + the message model, `mxguard_message::Mail`) goes through the
//! registered checks, each in its own module under [`checks`], and the
//! [`SymbolTable`](mxguard_core::SymbolTable) turns their symbols into a
//! [`Verdict`]. The milter, the HTTP API and `mxguard scan` only translate
//! to and from this. This crate does no I/O besides reading map files (through `mxguard_core::maps`); it
//! never touches the store or sockets.

pub mod checks;
mod pipeline;
mod task;

pub use pipeline::{Pipeline, PipelineWarning};
pub use task::Task;
