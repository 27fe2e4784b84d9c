//! The verdict of one scan, serialised with rspamd's JSON field names.

use crate::Action;
use serde::Serialize;
use std::collections::BTreeMap;

/// One symbol that fired, with its final score.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SymbolResult {
    pub name: String,
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// The outcome of a scan. Field names follow rspamd's `/checkv2` reply.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub action: Action,
    pub score: f64,
    pub required_score: f64,
    pub symbols: BTreeMap<String, SymbolResult>,
    /// rspamd puts the SMTP reply text under `smtp_message`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub messages: BTreeMap<String, String>,
    /// True when a prefilter decided and the remaining checks were skipped.
    pub is_skipped: bool,
    /// The symbol that forced the action, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_by: Option<String>,
    /// Headers a stage after scoring (score greylisting) asks every front
    /// end to add to the delivered message, `(name, value)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add_headers: Vec<(String, String)>,
}

impl Verdict {
    /// The SMTP reply text a front end should use, if the verdict carries one.
    pub fn smtp_message(&self) -> Option<&str> {
        self.messages.get("smtp_message").map(String::as_str)
    }

    /// Symbol names with scores, sorted by descending score, rspamd style:
    /// `NAME(score)[options]`.
    pub fn symbols_by_score(&self) -> Vec<&SymbolResult> {
        let mut v: Vec<&SymbolResult> = self.symbols.values().collect();
        v.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.name.cmp(&b.name))
        });
        v
    }
}
