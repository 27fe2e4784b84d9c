//! The actions a verdict can carry, with rspamd's names so scripts and habits carry over.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What the mail server should do with a message.
///
/// The first six are rspamd's metric actions; `Discard` and `Quarantine`
/// (Postfix's DISCARD and HOLD) can only be forced by a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Action {
    #[serde(rename = "no action")]
    NoAction,
    #[serde(rename = "greylist")]
    Greylist,
    #[serde(rename = "add header")]
    AddHeader,
    #[serde(rename = "rewrite subject")]
    RewriteSubject,
    #[serde(rename = "soft reject")]
    SoftReject,
    #[serde(rename = "quarantine")]
    Quarantine,
    #[serde(rename = "discard")]
    Discard,
    #[serde(rename = "reject")]
    Reject,
}

impl Action {
    /// The rspamd spelling, used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoAction => "no action",
            Action::Greylist => "greylist",
            Action::AddHeader => "add header",
            Action::RewriteSubject => "rewrite subject",
            Action::SoftReject => "soft reject",
            Action::Quarantine => "quarantine",
            Action::Discard => "discard",
            Action::Reject => "reject",
        }
    }

    /// Whether the message is considered spam (X-Spam-Flag, `Spam: true`).
    pub fn is_spam(self) -> bool {
        !matches!(self, Action::NoAction | Action::Greylist)
    }

    /// Parses rspamd's names and the snake_case config spellings.
    pub fn parse(s: &str) -> Option<Action> {
        Some(
            match s.trim().to_ascii_lowercase().replace('_', " ").as_str() {
                "no action" | "accept" => Action::NoAction,
                "greylist" => Action::Greylist,
                "add header" => Action::AddHeader,
                "rewrite subject" => Action::RewriteSubject,
                "soft reject" => Action::SoftReject,
                "quarantine" | "hold" => Action::Quarantine,
                "discard" => Action::Discard,
                "reject" => Action::Reject,
                _ => return None,
            },
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in [
            Action::NoAction,
            Action::Greylist,
            Action::AddHeader,
            Action::RewriteSubject,
            Action::SoftReject,
            Action::Quarantine,
            Action::Discard,
            Action::Reject,
        ] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.as_str()));
        }
        assert_eq!(Action::parse("add_header"), Some(Action::AddHeader));
        assert_eq!(Action::parse("bogus"), None);
    }
}
