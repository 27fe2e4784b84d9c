//! mxguard-scan: the one scan pipeline that every front end shares.
//!
//! A [`Task`] (the envelope + the message model, `mxguard_message::Mail`) goes through the
//! registered checks, each in its own module under [`checks`], and the
//! [`SymbolTable`](mxguard_core::SymbolTable) turns their symbols into a
//! [`Verdict`]. The milter, the HTTP API and `mxguard scan` only translate
//! to and from this. The checks do no I/O besides reading map files
//! (through `mxguard_core::maps`); only [`greylist`], a stage after scoring,
//! touches the store.

pub mod checks;
pub mod greylist;
mod pipeline;
mod task;

pub use pipeline::{Pipeline, PipelineWarning};
pub use task::Task;
