//! Shared vocabulary of rules and lists: regex literals in the rspamd and
//! Postfix `/pattern/flags` forms, and Postfix's action words.

use crate::Action;
use regex::{Regex, RegexBuilder};

/// Compiled-size limit for admin patterns, so one bad rule cannot eat memory.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// Compiles `pattern`, which is either a plain regex or `/regex/flags`.
///
/// Flags: `i` case-insensitive, `m` multi-line, `s` dot matches newline,
/// `x` extended. With `postfix_semantics`, matching is case-insensitive by
/// default and `i` toggles it, as in Postfix `regexp:` tables.
pub fn compile_pattern(pattern: &str, postfix_semantics: bool) -> Result<Regex, String> {
    let (body, flags) = split_literal(pattern).unwrap_or((pattern, ""));
    let mut b = RegexBuilder::new(body);
    b.size_limit(REGEX_SIZE_LIMIT);
    let mut ci = postfix_semantics;
    for f in flags.chars() {
        match f {
            'i' => ci = !postfix_semantics || !ci,
            'm' => {
                b.multi_line(true);
            }
            's' => {
                b.dot_matches_new_line(true);
            }
            'x' => {
                b.ignore_whitespace(true);
            }
            'u' => {}
            other => {
                return Err(format!(
                    "unknown regex flag `{other}` (flags are i, m, s, x)"
                ));
            }
        }
    }
    b.case_insensitive(ci);
    b.build()
        .map_err(|e| format!("invalid regex: {}", e.to_string().replace('\n', " ")))
}

/// Splits `/body/flags`, where the closing slash is the last one.
fn split_literal(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix('/')?;
    let end = rest.rfind('/')?;
    let flags = &rest[end + 1..];
    if flags.chars().all(|c| c.is_ascii_alphabetic()) {
        Some((&rest[..end], flags))
    } else {
        None
    }
}

/// What a rule, a table line or a map entry asks for, in Postfix's words.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleAction {
    /// `OK`/`PERMIT`: accept (in a list: whitelist).
    Accept,
    /// `DUNNO`: as if the line had not matched.
    Dunno,
    /// `REJECT [text]`, or `5NN text`.
    Reject(Option<String>),
    /// `DEFER [text]`, `DEFER_IF_PERMIT`, or `4NN text`: a temporary failure.
    Defer(Option<String>),
    /// `DISCARD [text]`: accept and drop.
    Discard(Option<String>),
    /// `HOLD [text]`: quarantine.
    Hold(Option<String>),
    /// `WARN [text]`: log and score only.
    Warn(Option<String>),
}

impl RuleAction {
    /// Parses `WORD [text]` or `NNN text`.
    pub fn parse(s: &str) -> Result<RuleAction, String> {
        let s = s.trim();
        let (word, rest) = match s.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (s, ""),
        };
        let text = (!rest.is_empty()).then(|| rest.to_string());
        let upper = word.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "OK" | "PERMIT" | "ACCEPT" => RuleAction::Accept,
            "DUNNO" => RuleAction::Dunno,
            "REJECT" => RuleAction::Reject(text),
            "DEFER" | "DEFER_IF_PERMIT" | "DEFER_IF_REJECT" => RuleAction::Defer(text),
            "DISCARD" => RuleAction::Discard(text),
            "HOLD" | "QUARANTINE" => RuleAction::Hold(text),
            "WARN" => RuleAction::Warn(text),
            code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
                let full = Some(s.to_string());
                match code.as_bytes()[0] {
                    b'4' => RuleAction::Defer(full),
                    b'5' => RuleAction::Reject(full),
                    _ => {
                        return Err(format!(
                            "`{s}`: a numeric action must be a 4xx or 5xx SMTP code"
                        ));
                    }
                }
            }
            "" => return Err("empty action".to_string()),
            _ => {
                return Err(format!(
                    "unsupported action `{word}`; use OK, DUNNO, REJECT [text], DEFER [text], DISCARD, HOLD, WARN, or a 4xx/5xx code with text"
                ));
            }
        })
    }

    /// The action forced on the message, if any (`Warn` and `Dunno` force nothing).
    pub fn forced(&self) -> Option<(Action, Option<String>)> {
        match self {
            RuleAction::Accept => Some((Action::NoAction, None)),
            RuleAction::Dunno | RuleAction::Warn(_) => None,
            RuleAction::Reject(t) => Some((Action::Reject, t.clone())),
            RuleAction::Defer(t) => Some((Action::SoftReject, t.clone())),
            RuleAction::Discard(t) => Some((Action::Discard, t.clone())),
            RuleAction::Hold(t) => Some((Action::Quarantine, t.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_flags() {
        let r = compile_pattern("/viagra/i", false).unwrap();
        assert!(r.is_match("VIAGRA"));
        let r = compile_pattern("viagra", false).unwrap();
        assert!(!r.is_match("VIAGRA"));
        // Postfix: insensitive by default, `i` toggles to sensitive.
        assert!(
            compile_pattern("/viagra/", true)
                .unwrap()
                .is_match("VIAGRA")
        );
        assert!(
            !compile_pattern("/viagra/i", true)
                .unwrap()
                .is_match("VIAGRA")
        );
        assert!(compile_pattern("/a/q", false).is_err());
        assert!(compile_pattern("(", false).is_err());
        // A slash inside the body is fine: the last slash closes it.
        assert!(compile_pattern("/a/b/", false).unwrap().is_match("a/b"));
    }

    #[test]
    fn postfix_actions() {
        assert_eq!(RuleAction::parse("OK").unwrap(), RuleAction::Accept);
        assert_eq!(
            RuleAction::parse("REJECT no spam here").unwrap(),
            RuleAction::Reject(Some("no spam here".into()))
        );
        assert_eq!(
            RuleAction::parse("550 5.7.1 go away").unwrap(),
            RuleAction::Reject(Some("550 5.7.1 go away".into()))
        );
        assert_eq!(
            RuleAction::parse("451 later").unwrap(),
            RuleAction::Defer(Some("451 later".into()))
        );
        assert_eq!(RuleAction::parse("hold").unwrap(), RuleAction::Hold(None));
        assert!(RuleAction::parse("FILTER smtp:x").is_err());
        assert!(RuleAction::parse("250 ok").is_err());
        assert_eq!(
            RuleAction::parse("DISCARD").unwrap().forced(),
            Some((Action::Discard, None))
        );
    }
}
