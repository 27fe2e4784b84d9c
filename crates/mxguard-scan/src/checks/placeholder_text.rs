//! A multipart/alternative whose plain-text version is a placeholder:
//! empty, or a line left from the kit's template ("This is a plain-text
//! message body", "ini versi text nya", "Coloca uma mensagem opcional
//! aqui caso o HTML não possa ser carregado"), while the HTML carries the
//! message. Mail programs write the plain version from the same text, and
//! a newsletter that has none points the reader to its web version (a
//! link, which is not counted). rspamd's R_PARTS_DIFFER measures the same
//! thing as a distance; this is its extreme case, read without one.
//!
//! Also what the language checks need to know: a mail reader shows the
//! HTML, while the text view ([`crate::lead_text`]) takes the plain version
//! of an alternative. [`placeholder_html`] gives the HTML's text for such
//! a message, so a check may read what the reader sees.
//!
//! Cost: the parts' tree is walked to the first alternative; the HTML is
//! reduced to text only when the plain version is at most
//! [`MAX_PLACEHOLDER`] bytes, and at most [`MAX_HTML`] bytes of it.

use super::Check;
use crate::Task;
use mail_parser::{MimeHeaders, PartType};
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};

const GROUP: &str = "mime_types";

/// Longest plain version read as a placeholder.
pub const MAX_PLACEHOLDER: usize = 100;

/// Shortest HTML text, and how many times the placeholder's length, for
/// the HTML to be the message.
const MIN_HTML_TEXT: usize = 500;
const HTML_FACTOR: usize = 10;

/// Bytes of HTML reduced.
const MAX_HTML: usize = 256 * 1024;

/// `[placeholder_text]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaceholderTextConfig {
    pub enabled: bool,
}

impl Default for PlaceholderTextConfig {
    fn default() -> Self {
        PlaceholderTextConfig { enabled: true }
    }
}

impl Section for PlaceholderTextConfig {
    const KEY: &'static str = "placeholder_text";
}

/// The text of the HTML version of the message's first
/// multipart/alternative when its plain version is a placeholder.
pub fn placeholder_html(task: &Task<'_>) -> Option<String> {
    let m = &task.message;
    let alternative = m
        .parts
        .iter()
        .take(mxguard_message::parse::Limits::DEFAULT.max_parts)
        .find_map(|part| match &part.body {
            PartType::Multipart(children)
                if part.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case("multipart")
                        && ct
                            .subtype()
                            .is_some_and(|s| s.eq_ignore_ascii_case("alternative"))
                }) =>
            {
                Some(children)
            }
            _ => None,
        })?;
    let (mut plain, mut html) = (None, None);
    for &id in alternative.iter().take(64) {
        match m.parts.get(id as usize).map(|p| &p.body) {
            Some(PartType::Text(t)) if plain.is_none() => plain = Some(t.as_ref()),
            Some(PartType::Html(h)) if html.is_none() => html = Some(h.as_ref()),
            _ => {}
        }
    }
    let plain = plain?.trim();
    if plain.len() > MAX_PLACEHOLDER || plain.contains("http") || plain.contains("www.") {
        return None;
    }
    let text = mxguard_message::html::html_to_text(crate::lead_text::head(html?, MAX_HTML));
    let length = text.trim().len();
    (length >= MIN_HTML_TEXT && length >= HTML_FACTOR * plain.len()).then_some(text)
}

pub struct PlaceholderText;

impl Check for PlaceholderText {
    fn name(&self) -> &'static str {
        "placeholder_text"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![SymbolDef::new(
            "MIME_MA_TEXT_PLACEHOLDER",
            1.0,
            GROUP,
            "multipart/alternative whose plain version is empty or a placeholder line, while the HTML carries the message",
        )]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed || task.message.parts.is_empty() {
            return;
        }
        if placeholder_html(task).is_some() {
            results.insert("MIME_MA_TEXT_PLACEHOLDER", vec![]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn message(plain: &str, html_words: usize) -> String {
        let html = format!("<p>{}</p>", "Your parcel is waiting. ".repeat(html_words));
        format!(
            "From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n{plain}\r\n--B\r\nContent-Type: text/html\r\n\r\n{html}\r\n--B--\r\n"
        )
    }

    fn scan(raw: &str) -> bool {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        PlaceholderText.run(&task, &mut r);
        r.has("MIME_MA_TEXT_PLACEHOLDER")
    }

    #[test]
    fn placeholders_beside_a_real_html_version() {
        assert!(scan(&message("This is a plain-text message body", 40)));
        assert!(scan(&message("", 40)));
        // The same text in both; a pointer to the web version; HTML as
        // short as the placeholder.
        let same = "Your parcel is waiting. ".repeat(40);
        assert!(!scan(&message(&same, 40)));
        assert!(!scan(&message(
            "View this mail online: https://news.example.com/1",
            40
        )));
        assert!(!scan(&message("Hi", 2)));
        // Not an alternative.
        assert!(!scan(
            "From: a@b.example\r\nSubject: x\r\n\r\nplain text only\r\n"
        ));
    }

    #[test]
    fn the_html_text_is_given_to_other_checks() {
        let raw = message("normal", 40);
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let text = placeholder_html(&task).unwrap();
        assert!(text.contains("Your parcel is waiting."));
    }
}
