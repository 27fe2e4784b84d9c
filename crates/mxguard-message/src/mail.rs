//! [`Mail`]: one message, parsed once, with the views the checks, the
//! classifier and the front ends share, each computed on first use.

use crate::attachment::{Detected, safe_file_name};
use crate::parse::{Limits, Parsed, Truncation, parse_bounded};
use crate::received::Hop;
use mail_parser::{HeaderName, HeaderValue, Message, MimeHeaders, PartType};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

/// At most this many distinct URLs are kept per message ([`Mail::urls`]);
/// the scan of the message's text stops at the next one. A URL list check
/// may ask the network about each, so the bound is the work a sender can
/// force. Real mail is far below it: at most 237 in one message of
/// corpus-dev, phishing-dev and the MIME samples (`tests/views.rs`).
pub const MAX_URLS: usize = 1024;

/// At most this many Received fields are parsed ([`Mail::received`]).
/// Real mail has few (at most 15 in one message of the same corpora);
/// Postfix bounces a message past 50 (`hopcount_limit`).
pub const MAX_HOPS: usize = 64;

/// At most this many attachments are listed ([`Mail::attachments`]); the
/// parse's [`Limits::max_parts`] bounds them already.
pub const MAX_ATTACHMENTS: usize = 1024;

/// A message: its bytes, the one MIME parse of them, and lazily computed
/// views.
///
/// The parse runs when the `Mail` is made, within [`Limits::DEFAULT`] (the
/// limits the classifier learns with). Every other view (HTML reduced to
/// text, URLs, attachments, Received hops) is computed the first time it
/// is asked for and kept; `OnceLock`, so a `&Mail` may be shared between
/// threads and held across an `.await` in a spawned future. The fields
/// are public for the checks that read the parsed tree directly; the views
/// are computed from them as they are at first use, so they are not to be
/// changed after that.
pub struct Mail<'a> {
    pub raw: &'a [u8],
    pub message: Message<'a>,
    /// False when the message was too big to parse or not a message at all;
    /// the views are then empty.
    pub parsed: bool,
    /// Where the parse stopped at its bounds ([`Limits`]): the parts and
    /// header fields past them are not in `message`, nor in any view.
    pub truncated: Truncation,
    html_text: OnceLock<Vec<String>>,
    urls: OnceLock<Urls>,
    attachments: OnceLock<Vec<AttachmentInfo>>,
    received: OnceLock<Vec<Hop<'a>>>,
}

/// A URL of the message ([`Mail::urls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// As written in the text or the HTML source (entities not decoded),
    /// at most [`crate::url::MAX_URL`] bytes; a bare `www.` host has no
    /// scheme.
    pub url: String,
    /// The host, lowercased, without user info and trailing dots. An
    /// internationalised host is as written: punycode stays punycode,
    /// Unicode stays Unicode (both are in the public suffix list).
    pub host: String,
    /// The registrable domain of the host ([`crate::domain::organisational`]);
    /// the host itself for an IP address or an unknown suffix.
    pub domain: String,
    /// The URL had user info before the host (`https://bank@evil.example`).
    pub userinfo: bool,
    /// Found in an HTML part's source (an `href`, `src` or its text), not
    /// in a plain text part.
    pub in_html: bool,
}

#[derive(Default)]
struct Urls {
    list: Vec<Url>,
    truncated: bool,
}

/// An attachment of the message ([`Mail::attachments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment<'m> {
    /// The declared file name made safe ([`safe_file_name`]): no path, no
    /// control characters.
    pub name: Option<&'m str>,
    /// The declared content type, `type/subtype` lowercased.
    pub declared_type: Option<&'m str>,
    /// The type its first bytes say it is.
    pub detected: Detected,
    /// Decoded size in bytes.
    pub size: usize,
    /// The decoded content, borrowed from the parse (an attached message:
    /// its raw bytes).
    pub bytes: &'m [u8],
    /// How many attached messages it is inside (0: an attachment of the
    /// message itself).
    pub depth: usize,
}

/// What is kept of an attachment: everything but the bytes, which are
/// borrowed from the parse on each look (`path` leads to them).
struct AttachmentInfo {
    /// Part ids from the message down: attached messages, then the part.
    path: Vec<u32>,
    name: Option<String>,
    declared_type: Option<String>,
    detected: Detected,
}

