//! GTUBE, the Generic Test for Unsolicited Bulk Email: a fixed string that
//! forces an action, so admins can test the whole chain end to end.
//!
//! Same patterns as rspamd: the standard GTUBE string rejects; its variants
//! with another first letter force add header (Y), rewrite subject (Z) or no
//! action (A), which is handy for testing each milter reply.

use super::Check;
use crate::Task;
use memchr::memmem;
use mxguard_core::config::Section;
use mxguard_core::{Action, ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// `[gtube]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GtubeConfig {
    pub enabled: bool,
}

impl Default for GtubeConfig {
    fn default() -> Self {
        GtubeConfig { enabled: true }
    }
}

impl Section for GtubeConfig {
    const KEY: &'static str = "gtube";
}

/// Everything but the first byte, which selects the action.
const GTUBE_TAIL: &[u8] = b"JS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// The searcher for [`GTUBE_TAIL`], built once: building it (its tables
/// for the 67-byte needle) cost more than the search of a message's text.
static GTUBE_FINDER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(GTUBE_TAIL));

pub struct Gtube;

fn action_for(first: u8) -> Option<(&'static str, Action)> {
    Some(match first {
        b'X' => ("GTUBE", Action::Reject),
        b'Y' => ("GTUBE_ADD_HEADER", Action::AddHeader),
        b'Z' => ("GTUBE_REWRITE_SUBJECT", Action::RewriteSubject),
        b'A' => ("GTUBE_NO_ACTION", Action::NoAction),
        _ => return None,
    })
}

impl Check for Gtube {
    fn name(&self) -> &'static str {
        "gtube"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new("GTUBE", 0.0, "gtube", "GTUBE test pattern: reject"),
            SymbolDef::new(
                "GTUBE_ADD_HEADER",
                0.0,
                "gtube",
                "GTUBE test pattern: add header",
            ),
            SymbolDef::new(
                "GTUBE_REWRITE_SUBJECT",
                0.0,
                "gtube",
                "GTUBE test pattern: rewrite subject",
            ),
            SymbolDef::new(
                "GTUBE_NO_ACTION",
                0.0,
                "gtube",
                "GTUBE test pattern: no action",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        for text in task.text_parts() {
            let bytes = text.as_bytes();
            for pos in GTUBE_FINDER.find_iter(bytes) {
                if pos == 0 {
                    continue;
                }
                if let Some((symbol, action)) = action_for(bytes[pos - 1]) {
                    // The variants that weaken a verdict are for the admin's
                    // own tests: from anyone else they would switch scoring off.
                    if action != Action::Reject && !task.is_authenticated() {
                        continue;
                    }
                    results.insert(symbol, vec![]);
                    results.force(action, Some("Gtube pattern".to_string()), symbol);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn scan(body: &str) -> ScanResults {
        scan_as(body, Some("admin"))
    }

    fn scan_as(body: &str, user: Option<&str>) -> ScanResults {
        let raw = format!("Subject: t\r\nContent-Type: text/plain\r\n\r\n{body}\r\n");
        let env = Envelope {
            user: user.map(str::to_string),
            ..Default::default()
        };
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        Gtube.run(&task, &mut r);
        r
    }

    #[test]
    fn standard_pattern_rejects() {
        let r =
            scan("hello XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X bye");
        assert!(r.has("GTUBE"));
        assert_eq!(r.forced.unwrap().action, Action::Reject);
    }

    #[test]
    fn variants_force_their_action() {
        let r = scan("YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X");
        assert_eq!(r.forced.unwrap().action, Action::AddHeader);
        let r = scan("ZJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X");
        assert_eq!(r.forced.unwrap().action, Action::RewriteSubject);
    }

    #[test]
    fn weakening_variants_are_ignored_from_unauthenticated_senders() {
        let r = scan_as(
            "AJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
            None,
        );
        assert!(r.forced.is_none() && r.hits.is_empty());
        let r = scan_as(
            "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
            None,
        );
        assert_eq!(
            r.forced.unwrap().action,
            Action::Reject,
            "the reject pattern works for anyone"
        );
    }

    #[test]
    fn no_pattern_no_symbol() {
        let r = scan("GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL is mentioned, but not the pattern");
        assert!(r.hits.is_empty());
        assert!(r.forced.is_none());
    }

    #[test]
    fn base64_encoded_pattern_is_found() {
        let raw = "Subject: t\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nWEpTKkM0SkRCUUFETjEuTlNCTjMqMklETkVOKkdUVUJFLVNUQU5EQVJELUFOVEktVUJFLVRFU1QtRU1BSUwqQy4zNFg=\r\n";
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        Gtube.run(&task, &mut r);
        assert!(r.has("GTUBE"));
    }
}
