//! Cheap header sanity symbols that rspamd users know: missing Date or
//! Message-ID, a missing, empty or invalid From, many To recipients, an
//! all-caps Subject, HTML-only mail.

use super::Check;
use crate::Task;
use mail_parser::{HeaderName, HeaderValue};
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};

/// `[headers]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderChecksConfig {
    pub enabled: bool,
    /// To: with more addresses than this gives MANY_RCPTS_TO.
    pub max_to_rcpts: usize,
    /// Subjects shorter than this (in letters) never count as all-caps.
    pub caps_subject_min_letters: usize,
}

impl Default for HeaderChecksConfig {
    fn default() -> Self {
        HeaderChecksConfig {
            enabled: true,
            max_to_rcpts: 10,
            caps_subject_min_letters: 10,
        }
    }
}

impl Section for HeaderChecksConfig {
    const KEY: &'static str = "headers";
}

pub struct HeaderSanity {
    max_to_rcpts: usize,
    caps_min_letters: usize,
}

impl HeaderSanity {
    pub fn new(config: &HeaderChecksConfig) -> HeaderSanity {
        HeaderSanity {
            max_to_rcpts: config.max_to_rcpts,
            caps_min_letters: config.caps_subject_min_letters,
        }
    }
}

impl Check for HeaderSanity {
    fn name(&self) -> &'static str {
        "headers"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new("MISSING_DATE", 1.0, "headers", "Date header is missing"),
            SymbolDef::new(
                "MISSING_MID",
                2.5,
                "headers",
                "Message-ID header is missing",
            ),
            SymbolDef::new("MISSING_FROM", 2.0, "headers", "From header is missing"),
            SymbolDef::new(
                "FROM_INVALID",
                2.0,
                "headers",
                "From header has no valid address",
            ),
            SymbolDef::new(
                "TO_MANY_RCPTS",
                1.0,
                "headers",
                "To header lists many recipients",
            ),
            SymbolDef::new(
                "SUBJ_ALL_CAPS",
                3.0,
                "headers",
                "Subject is mostly capital letters",
            ),
            SymbolDef::new(
                "MIME_HTML_ONLY",
                0.2,
                "headers",
                "Message has only an HTML part",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        let m = &task.message;
        let headers = m.headers();
        let has = |n: HeaderName<'_>| headers.iter().any(|h| h.name == n);
        if !has(HeaderName::Date) {
            results.insert("MISSING_DATE", vec![]);
        }
        if !has(HeaderName::MessageId) {
            results.insert("MISSING_MID", vec![]);
        }
        match headers.iter().find(|h| h.name == HeaderName::From) {
            None => results.insert("MISSING_FROM", vec![]),
            Some(h) => {
                if !has_valid_address(&h.value) {
                    results.insert("FROM_INVALID", vec![]);
                }
            }
        }
        let to_count: usize = m.all_to().map(|a| a.iter().count()).sum();
        if to_count > self.max_to_rcpts {
            results.insert("TO_MANY_RCPTS", vec![to_count.to_string()]);
        }
        if let Some(subject) = m.subject()
            && is_all_caps(subject, self.caps_min_letters)
        {
            results.insert("SUBJ_ALL_CAPS", vec![]);
        }
        if m.html_body_count() > 0 && !m.parts.iter().any(|p| p.is_text() && !p.is_text_html()) {
            results.insert("MIME_HTML_ONLY", vec![]);
        }
    }
}

fn has_valid_address(v: &HeaderValue<'_>) -> bool {
    let Some(list) = v.as_address() else {
        return false;
    };
    list.iter().any(|a| {
        a.address().is_some_and(|addr| {
            let addr = addr.trim();
            match addr.rsplit_once('@') {
                Some((local, domain)) => {
                    !local.is_empty() && !domain.is_empty() && !addr.contains(char::is_whitespace)
                }
                None => false,
            }
        })
    })
}

/// Mostly capitals: at least `min_letters` letters, and at most one in ten
/// of them lower-case (rspamd's SUBJ_ALL_CAPS idea, tolerant of "Re:").
fn is_all_caps(subject: &str, min_letters: usize) -> bool {
    let (mut upper, mut lower) = (0usize, 0usize);
    for c in subject.chars().filter(|c| c.is_alphabetic()) {
        if c.is_uppercase() {
            upper += 1;
        } else if c.is_lowercase() {
            lower += 1;
        }
    }
    upper + lower >= min_letters && upper > 0 && lower * 10 <= upper + lower
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn scan(raw: &str) -> ScanResults {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        HeaderSanity::new(&HeaderChecksConfig::default()).run(&task, &mut r);
        r
    }

    fn names(r: &ScanResults) -> Vec<&str> {
        r.hits.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn a_clean_message_has_no_symbols() {
        let r = scan(
            "From: A <a@example.com>\r\nTo: b@example.org\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nSubject: Hello there\r\n\r\nbody\r\n",
        );
        assert!(r.hits.is_empty(), "{:?}", names(&r));
    }

    #[test]
    fn missing_headers() {
        let r = scan("Subject: Hello\r\n\r\nbody\r\n");
        assert_eq!(
            names(&r),
            vec!["MISSING_DATE", "MISSING_MID", "MISSING_FROM"]
        );
    }

    #[test]
    fn invalid_from_caps_and_many_rcpts() {
        let to: Vec<String> = (0..12).map(|i| format!("u{i}@example.org")).collect();
        let raw = format!(
            "From: undisclosed\r\nTo: {}\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@x>\r\nSubject: RE: FREE MONEY FOR YOU NOW\r\n\r\nb\r\n",
            to.join(", ")
        );
        let r = scan(&raw);
        assert_eq!(
            names(&r),
            vec!["FROM_INVALID", "TO_MANY_RCPTS", "SUBJ_ALL_CAPS"]
        );
        assert_eq!(r.hits[1].options, vec!["12"]);
    }

    #[test]
    fn html_only() {
        let r = scan(
            "From: a@b.c\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@x>\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n",
        );
        assert_eq!(names(&r), vec!["MIME_HTML_ONLY"]);
        let r = scan(
            "From: a@b.c\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@x>\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--x--\r\n",
        );
        assert!(r.hits.is_empty(), "{:?}", names(&r));
    }

    #[test]
    fn caps_rule() {
        assert!(is_all_caps("BUY NOW CHEAP PILLS", 10));
        assert!(!is_all_caps("SHORT", 10));
        assert!(!is_all_caps("Normal subject line here", 10));
        assert!(!is_all_caps("1234567890 !!!", 10));
    }
}