impl<'a> Mail<'a> {
    /// Parses `raw` unless it is longer than `max_size` bytes.
    pub fn new(raw: &'a [u8], max_size: u64) -> Mail<'a> {
        let parsed = if raw.len() as u64 <= max_size {
            parse_bounded(raw, &Limits::DEFAULT)
        } else {
            Parsed::default()
        };
        let ok = parsed.message.is_some();
        Mail {
            raw,
            message: parsed.message.unwrap_or_default(),
            parsed: ok,
            truncated: parsed.truncated,
            html_text: OnceLock::new(),
            urls: OnceLock::new(),
            attachments: OnceLock::new(),
            received: OnceLock::new(),
        }
    }

    /// Decoded text of every text part, HTML reduced to text; nothing is
    /// copied but the HTML's text, once.
    pub fn text_parts(&self) -> Vec<Cow<'_, str>> {
        let html = self
            .html_text
            .get_or_init(|| crate::text::html_texts(&self.message));
        crate::text::text_parts_from(&self.message, html)
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
        std::str::from_utf8(self.raw_value_bytes(h)).unwrap_or("")
    }

    fn raw_value_bytes(&self, h: &mail_parser::Header<'_>) -> &'a [u8] {
        let (s, e) = (h.offset_start as usize, h.offset_end as usize);
        self.raw.get(s..e).unwrap_or_default()
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

    /// The URLs of the text parts and of the HTML parts' source, each once
    /// (by its text), in the order found: plain text parts first, then HTML.
    /// At most [`MAX_URLS`]; [`Mail::urls_truncated`] says when there were
    /// more.
    pub fn urls(&self) -> &[Url] {
        &self.url_view().list
    }

    /// Whether the message had more than [`MAX_URLS`] distinct URLs.
    pub fn urls_truncated(&self) -> bool {
        self.url_view().truncated
    }

    fn url_view(&self) -> &Urls {
        self.urls.get_or_init(|| collect_urls(&self.message))
    }

    /// The attachments of the message and of the messages attached to it
    /// (breadth first), at most [`MAX_ATTACHMENTS`], as mail-parser counts
    /// attachments: parts that are not the message's text, inline images
    /// and attached messages included.
    pub fn attachments(&self) -> impl ExactSizeIterator<Item = Attachment<'_>> + '_ {
        self.attachments
            .get_or_init(|| collect_attachments(&self.message))
            .iter()
            .map(|info| {
                let bytes = resolve(&self.message, &info.path).map_or(&[][..], |p| p.contents());
                Attachment {
                    name: info.name.as_deref(),
                    declared_type: info.declared_type.as_deref(),
                    detected: info.detected,
                    size: bytes.len(),
                    bytes,
                    depth: info.path.len().saturating_sub(1),
                }
            })
    }

    /// The top-level Received fields, parsed ([`Hop::parse`]), newest
    /// first, at most [`MAX_HOPS`]. A field the parser understands nothing
    /// of is kept (as an empty hop) so the positions match the fields.
    pub fn received(&self) -> &[Hop<'a>] {
        self.received.get_or_init(|| {
            self.headers()
                .iter()
                .filter(|h| h.name == HeaderName::Received)
                .take(MAX_HOPS)
                .map(|h| Hop::parse(self.raw_value_bytes(h)))
                .collect()
        })
    }
}

fn collect_urls(m: &Message<'_>) -> Urls {
    let mut urls = Urls::default();
    let mut seen = HashSet::new();
    for &id in &m.text_body {
        if let Some(PartType::Text(t)) = m.parts.get(id as usize).map(|p| &p.body) {
            add_urls(t, false, &mut urls, &mut seen);
        }
    }
    for part in &m.parts {
        if let PartType::Html(h) = &part.body {
            add_urls(h, true, &mut urls, &mut seen);
        }
    }
    urls
}

/// Adds the URLs of `text` not `seen` before; false once [`MAX_URLS`] is
/// reached.
fn add_urls<'t>(text: &'t str, in_html: bool, urls: &mut Urls, seen: &mut HashSet<&'t str>) {
    crate::url::scan(text, usize::MAX, |found| {
        let end = crate::url::url_end(text, found.start, found.host_end);
        let url = text.get(found.start..end).unwrap_or_default();
        let (userinfo, host) = crate::url::split_userinfo(found.host);
        let host = crate::url::trim_host(host);
        // One SipHash per URL: `insert` says whether it was seen. A new URL
        // past the limit is inserted for nothing: the list is full from
        // then on and `truncated` already set.
        if host.is_empty() || !seen.insert(url) {
            return true;
        }
        if urls.list.len() >= MAX_URLS {
            urls.truncated = true;
            return false;
        }
        let host = host.to_lowercase();
        // A message's URLs mostly follow one another on one host: the
        // domain of the one before is reused rather than looked up again.
        let domain = match urls.list.last() {
            Some(before) if before.host == host => before.domain.clone(),
            _ => crate::domain::organisational(&host),
        };
        urls.list.push(Url {
            url: url.to_string(),
            domain,
            host,
            userinfo: userinfo.is_some(),
            in_html,
        });
        true
    });
}

/// [`add_urls`] as it was before it hashed each URL once and reused the
/// domain of the URL before: the reference of the tests.
#[cfg(test)]
fn add_urls_reference<'t>(
    text: &'t str,
    in_html: bool,
    urls: &mut Urls,
    seen: &mut HashSet<&'t str>,
) {
    crate::url::scan(text, usize::MAX, |found| {
        let end = crate::url::url_end(text, found.start, found.host_end);
        let url = text.get(found.start..end).unwrap_or_default();
        let (userinfo, host) = crate::url::split_userinfo(found.host);
        let host = crate::url::trim_host(host);
        if host.is_empty() || seen.contains(url) {
            return true;
        }
        if urls.list.len() >= MAX_URLS {
            urls.truncated = true;
            return false;
        }
        let host = host.to_lowercase();
        urls.list.push(Url {
            url: url.to_string(),
            domain: crate::domain::organisational(&host),
            host,
            userinfo: userinfo.is_some(),
            in_html,
        });
        seen.insert(url);
        true
    });
}

