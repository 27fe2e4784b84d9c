//! The decoded text of a message's text parts, HTML reduced to text.

use mail_parser::{Message, PartType};
use std::borrow::Cow;

/// Decoded text of the message's text parts, HTML reduced to text. Plain
/// text is borrowed from the message, not copied: a text part can be a
/// 50 MB string. HTML goes through [`crate::html::html_to_text`],
/// mail-parser's output computed faster.
pub fn text_parts<'m>(m: &'m Message<'_>) -> Vec<Cow<'m, str>> {
    let mut v = Vec::with_capacity(m.text_body.len());
    for &id in &m.text_body {
        if let Some(part) = m.parts.get(id as usize) {
            match &part.body {
                PartType::Text(t) => v.push(Cow::Borrowed(t.as_ref())),
                PartType::Html(h) => v.push(Cow::Owned(crate::html::html_to_text(h))),
                _ => {}
            }
        }
    }
    v
}

/// The HTML parts of the text body reduced to text, in order: for a caller
/// that keeps them, and borrows the text parts with [`text_parts_from`].
pub fn html_texts(m: &Message<'_>) -> Vec<String> {
    m.text_body
        .iter()
        .filter_map(|&id| match m.parts.get(id as usize).map(|p| &p.body) {
            Some(PartType::Html(h)) => Some(crate::html::html_to_text(h)),
            _ => None,
        })
        .collect()
}

/// [`text_parts`] with the HTML already reduced ([`html_texts`]), all
/// borrowed.
pub fn text_parts_from<'m>(m: &'m Message<'_>, html: &'m [String]) -> Vec<Cow<'m, str>> {
    let mut html = html.iter();
    m.text_body
        .iter()
        .filter_map(|&id| match m.parts.get(id as usize).map(|p| &p.body) {
            Some(PartType::Text(t)) => Some(Cow::Borrowed(t.as_ref())),
            Some(PartType::Html(_)) => html.next().map(|h| Cow::Borrowed(h.as_str())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_html_gives_the_same_text() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/plain\r\n\r\nplain\r\n--b\r\nContent-Type: text/html\r\n\r\n\
            <p>rich <b>text</b></p>\r\n--b--\r\n";
        let m = crate::parse(raw).unwrap();
        let html = html_texts(&m);
        let text = text_parts(&m);
        assert_eq!(text, text_parts_from(&m, &html));
        assert!(text.iter().any(|t| t.contains("plain")));
        assert!(text.iter().any(|t| t.contains("rich text")));
    }
}
