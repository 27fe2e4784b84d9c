//! ARC chain validation (RFC 8617), by mail-auth: the chain's result and
//! who sealed it, so a trusted sealer's pass can stand in for a DMARC
//! failure the forwarding caused (lists, forwarders).

use crate::results::{AuthResult, normalise_domain};
use crate::{AuthenticatedMessage, Verifier};
use mail_auth::DkimResult;

/// ARC sets past this many are not read (RFC 8617 5.1.1.1.1 caps a chain
/// at 50 instances; a longer one fails).
pub const MAX_SETS: usize = 50;

/// What the chain says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcVerdict {
    /// pass, fail, none (no chain), temperror (a key could not be
    /// fetched), permerror (a set that does not parse).
    pub result: AuthResult,
    /// How many sets the chain has.
    pub sets: usize,
    /// `d=` of each ARC-Seal, instance 1 first: the last is the sealer
    /// that handed the message to us.
    pub sealers: Vec<String>,
    pub reason: Option<String>,
}

impl ArcVerdict {
    /// The domain of the newest seal.
    pub fn last_sealer(&self) -> Option<&str> {
        self.sealers.last().map(String::as_str)
    }
}

/// Validates the ARC chain of `message`.
pub async fn verify(verifier: &Verifier, message: &AuthenticatedMessage<'_>) -> ArcVerdict {
    let out = verifier.authenticator().verify_arc(message).await;
    let (result, reason) = match out.result() {
        DkimResult::Pass => (AuthResult::Pass, None),
        DkimResult::None => (AuthResult::None, None),
        DkimResult::TempError(e) => (AuthResult::TempError, Some(e.to_string())),
        // A chain that does not parse or does not add up fails (RFC 8617
        // 5.2): mail-auth reports a broken chain as neutral.
        DkimResult::Fail(e) | DkimResult::Neutral(e) | DkimResult::PermError(e) => {
            (AuthResult::Fail, Some(e.to_string()))
        }
    };
    let mut sealers: Vec<(u32, String)> = message
        .as_headers
        .iter()
        .map(|h| (h.header.i, normalise_domain(&h.header.d)))
        .collect();
    sealers.sort_by_key(|(i, _)| *i);
    ArcVerdict {
        result,
        sets: message.as_headers.len(),
        sealers: sealers.into_iter().map(|(_, d)| d).collect(),
        reason,
    }
}