fn collect_attachments(root: &Message<'_>) -> Vec<AttachmentInfo> {
    let mut out = Vec::new();
    // Messages to list the attachments of, with the path to each.
    let mut queue: Vec<(Vec<u32>, &Message<'_>)> = vec![(Vec::new(), root)];
    let mut next = 0;
    while let Some((prefix, m)) = queue.get(next).cloned() {
        next += 1;
        for &id in &m.attachments {
            if out.len() >= MAX_ATTACHMENTS {
                return out;
            }
            let Some(part) = m.parts.get(id as usize) else {
                continue;
            };
            let mut path = prefix.clone();
            path.push(id);
            if let PartType::Message(nested) = &part.body {
                queue.push((path.clone(), nested));
            }
            let declared_type = part.content_type().map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            });
            out.push(AttachmentInfo {
                path,
                name: part.attachment_name().and_then(safe_file_name),
                declared_type,
                detected: Detected::of(part.contents()),
            });
        }
    }
    out
}

/// The part at `path` (see [`AttachmentInfo::path`]).
fn resolve<'m, 'a>(
    root: &'m Message<'a>,
    path: &[u32],
) -> Option<&'m mail_parser::MessagePart<'a>> {
    let (last, inner) = path.split_last()?;
    let mut m = root;
    for &id in inner {
        match &m.parts.get(id as usize)?.body {
            PartType::Message(nested) => m = nested,
            _ => return None,
        }
    }
    m.parts.get(*last as usize)
}

