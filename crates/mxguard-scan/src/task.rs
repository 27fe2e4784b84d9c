//! One message under scan: raw bytes, the parsed MIME tree and the envelope.

use mail_parser::{HeaderValue, Message};
use mxguard_core::Envelope;
use mxguard_learn::parse::Truncation;
use std::borrow::Cow;
use std::sync::OnceLock;

/// What the checks see. HTML reduced to text is computed once, on first
/// use, and shared by every check that needs it; plain text is borrowed
/// from the parsed message.
pub struct Task<'a> {
    pub envelope: &'a Envelope,
    pub raw: &'a [u8],
    pub message: Message<'a>,
    /// False when the message was too big to parse or not a message at all;
    /// content checks then see an empty message.
    pub parsed: bool,
    /// Where the parse stopped at its bounds (`mxguard_learn::parse::Limits`):
    /// the parts and header fields past them are not in `message`.
    pub truncated: Truncation,
    html_text: OnceLock<Vec<String>>,
}

impl<'a> Task<'a> {
    /// Parses `raw` unless it exceeds `max_size`, within the parse's
    /// default limits (the ones the classifier learns with).
    pub fn new(envelope: &'a Envelope, raw: &'a [u8], max_size: u64) -> Task<'a> {
        let parsed = if raw.len() as u64 <= max_size {
            mxguard_learn::parse::parse_bounded(raw, &mxguard_learn::parse::Limits::DEFAULT)
        } else {
            mxguard_learn::parse::Parsed::default()
        };
        let ok = parsed.message.is_some();
        Task {
            envelope,
            raw,
            message: parsed.message.unwrap_or_default(),
            parsed: ok,
            truncated: parsed.truncated,
            html_text: OnceLock::new(),
        }
    }

    /// Decoded text of every text part, HTML reduced to text; nothing is
    /// copied but the HTML's text, once.
    pub fn text_parts(&self) -> Vec<Cow<'_, str>> {
        let html = self
            .html_text
            .get_or_init(|| mxguard_learn::tokenize::html_texts(&self.message));
        mxguard_learn::tokenize::text_parts_from(&self.message, html)
    }

    /// The undecoded body (everything after the header block).
    pub fn raw_body(&self) -> &'a [u8] {
        let start = self
            .message
            .parts
            .first()
            .map_or(self.raw.len(), |p| p.offset_body as usize);
        self.raw
            .get(start.min(self.raw.len())..)
            .unwrap_or_default()
    }

    /// The top-level headers; none when the message was not parsed
    /// (mail-parser's `headers()` indexes the first part, which an unparsed
    /// message does not have).
    pub fn headers(&self) -> &[mail_parser::Header<'a>] {
        if self.message.parts.is_empty() {
            &[]
        } else {
            self.message.headers()
        }
    }

    /// Values of every top-level header with this name, decoded.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| header_text(&h.value, self.raw_value(h)))
            .collect()
    }

    /// Raw (undecoded) values of every top-level header with this name, unfolded.
    pub fn header_raw_values(&self, name: &str) -> Vec<String> {
        self.headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| unfold(self.raw_value(h)))
            .collect()
    }

    fn raw_value(&self, h: &mail_parser::Header<'_>) -> &'a str {
        let (s, e) = (h.offset_start as usize, h.offset_end as usize);
        self.raw
            .get(s..e)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Every top-level header as Postfix's header_checks sees it: `Name: value`, unfolded.
    pub fn logical_header_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.headers().iter().map(|h| {
            let raw = self
                .raw
                .get(h.offset_field as usize..h.offset_end as usize)
                .unwrap_or_default();
            unfold(&String::from_utf8_lossy(raw))
        })
    }

    pub fn is_authenticated(&self) -> bool {
        self.envelope.is_authenticated()
    }
}

/// Joins folded header lines and trims the line ending.
pub fn unfold(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, line) in raw.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if i > 0 && !line.is_empty() {
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line);
        }
    }
    out.trim().to_string()
}

/// A header value as text: decoded words, addresses as `Name <addr>`.
pub fn header_text(v: &HeaderValue<'_>, raw: &str) -> String {
    match v {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(l) => l.join(", "),
        HeaderValue::Address(a) => a
            .iter()
            .map(|addr| match (addr.name(), addr.address()) {
                (Some(n), Some(a)) => format!("{n} <{a}>"),
                (None, Some(a)) => a.to_string(),
                (Some(n), None) => n.to_string(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => unfold(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: \"J\" <j@example.com>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nX-Long: a\r\n b\r\n\r\nhello\r\n";

    #[test]
    fn headers_decoded_raw_and_logical() {
        let env = Envelope::default();
        let t = Task::new(&env, MSG, 1 << 20);
        assert!(t.parsed);
        assert_eq!(t.header_values("subject"), vec!["café"]);
        assert_eq!(
            t.header_raw_values("Subject"),
            vec!["=?utf-8?q?caf=C3=A9?="]
        );
        assert_eq!(t.header_values("From"), vec!["J <j@example.com>"]);
        assert_eq!(t.header_raw_values("x-long"), vec!["a b"]);
        let lines: Vec<String> = t.logical_header_lines().collect();
        assert_eq!(lines[2], "X-Long: a b");
        assert_eq!(t.raw_body(), b"hello\r\n");
        assert_eq!(t.text_parts().len(), 1);
    }

    #[test]
    fn oversize_is_not_parsed() {
        let env = Envelope::default();
        let t = Task::new(&env, MSG, 10);
        assert!(!t.parsed);
        assert!(t.text_parts().is_empty());
        assert!(
            t.header_values("subject").is_empty(),
            "no panic on an unparsed message"
        );
        assert_eq!(t.logical_header_lines().count(), 0);
    }
}
