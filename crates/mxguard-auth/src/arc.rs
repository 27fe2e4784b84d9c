//! ARC chain validation (RFC 8617), by mail-auth: the chain's result and
//! who sealed it, so a trusted sealer's pass can stand in for a DMARC
//! failure the forwarding caused (lists, forwarders).

use crate::results::{AuthResult, normalise_domain};
use crate::{AuthenticatedMessage, Verifier};
use mail_auth::{DkimResult, Parameters};

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

/// The tags an ARC-Seal must carry (RFC 8617 4.1.3).
const SEAL_TAGS: &[&str] = &["a", "b", "cv", "d", "i", "s"];
/// The tags an ARC-Message-Signature must carry (RFC 8617 4.1.2, the
/// DKIM-Signature's required tags with `i=` for `v=`).
const AMS_TAGS: &[&str] = &["a", "b", "bh", "d", "h", "i", "s"];

/// A strict reading of one ARC-Seal or ARC-Message-Signature tag list
/// (RFC 6376 3.2, RFC 8617 4.1): tag names are letters, digits and `_`,
/// start with a letter and are lower case (names are case-sensitive and
/// the defined ones are lower case), no tag twice, no empty tag between
/// two `;`, every required tag there, the algorithm is rsa-sha256 (RFC
/// 8617 4.1.3; rsa-sha1 is unacceptable, RFC 8301), and a message
/// signature does not sign an ARC-Seal (RFC 8617 4.1.2). mail-auth's
/// parser is lenient on all of these.
fn tag_list_problem(value: &[u8], required: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let mut seen: Vec<String> = Vec::new();
    let parts: Vec<&str> = text.split(';').collect();
    for (n, part) in parts.iter().enumerate() {
        let part = part.trim();
        if part.is_empty() {
            // Only a trailing `;` may leave an empty part.
            if n + 1 == parts.len() {
                continue;
            }
            return Some("an empty tag between two `;`".to_string());
        }
        let Some((name, v)) = part.split_once('=') else {
            return Some(format!("`{part}` is not tag=value"));
        };
        let name = name.trim();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Some(format!("`{name}` is not a valid tag name"));
        }
        if seen.iter().any(|s| s == name) {
            return Some(format!("tag `{name}` appears twice"));
        }
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        if name == "a" && compact != "rsa-sha256" {
            return Some(format!("a={compact} is not rsa-sha256"));
        }
        if name == "h"
            && compact
                .split(':')
                .any(|h| h.eq_ignore_ascii_case("arc-seal"))
        {
            return Some("the ARC-Message-Signature signs an ARC-Seal".to_string());
        }
        seen.push(name.to_string());
    }
    required
        .iter()
        .find(|t| !seen.iter().any(|s| s == *t))
        .map(|t| format!("required tag `{t}` missing"))
}

/// Validates the ARC chain of `message`.
pub async fn verify(verifier: &Verifier, message: &AuthenticatedMessage<'_>) -> ArcVerdict {
    let strict = message
        .as_headers
        .iter()
        .map(|h| (h.value, SEAL_TAGS))
        .chain(message.ams_headers.iter().map(|h| (h.value, AMS_TAGS)))
        .find_map(|(v, required)| tag_list_problem(v, required));
    let out = verifier
        .authenticator()
        .verify_arc(Parameters::new(message).with_txt_cache(verifier.keys()))
        .await;
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
    let (result, reason) = match (result, strict) {
        // Seals without a message signature: a broken chain, not no chain.
        (AuthResult::None, _)
            if !message.as_headers.is_empty() || !message.aar_headers.is_empty() =>
        {
            (
                AuthResult::Fail,
                Some("ARC headers without an ARC-Message-Signature".to_string()),
            )
        }
        (AuthResult::Pass, Some(problem)) => (AuthResult::Fail, Some(problem)),
        (r, _) => (r, reason),
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