/// Joins folded header lines and trims the line ending.
fn unfold(raw: &str) -> String {
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
fn header_text(v: &HeaderValue<'_>, raw: &str) -> String {
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
    use crate::received::Host;

    /// Generated texts of URLs (repeated, sharing hosts, with user info,
    /// upper case, past the limit) give the same list as the reference.
    #[test]
    fn urls_match_the_reference() {
        const PIECES: &[&str] = &[
            "http://a.example/",
            "https://A.Example/x",
            "http://a.example/y",
            "www.b.example.co.uk ",
            "https://u:p@c.example.",
            "http://c.example/",
            "https://bank@evil.example/",
            "http://192.0.2.1/",
            "http://-/",
            "http:// x",
            "&#104;ttps://d.example/",
            " ",
            "\n",
            "see http://a.example/.",
            "https://sub.a.example/",
            "http://\u{e9}x.example/",
            "HTTP://A.EXAMPLE/",
            "<a href=\"http://e.example/\">",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for round in 0..3000 {
            let parts: Vec<String> = (0..1 + next(3))
                .map(|_| {
                    let n = if round % 100 == 0 { 3000 } else { next(40) };
                    let mut t = String::new();
                    for _ in 0..n {
                        t.push_str(PIECES[next(PIECES.len())]);
                        if next(4) == 0 {
                            t.push_str(&format!("http://h{}.example/{}", next(1500), next(3)));
                        }
                    }
                    t
                })
                .collect();
            let (mut got, mut want) = (Urls::default(), Urls::default());
            let (mut seen1, mut seen2) = (HashSet::new(), HashSet::new());
            for (i, t) in parts.iter().enumerate() {
                add_urls(t, i % 2 == 1, &mut got, &mut seen1);
                add_urls_reference(t, i % 2 == 1, &mut want, &mut seen2);
            }
            assert_eq!(got.list, want.list, "round {round}");
            assert_eq!(got.truncated, want.truncated, "round {round}");
        }
    }

    fn mail(raw: &[u8]) -> Mail<'_> {
        let m = Mail::new(raw, u64::MAX);
        assert!(m.parsed);
        m
    }

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn mail_may_be_shared_between_threads() {
        send_sync::<Mail<'static>>();
        let raw = b"Content-Type: text/html\r\n\r\n<a href=\"https://x.example/\">x</a>\r\n";
        let m = mail(raw);
        let seen: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| m.urls().as_ptr() as usize))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "one view, computed once"
        );
        assert_eq!(m.urls()[0].host, "x.example");
    }

    #[test]
    fn html_text_is_reduced_once() {
        let raw = b"Content-Type: text/html\r\n\r\n<p>Hello <b>there</b></p>\r\n";
        let m = mail(raw);
        let (a, b) = (m.text_parts(), m.text_parts());
        assert!(a[0].contains("Hello there"));
        assert_eq!(a[0].as_ptr(), b[0].as_ptr(), "the same reduced text");
    }

    #[test]
    fn urls_from_text_and_html_with_hosts_and_domains() {
        let raw = b"Content-Type: multipart/mixed; boundary=BOUNDARY\r\n\r\n--BOUNDARY\r\n\
            Content-Type: text/plain\r\n\r\nSee https://MX1.Web.DE/a?b=1, www.Shop.Example.CO.UK. \
            and http://bank.example@192.0.2.7/login and https://mx1.web.de/a?b=1 again\r\n\
            --BOUNDARY\r\nContent-Type: text/html\r\n\r\n<a href=\"http://news.example.com./x\">\
            https://user@t.co/y</a><img src=\"https://xn--bcher-kva.example/i.png\">\r\n--BOUNDARY--\r\n";
        let m = mail(raw);
        let got: Vec<(&str, &str, &str, bool, bool)> = m
            .urls()
            .iter()
            .map(|u| {
                (
                    u.url.as_str(),
                    u.host.as_str(),
                    u.domain.as_str(),
                    u.userinfo,
                    u.in_html,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "https://MX1.Web.DE/a?b=1",
                    "mx1.web.de",
                    "web.de",
                    false,
                    false
                ),
                (
                    "http://bank.example@192.0.2.7/login",
                    "192.0.2.7",
                    "192.0.2.7",
                    true,
                    false
                ),
                (
                    "https://mx1.web.de/a?b=1",
                    "mx1.web.de",
                    "web.de",
                    false,
                    false
                ),
                (
                    "www.Shop.Example.CO.UK",
                    "www.shop.example.co.uk",
                    "example.co.uk",
                    false,
                    false
                ),
                (
                    "http://news.example.com./x",
                    "news.example.com",
                    "example.com",
                    false,
                    true
                ),
                ("https://user@t.co/y", "t.co", "t.co", true, true),
                (
                    "https://xn--bcher-kva.example/i.png",
                    "xn--bcher-kva.example",
                    "xn--bcher-kva.example",
                    false,
                    true
                ),
            ]
        );
        assert!(!m.urls_truncated());
    }

    #[test]
    fn ten_thousand_urls_are_bounded() {
        let mut raw = b"Subject: many\r\n\r\n".to_vec();
        for i in 0..10_000 {
            raw.extend(format!("http://h{i}.example.com/p \r\n").bytes());
        }
        let m = mail(&raw);
        assert_eq!(m.urls().len(), MAX_URLS);
        assert!(m.urls_truncated());
        assert_eq!(m.urls()[0].domain, "example.com");

        // The same URL 10,000 times is one URL.
        let mut raw = b"Subject: same\r\n\r\n".to_vec();
        raw.extend(b"http://a.example.com/ ".repeat(10_000));
        let m = mail(&raw);
        assert_eq!(m.urls().len(), 1);
        assert!(!m.urls_truncated());
    }

    /// A message with a "photo" that is a Windows program, a name that is a
    /// path with a NUL, and an attached message carrying a PDF.
    const ATTACHED: &[u8] = b"From: a@example.com\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n\
        Content-Type: image/JPEG; name=photo.jpg\r\n\
        Content-Disposition: attachment; filename=\"photo.jpg\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b\r\n\
        Content-Type: application/octet-stream\r\n\
        Content-Disposition: attachment; filename*=utf-8''..%2F..%5Cinvoice.pdf%00.exe\r\n\r\n\
        \x7fELF\r\n--b\r\n\
        Content-Type: message/rfc822\r\n\r\n\
        Subject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\
        Content-Type: text/plain\r\n\r\ninner\r\n--c\r\n\
        Content-Type: application/pdf; name=\"r.pdf\"\r\n\r\n%PDF-1.4 x\r\n--c--\r\n\
        --b--\r\n";

    #[test]
    fn attachments_declared_and_detected() {
        let m = mail(ATTACHED);
        let a: Vec<Attachment<'_>> = m.attachments().collect();
        assert_eq!(a.len(), 4, "{a:#?}");
        // The lying content type: declared a JPEG, really a Windows program.
        assert_eq!(a[0].name, Some("photo.jpg"));
        assert_eq!(a[0].declared_type, Some("image/jpeg"));
        assert_eq!(a[0].detected, Detected::Exe);
        assert_eq!(a[0].bytes, b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00");
        assert_eq!(a[0].size, 12);
        assert_eq!(a[0].depth, 0);
        // A name with path separators and a NUL.
        assert_eq!(a[1].name, Some("invoice.pdf.exe"));
        assert_eq!(a[1].detected, Detected::Elf);
        // The attached message, then what is inside it.
        assert_eq!(a[2].declared_type, Some("message/rfc822"));
        assert!(a[2].bytes.starts_with(b"Subject: inner"));
        assert_eq!(a[3].name, Some("r.pdf"));
        assert_eq!(a[3].detected, Detected::Pdf);
        assert_eq!(a[3].depth, 1);
        assert_eq!(m.attachments().len(), 4);
    }

    #[test]
    fn attachments_are_bounded() {
        let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for _ in 0..5000 {
            raw.extend(b"--b\r\nContent-Type: application/zip\r\n\r\nPK\x03\x04\r\n");
        }
        raw.extend(b"--b--\r\n");
        let m = Mail::new(&raw, u64::MAX);
        assert!(m.truncated.parts);
        let n = m.attachments().len();
        assert!(n > 0 && n <= MAX_ATTACHMENTS, "{n}");
        assert!(m.attachments().all(|a| a.detected == Detected::Zip));
    }

    #[test]
    fn received_hops_in_order_and_bounded() {
        let raw = b"Received: from relay.example.org (relay.example.org [192.0.2.5])\r\n\
            \tby mx.example.net (Postfix) with ESMTPS id 1; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
            Received: from [10.0.0.2] by relay.example.org with SMTP; Mon, 1 Jan 2024\r\n\
            Received: garbage\r\n\
            Subject: x\r\n\r\nbody\r\n";
        let m = mail(raw);
        let hops = m.received();
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0].from, Some(Host::Name("relay.example.org")));
        assert_eq!(hops[0].from_ip, "192.0.2.5".parse().ok());
        assert_eq!(hops[0].by, Some(Host::Name("mx.example.net")));
        assert_eq!(hops[1].from, "10.0.0.2".parse().ok().map(Host::Ip));
        assert!(hops[2].is_empty());

        let mut raw = b"Received: from a.example by b.example; date\r\n".repeat(500);
        raw.extend(b"\r\nbody\r\n");
        assert_eq!(mail(&raw).received().len(), MAX_HOPS);
    }

    #[test]
    fn hostile_messages_give_empty_or_bounded_views() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00garbage",
            b"Content-Type: text/html\r\n\r\n<<<<a href=www.>http://@/ https://.../",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
              Content-Disposition: attachment; filename=\"\0\0/\\\"\r\n\r\n--b--",
            b"Received: from\r\nReceived: by\r\nReceived: (((\r\n\r\nwww.",
        ] {
            let m = Mail::new(raw, u64::MAX);
            let _ = m.text_parts();
            assert!(m.urls().iter().all(|u| !u.host.is_empty()));
            for a in m.attachments() {
                assert!(a.name.is_none_or(|n| !n.contains(['/', '\\', '\0'])));
            }
            assert!(m.received().len() <= 3);
        }
    }
}
