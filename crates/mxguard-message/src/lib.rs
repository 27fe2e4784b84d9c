//! mxguard-message: one message, parsed once, as every part of mxguard
//! sees it.
//!
//! It owns the bounded MIME parse ([`parse()`], [`parse::Limits`]), the
//! message model [`Mail`] with its lazily computed views (header fields
//! decoded and raw, text parts with HTML reduced ([`html`], [`text`]), URLs
//! with their hosts and registrable domains ([`url`]), attachments with
//! their detected types ([`attachment`]), Received hops ([`received`])),
//! the links of an HTML source with their shown text ([`anchor`]),
//! and the organisational domain of a host name by the public suffix list
//! ([`domain::organisational`]), the one answer to "who owns this host"
//! for the policy server, the checks and the classifier's callers.
//!
//! It must not: decide anything about a message (symbols, scores and
//! verdicts are the checks' and the scan crate's), do I/O (no sockets,
//! files, DNS or store: a view is computed from the bytes alone), or
//! allocate without bound on hostile input (every view has a documented
//! limit: [`parse::Limits`], [`mail::MAX_URLS`], [`mail::MAX_HOPS`],
//! [`mail::MAX_ATTACHMENTS`]). The classifier (mxguard-learn) and the scan
//! crate depend on it, never the other way round.

pub mod anchor;
pub mod attachment;
pub mod domain;
pub mod fold;
pub mod html;
pub mod mail;
pub mod parse;
pub mod received;
pub mod text;
pub mod url;

pub use mail::{Attachment, Mail, Url};
pub use parse::parse;
