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

/// Mixed words and invisible characters counted so far.
#[derive(Default, Debug, PartialEq, Eq)]
struct Counts {
    mixed: usize,
    invisible: usize,
}

/// Where the walk of a part is: the word being read.
#[derive(Default)]
struct Word {
    script: Option<Script>,
    mixed: bool,
    prev_letter: bool,
}

impl Counts {
    /// Walks `part` a character at a time, within `budget` characters;
    /// false once the budget is spent.
    ///
    /// Runs of ASCII (most of the text even in a part with a few accents
    /// or curly quotes) are taken whole: ASCII holds no invisible
    /// character and no letter of another alphabet, so a run only ends the
    /// word before its first separator and leaves the word after its last
    /// one; what is between cannot be mixed. The result is the
    /// character-at-a-time walk's ([`Counts::walk_chars`], kept as the
    /// tests' reference).
    fn walk(&mut self, part: &str, budget: &mut usize) -> bool {
        let mut w = Word::default();
        let b = part.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if *budget == 0 {
                break;
            }
            let run = b[i..]
                .iter()
                .position(|&c| !c.is_ascii())
                .unwrap_or(b.len() - i);
            if run > 0 {
                let take = run.min(*budget);
                *budget -= take;
                self.ascii_run(&b[i..i + take], &mut w);
                i += take;
                continue;
            }
            // One character outside ASCII.
            let c = part[i..].chars().next().unwrap_or('\u{FFFD}');
            i += c.len_utf8();
            *budget -= 1;
            self.char(c, &mut w);
        }
        if w.mixed {
            self.mixed += 1;
        }
        *budget > 0
    }

    /// A run of ASCII bytes (each one character), as [`Counts::char`] on
    /// each would count it.
    fn ascii_run(&mut self, run: &[u8], w: &mut Word) {
        let alnum = |c: &u8| c.is_ascii_alphanumeric();
        let Some(first_sep) = run.iter().position(|c| !alnum(c)) else {
            Self::ascii_word(run, w);
            return;
        };
        Self::ascii_word(&run[..first_sep], w);
        if w.mixed {
            self.mixed += 1;
        }
        let last_sep = run.iter().rposition(|c| !alnum(c)).unwrap_or(first_sep);
        *w = Word::default();
        Self::ascii_word(&run[last_sep + 1..], w);
    }

    /// Letters and digits of ASCII continuing the word `w`.
    fn ascii_word(run: &[u8], w: &mut Word) {
        if run.is_empty() {
            return;
        }
        w.prev_letter = true;
        if run.iter().any(u8::is_ascii_alphabetic) {
            match w.script {
                None => w.script = Some(Script::Latin),
                Some(s) if s != Script::Latin => w.mixed = true,
                _ => {}
            }
        }
    }

    fn char(&mut self, c: char, w: &mut Word) {
        if is_invisible(c) {
            if w.prev_letter {
                self.invisible += 1;
            }
            return;
        }
        if c.is_alphanumeric() {
            w.prev_letter = true;
            if let Some(s) = script(c) {
                match w.script {
                    None => w.script = Some(s),
                    Some(x) if x != s => w.mixed = true,
                    _ => {}
                }
            }
        } else {
            w.prev_letter = false;
            if w.mixed {
                self.mixed += 1;
            }
            w.script = None;
            w.mixed = false;
        }
    }

    /// The walk a character at a time: the reference [`Counts::walk`]
    /// must agree with.
    #[cfg(test)]
    fn walk_chars(&mut self, part: &str, budget: &mut usize) -> bool {
        let mut w = Word::default();
        for c in part.chars() {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            self.char(c, &mut w);
        }
        if w.mixed {
            self.mixed += 1;
        }
        *budget > 0
    }
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
        let mut text = task.text_parts();
        if let Some(s) = task.message.subject() {
            text.push(s.into());
        }
        let mut counts = Counts::default();
        for part in &text {
            // Look-alike letters and invisible characters are all outside
            // ASCII: a pure-ASCII part (most mail) cannot hold either, and
            // `is_ascii` is far cheaper than the walk below.
            if part.is_ascii() {
                continue;
            }
            if !counts.walk(part, &mut budget) {
                break;
            }
        }
        let Counts { mixed, invisible } = counts;
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
    use proptest::prelude::*;

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

    /// Text made of the characters that matter to the walk: ASCII
    /// letters, digits and separators, Cyrillic and Greek letters, other
    /// letters and symbols outside ASCII, invisible characters.
    fn text_of(picks: &[u8]) -> String {
        const CHARS: &[char] = &[
            'a', 'Z', 'o', '7', ' ', '.', '-', '\n', 'а', 'о', 'Я', 'ο', 'Ω', 'é', 'ß', '中', '’',
            '€', '\u{200B}', '\u{00AD}', '\u{FEFF}', '\u{034F}', '١',
        ];
        picks
            .iter()
            .map(|&p| CHARS[p as usize % CHARS.len()])
            .collect()
    }

    proptest! {
        #[test]
        fn ascii_runs_count_as_the_character_walk(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..4),
            budget in 0usize..300,
        ) {
            let texts: Vec<String> = parts.iter().map(|p| text_of(p)).collect();
            let (mut fast, mut reference) = (Counts::default(), Counts::default());
            let (mut b1, mut b2) = (budget, budget);
            for t in &texts {
                let (go1, go2) = (fast.walk(t, &mut b1), reference.walk_chars(t, &mut b2));
                prop_assert_eq!(go1, go2);
                prop_assert_eq!(b1, b2);
                if !go1 {
                    break;
                }
            }
            prop_assert_eq!(fast, reference);
        }
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
