//! Body text anomalies: words that mix alphabets (Latin letters swapped
//! for look-alike Cyrillic or Greek ones to slip past word filters), and
//! text hidden with invisible characters. rspamd's R_MIXED_CHARSET.

use super::Check;
use crate::Task;
use mxguard_core::{ScanResults, SymbolDef};

const GROUP: &str = "body";

/// Characters of text looked at, over all parts: the mechanisms show early.
const MAX_CHARS: usize = 200_000;

/// Mixed words needed for R_MIXED_CHARSET: one can be a product name.
const MIN_MIXED_WORDS: usize = 3;

/// Invisible characters (zero-width space, joiners, soft hyphen…) inside
/// words needed for R_INVISIBLE_CHARS.
const MIN_INVISIBLE: usize = 10;

pub struct BodyAnomalies;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Cyrillic,
    Greek,
}

fn script(c: char) -> Option<Script> {
    match c {
        'a'..='z' | 'A'..='Z' => Some(Script::Latin),
        '\u{0400}'..='\u{04FF}' => Some(Script::Cyrillic),
        '\u{0370}'..='\u{03FF}' => Some(Script::Greek),
        _ => None,
    }
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' | '\u{034F}'
    )
}

impl Check for BodyAnomalies {
    fn name(&self) -> &'static str {
        "body_anomalies"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "R_MIXED_CHARSET",
                5.0,
                GROUP,
                "Words mix Latin letters with look-alike Cyrillic or Greek ones",
            ),
            SymbolDef::new(
                "R_INVISIBLE_CHARS",
                3.0,
                GROUP,
                "Words broken up by invisible characters",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        let mut budget = MAX_CHARS;
        let (mut mixed, mut invisible) = (0usize, 0usize);
        let mut text = task.text_parts();
        if let Some(s) = task.message.subject() {
            text.push(s.into());
        }
        for part in &text {
            // Look-alike letters and invisible characters are all outside
            // ASCII: a pure-ASCII part (most mail) cannot hold either, and
            // `is_ascii` is far cheaper than the walk below.
            if part.is_ascii() {
                continue;
            }
            let mut word: Option<Script> = None;
            let mut word_mixed = false;
            let mut prev_letter = false;
            for c in part.chars() {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                if is_invisible(c) {
                    if prev_letter {
                        invisible += 1;
                    }
                    continue;
                }
                if c.is_alphanumeric() {
                    prev_letter = true;
                    if let Some(s) = script(c) {
                        match word {
                            None => word = Some(s),
                            Some(w) if w != s => word_mixed = true,
                            _ => {}
                        }
                    }
                } else {
                    prev_letter = false;
                    if word_mixed {
                        mixed += 1;
                    }
                    word = None;
                    word_mixed = false;
                }
            }
            if word_mixed {
                mixed += 1;
            }
        }
        if mixed >= MIN_MIXED_WORDS {
            results.insert("R_MIXED_CHARSET", vec![mixed.to_string()]);
        }
        if invisible >= MIN_INVISIBLE {
            results.insert("R_INVISIBLE_CHARS", vec![invisible.to_string()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn scan(body: &str) -> Vec<String> {
        let raw = format!(
            "From: a@example.com\r\nSubject: hi\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
        );
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        BodyAnomalies.run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn mixed_words() {
        // "Paypal account verify" with Cyrillic а and о.
        assert_eq!(
            scan("Y\u{043E}ur P\u{0430}yp\u{0430}l \u{0430}ccount: verify n\u{043E}w"),
            vec!["R_MIXED_CHARSET"]
        );
        // Russian text next to English words is ordinary.
        assert!(scan("Привет, hello мир world, до встречи see you").is_empty());
        assert!(scan("Plain English text only.").is_empty());
    }

    #[test]
    fn invisible_characters() {
        let hidden: String = "Your account is suspended"
            .chars()
            .flat_map(|c| [c, '\u{200B}'])
            .collect();
        assert_eq!(scan(&hidden), vec!["R_INVISIBLE_CHARS"]);
        assert!(scan("A soft\u{00AD}hyphen or two\u{00AD}here.").is_empty());
    }
}
