//! mxguard-core: the vocabulary every other crate shares.
//!
//! It owns the config model and its validation, the SMTP [`Envelope`], the
//! [`Action`] names, symbols and scoring, and the [`Verdict`]. It knows nothing
//! about sockets, the store or how checks work: front ends and the scan
//! pipeline depend on it, never the other way round.

pub mod action;
pub mod config;
pub mod envelope;
pub mod files;
pub mod iptable;
pub mod maps;
pub mod restriction;
pub mod rules;
pub mod scoring;
pub mod shared;
pub mod verdict;

pub use action::Action;
pub use envelope::{Envelope, SmtpStage};
pub use scoring::{ScanResults, SymbolDef, SymbolTable};
pub use verdict::{SymbolResult, Verdict};
