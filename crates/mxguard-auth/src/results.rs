//! The results of the checks in RFC 8601's words, shared by the checks
//! that read each other's results (DMARC reads SPF and DKIM) and by the
//! Authentication-Results header.

use std::fmt;

/// One method's result, as RFC 8601 (section 2.7) names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    /// No record, no signature: the method does not apply.
    None,
    /// A transient failure (DNS); the answer may differ later.
    TempError,
    /// A permanent failure: a broken record or signature.
    PermError,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::None => "none",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
        }
    }
}

impl fmt::Display for AuthResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain as compared in alignment: lower case, no trailing dot.
pub(crate) fn normalise_domain(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}
