//! The part of a message the language checks (lures, risky offers) read:
//! the subject and the first [`MAX_PART`] bytes of each text part,
//! [`MAX_TEXT`] in all, as borrowed slices. A lure or an offer says what
//! it wants up front, and the bound keeps their cost flat on huge mail.

use std::borrow::Cow;

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
