//! mxguard-report: the mail-log report (`mxguard report`): pflogsumm's
//! numbers and sections from Postfix logs, as text laid out like
//! pflogsumm's, JSON for monitoring, or one self-contained HTML page with
//! SVG charts, and as a MIME mail with text and HTML parts.
//!
//! One streaming pass ([`collect::Collector`]) over lines cut from a fixed
//! buffer ([`input`]); renderers ([`text`], [`json`], [`html`]) read the
//! finished [`report::Report`]. It must not: allocate per line on the hot
//! path, hold more than the queue ids in flight and the distinct hosts and
//! addresses, or fail on a line it cannot read (counted and skipped).

pub mod collect;
pub mod config;
pub mod date;
pub mod domain;
pub mod events;
pub mod hash;
pub mod html;
pub mod input;
pub mod json;
pub mod line;
pub mod mime;
pub mod period;
pub mod reason;
pub mod report;
pub mod text;

pub use collect::{Collector, Options};
pub use report::{GrandTotals, Report};
