//! DKIM verification (RFC 6376, RFC 8463 Ed25519): every signature of a
//! message up to [`MAX_SIGNATURES`], by mail-auth, keys fetched through the
//! shared resolver.

use crate::results::{AuthResult, normalise_domain};
use crate::{AuthenticatedMessage, Verifier};
use mail_auth::common::crypto::Algorithm;
use mail_auth::dkim::DkimError;
use mail_auth::{DkimResult, Parameters};

/// Signatures past this many (in header order) are not verified: each
/// costs a key lookup and an RSA operation. Ten covers every real chain
/// of signers (author, ESP, list, forwarder).
pub const MAX_SIGNATURES: usize = 10;

/// One signature's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimVerdict {
    pub result: AuthResult,
    /// `d=`; empty when the signature could not be parsed.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// `i=` (the AUID), when given.
    pub identity: String,
    /// Why it did not pass, for logs and the symbol's options.
    pub reason: Option<String>,
}

fn convert(r: &DkimResult) -> (AuthResult, Option<String>) {
    match r {
        DkimResult::Pass => (AuthResult::Pass, None),
        DkimResult::None => (AuthResult::None, None),
        DkimResult::Fail(e) => (AuthResult::Fail, Some(e.to_string())),
        // A body that does not match its hash is a failed signature
        // (RFC 6376 6.1.3), whatever mail-auth calls it.
        DkimResult::Neutral(e @ mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            (AuthResult::Fail, Some(e.to_string()))
        }
        DkimResult::Neutral(e) | DkimResult::PermError(e) => {
            (AuthResult::PermError, Some(e.to_string()))
        }
        DkimResult::TempError(e) => (AuthResult::TempError, Some(e.to_string())),
    }
}

/// Verifies every DKIM signature of `message`: one verdict each, in header
/// order (malformed signatures first, as permerror). Empty: no signature.
pub async fn verify(verifier: &Verifier, message: &AuthenticatedMessage<'_>) -> Vec<DkimVerdict> {
    let outputs = verifier
        .authenticator()
        .verify_dkim(Parameters::new(message).with_txt_cache(verifier.keys()))
        .await;
    outputs
        .iter()
        .take(MAX_SIGNATURES)
        .map(|o| {
            let (mut result, mut reason) = convert(o.result());
            // RFC 8301 3.1: rsa-sha1 signatures are not valid, whatever
            // the cryptography says.
            if o.signature().is_some_and(|s| s.a == Algorithm::RsaSha1) {
                result = AuthResult::PermError;
                reason = Some("rsa-sha1 is not acceptable (RFC 8301)".to_string());
            }
            let (domain, selector, identity) = match o.signature() {
                Some(s) => (normalise_domain(&s.d), s.s.clone(), s.i.clone()),
                None => Default::default(),
            };
            DkimVerdict {
                result,
                domain,
                selector,
                identity,
                reason,
            }
        })
        .collect()
}
