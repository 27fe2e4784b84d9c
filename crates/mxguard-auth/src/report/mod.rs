//! DMARC aggregate reports (RFC 7489 section 7.2; RFC 9990 for DMARCbis).
//!
//! The life of a report:
//!
//! 1. The DMARC check calls [`record_evaluation`] once per inbound message
//!    it evaluated, with a plain [`Evaluation`]. That adds one to a counter
//!    per (reporting domain, day, row): a row is everything a report
//!    `<record>` says (source IP, disposition, results, identifiers), so a
//!    day of mail from one sender costs one counter, not one row per
//!    message ([`store`]).
//! 2. After the day is over (at `send_hour`), [`Reporter`] builds one
//!    report per reporting domain from the counters ([`xml`]): the RFC 7489
//!    appendix C form, or the RFC 9990 form when the domain's record is
//!    DMARCbis. It gzips it into a mail with the RFC's Subject and file name
//!    ([`mail`]), optionally DKIM-signed through [`SignFn`].
//! 3. The destinations are the `rua` mailto: URIs of the record
//!    ([`rua`]), odd values dropped with a logged reason, `!size` limits
//!    honoured under RFC 7489, and destinations outside the domain checked
//!    against their `_report._dmarc` authorisation record ([`authz`]).
//! 4. The mail goes to the configured relay by SMTP ([`smtp`]). The send
//!    state in the store makes it at most once per domain and day, across
//!    restarts ([`send`]).

pub mod authz;
pub mod from_verdict;
pub mod mail;
pub mod period;
pub mod rua;
pub mod send;
pub mod smtp;
pub mod store;
pub mod xml;

pub use send::{Outcome, Reporter, SignFn};
pub use store::{StoredRow, record_evaluation};

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The form of the DMARC record a policy came from, which decides the
/// report's form: RFC 7489 (appendix C schema, `pct`, `!size` limits) or
/// DMARCbis (RFC 9989/9990: `np`, `t`, the `dmarc-2.0` namespace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordForm {
    #[default]
    Rfc7489,
    DmarcBis,
}

/// `p`, `sp`, `np` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    None,
    Quarantine,
    Reject,
}

/// `adkim` / `aspf`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alignment {
    #[default]
    Relaxed,
    Strict,
}

/// How the policy was found (RFC 9990 `discovery_method`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discovery {
    /// The organisational domain by the public suffix list (RFC 7489).
    #[default]
    Psl,
    /// The DNS tree walk (DMARCbis).
    Treewalk,
}

/// The policy as published, for `<policy_published>` and the destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishedPolicy {
    /// The domain whose `_dmarc` record was used: the reports' domain.
    pub domain: String,
    pub form: RecordForm,
    pub p: Policy,
    pub sp: Option<Policy>,
    pub np: Option<Policy>,
    /// RFC 7489 `pct` (100 when absent); DMARCbis has none.
    pub pct: Option<u8>,
    /// DMARCbis `t=y`.
    pub testing: bool,
    pub adkim: Alignment,
    pub aspf: Alignment,
    pub fo: Option<String>,
    /// The `rua` URIs as written in the record, one per element (a raw tag
    /// value can be split with [`rua::split`]).
    pub rua: Vec<String>,
    pub discovery: Discovery,
}

/// The SPF identity checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfScope {
    #[default]
    Mfrom,
    Helo,
}

/// RFC 8601 SPF results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    #[default]
    None,
    Neutral,
    Pass,
    Fail,
    Softfail,
    Temperror,
    Permerror,
}

/// RFC 8601 DKIM results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimResult {
    #[default]
    None,
    Pass,
    Fail,
    Policy,
    Neutral,
    Temperror,
    Permerror,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct SpfAuth {
    pub domain: String,
    pub scope: SpfScope,
    pub result: SpfResult,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct DkimAuth {
    /// `d=`
    pub domain: String,
    /// `s=`
    pub selector: String,
    pub result: DkimResult,
}

/// What was done to the message because of DMARC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// DMARC failed and nothing was done (p=none, testing, an override).
    #[default]
    None,
    /// DMARC passed (RFC 9990; reported as `none` in the RFC 7489 form).
    Pass,
    Quarantine,
    Reject,
}

/// Why the disposition differs from the policy (`<reason><type>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideKind {
    Forwarded,
    SampledOut,
    TrustedForwarder,
    MailingList,
    LocalPolicy,
    #[default]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Override {
    pub kind: OverrideKind,
    pub comment: Option<String>,
}

/// One inbound DMARC evaluation: the seam between the DMARC check and the
/// reports. Plain data, so the check needs nothing from this module but
/// this struct and [`record_evaluation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// When (Unix seconds): decides the report's day.
    pub time: u64,
    pub source_ip: IpAddr,
    /// RFC 5322.From domain.
    pub header_from: String,
    /// RFC 5321.MailFrom domain (the HELO name when MAIL FROM was empty).
    pub envelope_from: String,
    /// The recipient's domain, if the check knows it (optional in reports).
    pub envelope_to: Option<String>,
    /// SPF results, uninterpreted by DMARC (MAIL FROM and/or HELO).
    pub spf: Vec<SpfAuth>,
    /// One per DKIM signature looked at.
    pub dkim: Vec<DkimAuth>,
    /// Whether an aligned SPF pass / DKIM pass was found.
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
    pub policy: PublishedPolicy,
    /// The disposition applied.
    pub disposition: Disposition,
    /// Why it differs from the policy, if it does.
    pub overrides: Vec<Override>,
}

#[cfg(test)]
mod tests;
