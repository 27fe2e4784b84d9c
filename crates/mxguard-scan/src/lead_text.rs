//! The part of a message the language checks (lures, risky offers) read:
//! the subject and the first [`MAX_PART`] bytes of each text part,
//! [`MAX_TEXT`] in all, as borrowed slices. A lure or an offer says what
//! it wants up front, and the bound keeps their cost flat on huge mail.

use crate::Task;
use crate::checks::{lures, risky_offers};
use crate::phrases::{PhraseSet, Scratch, TermHit};
use std::borrow::Cow;
use std::sync::LazyLock;

/// Bytes read of each text part.
pub const MAX_PART: usize = 8 * 1024;
/// Bytes read of all parts together.
pub const MAX_TEXT: usize = 16 * 1024;

/// At most `max` bytes of `s`, cut at a character boundary.
pub fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `subject`, then the heads of `parts` within the bounds. No copy.
pub fn lead_texts<'t>(
    subject: Option<&'t str>,
    parts: &'t [Cow<'t, str>],
) -> impl Iterator<Item = &'t str> + Clone {
    let bodies = parts.iter().scan(MAX_TEXT, |left, part| {
        if *left == 0 {
            return None;
        }
        let text = head(part, MAX_PART.min(*left));
        *left -= text.len();
        Some(text)
    });
    subject.into_iter().chain(bodies)
}

/// Bytes of the subject the offer terms are looked for in.
pub const MAX_SUBJECT_TERMS: usize = 1024;

/// The lure families ([`lures`]) and the offer terms ([`risky_offers`])
/// in one automaton: the lead texts are read once for both checks. The
/// tables stay in their checks' modules; they are constants a test builds.
static LANGUAGE: LazyLock<Option<PhraseSet>> =
    LazyLock::new(|| PhraseSet::with_terms(&lures::families(), &risky_offers::term_words()).ok());

/// What the language checks find in a message's lead texts, computed once
/// ([`Task::lead_hits`]).
#[derive(Debug, Default)]
pub struct LeadHits {
    /// Per lure family ([`lures::FAMILIES`]): whether a rule matched the
    /// subject or a part's head.
    pub families: [bool; lures::FAMILIES],
    /// Every occurrence of an offer term in [`lead_texts`] with the
    /// subject cut at [`MAX_SUBJECT_TERMS`]: the index of the text, and
    /// the hit.
    pub terms: Vec<(u32, TermHit)>,
}

impl LeadHits {
    /// One pass of [`LANGUAGE`] over the subject and the heads of the text parts.
    pub fn of(task: &Task<'_>) -> LeadHits {
        let mut out = LeadHits::default();
        // Were the tables not to build (a bug their tests catch), the
        // checks find nothing rather than stopping scans.
        let Some(set) = LANGUAGE.as_ref() else {
            return out;
        };
        let parts = task.text_parts();
        let subject = task.message.subject();
        let mut scratch = Scratch::default();
        let mut terms = Vec::new();
        for (i, text) in lead_texts(subject, &parts).enumerate() {
            let term_end = if i == 0 && subject.is_some() {
                head(text, MAX_SUBJECT_TERMS).len()
            } else {
                text.len()
            };
            set.scan(text, &mut out.families, term_end, &mut terms, &mut scratch);
            out.terms.extend(terms.drain(..).map(|t| (i as u32, t)));
        }
        out
    }

    /// Whether the lure rules and offer terms built into one automaton.
    #[cfg(test)]
    pub fn built() -> bool {
        LANGUAGE.is_some()
    }
}

/// The automaton of the lure rules and offer terms, for tests that compare
/// it with a reference.
#[cfg(test)]
pub fn language() -> &'static PhraseSet {
    LANGUAGE
        .as_ref()
        .expect("the lure rules and offer terms build")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_cut_at_characters_and_the_total_is_bounded() {
        assert_eq!(head("größe", 3), "gr");
        assert_eq!(head("ab", 10), "ab");
        let parts: Vec<Cow<'_, str>> = (0..4).map(|_| Cow::Owned("é".repeat(5000))).collect();
        let texts: Vec<&str> = lead_texts(Some("s"), &parts).collect();
        assert_eq!(texts[0], "s");
        assert_eq!(texts[1].len(), MAX_PART);
        assert_eq!(texts[1..].iter().map(|t| t.len()).sum::<usize>(), MAX_TEXT);
        assert_eq!(texts.len(), 3);
    }
}
