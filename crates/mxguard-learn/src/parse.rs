//! The MIME parse every mxguard component uses ([`parse`]).
//!
//! mail-parser finds the structure: the header fields, the parts and which
//! of them are the text and HTML bodies. mxguard decodes the bodies itself.
//! mail-parser's base64 and quoted-printable decoders go byte by byte
//! through a state machine. On corpus-dev they took 40% of the whole
//! parse, and most of the base64 was attachments nobody reads. So
//! [`parser`] leaves `Content-Transfer-Encoding` unparsed (mail-parser then
//! passes every body through undecoded), and [`parse`] decodes each encoded
//! part from its raw bytes with the decoders below and puts the header's
//! value back. The result is the `Message` mail-parser itself would give
//! (the test `same_message_as_mail_parser` compares them on corpus-dev and
//! the MIME samples), in about two thirds of the time.
//!
//! Received fields stay unparsed as well: mail-parser's own Received parser
//! tokenises every Received field fully (dates, TLS versions, ciphers,
//! ids), which was 22% of the parse, and only the feature extractor reads
//! them, with its own small parser ([`crate::received`]).

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{
    Encoding, GetHeader, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders,
    PartType,
};
use std::borrow::Cow;
use std::sync::LazyLock;

/// Parses a message: mail-parser's `Message`, with Received fields kept
/// unparsed (their value is `HeaderValue::Empty`; their raw bytes are at the
/// header's offsets, as for every field). Use this everywhere a message is
/// parsed, so the scanner and the learner see the same message. `None` when
/// there is no header at all.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    let mut m = parser().parse(raw)?;
    match decode_bodies(&mut m) {
        Decoded::Done => Some(m),
        // An encoded message/rfc822 part: mail-parser, not told of the
        // encoding, read the encoded text as a message, which can run past
        // the part's end. Rare: let mail-parser decode this one.
        Decoded::EncodedMessage => reference().parse(raw),
    }
}

fn reference() -> &'static MessageParser {
    static PARSER: LazyLock<MessageParser> = LazyLock::new(mail_parser_reference);
    &PARSER
}

/// mail-parser's default header parsing (the built-in table in its
/// parsers/header.rs: a parser with any per-header setting uses only the
/// table given here), except for Received and Content-Transfer-Encoding.
/// Private: its bodies are not decoded until [`decode_bodies`].
fn parser() -> &'static MessageParser {
    static PARSER: LazyLock<MessageParser> =
        LazyLock::new(|| header_table().ignore_header(HeaderName::ContentTransferEncoding));
    &PARSER
}

/// The same parse done by mail-parser alone (bodies decoded by it): the
/// reference [`parse`] is tested against, and the baseline of the
/// throughput example. Not for use elsewhere.
#[doc(hidden)]
pub fn mail_parser_reference() -> MessageParser {
    header_table().header_text(HeaderName::ContentTransferEncoding)
}

/// mail-parser's built-in table of how each header is parsed, but for
/// Received (kept unparsed) and Content-Transfer-Encoding (left to the
/// caller).
fn header_table() -> MessageParser {
    {
        use HeaderName::*;
        let mut p = MessageParser::new();
        for h in [Subject, Comments, ContentDescription, ContentLocation] {
            p = p.header_text(h);
        }
        for h in [
            From,
            To,
            Cc,
            Bcc,
            ReplyTo,
            Sender,
            ResentTo,
            ResentFrom,
            ResentBcc,
            ResentCc,
            ResentSender,
            ListArchive,
            ListHelp,
            ListId,
            ListOwner,
            ListPost,
            ListSubscribe,
            ListUnsubscribe,
        ] {
            p = p.header_address(h);
        }
        for h in [Date, ResentDate] {
            p = p.header_date(h);
        }
        for h in [
            MessageId,
            References,
            InReplyTo,
            ReturnPath,
            ContentId,
            ResentMessageId,
        ] {
            p = p.header_id(h);
        }
        for h in [Keywords, ContentLanguage] {
            p = p.header_comma_separated(h);
        }
        for h in [ContentType, ContentDisposition] {
            p = p.header_content_type(h);
        }
        // Everything else, MIME-Version included, raw (the default).
        p.ignore_header(Received)
    }
}

/// What mail-parser parses Content-Transfer-Encoding with when it is not
/// a plain token (comments, folding, encoded words): used to put the
/// header's value back exactly.
fn cte_parser() -> &'static MessageParser {
    static PARSER: LazyLock<MessageParser> =
        LazyLock::new(|| MessageParser::new().header_text(HeaderName::ContentTransferEncoding));
    &PARSER
}

enum Decoded {
    Done,
    EncodedMessage,
}

/// Decodes the base64 and quoted-printable bodies of `m`'s parts (and of
/// the messages nested in them) and restores their
/// Content-Transfer-Encoding values.
fn decode_bodies(m: &mut Message<'_>) -> Decoded {
    let raw: &[u8] = &m.raw_message;
    let mut undecodable = Vec::new();
    for (id, part) in m.parts.iter_mut().enumerate() {
        let encoding = restore_cte(part, raw);
        if encoding != Encoding::None
            && (matches!(part.body, PartType::Message(_))
                || part
                    .content_type()
                    .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("message")))
        {
            return Decoded::EncodedMessage;
        }
        if let PartType::Message(nested) = &mut part.body {
            if let Decoded::EncodedMessage = decode_bodies(nested) {
                return Decoded::EncodedMessage;
            }
            continue;
        }
        // A part whose boundary is missing is kept raw by mail-parser
        // whatever its encoding.
        if encoding == Encoding::None
            || part.is_encoding_problem
            || matches!(part.body, PartType::Multipart(_))
        {
            continue;
        }
        let start = part.offset_body as usize;
        let end = (part.offset_end as usize).min(raw.len());
        let body = raw.get(start..end).unwrap_or_default();
        let decoded = match encoding {
            Encoding::Base64 => base64(body),
            _ => {
                // The line break before the boundary, if one follows: its
                // length matters to mail-parser (see `quoted_printable`).
                let line_end = match raw.get(end) {
                    Some(b'\r') => 2,
                    Some(b'\n') => 1,
                    _ => 0,
                };
                quoted_printable(body, line_end)
            }
        };
        let Some(bytes) = decoded else {
            // Like mail-parser: an undecodable body is kept as raw text,
            // and is an attachment (HTML included).
            part.is_encoding_problem = true;
            part.body = match std::mem::take(&mut part.body) {
                PartType::Text(t) | PartType::Html(t) => PartType::Text(t),
                _ => PartType::Text(text(body.to_vec(), charset(part))),
            };
            undecodable.push(id as u32);
            continue;
        };
        part.encoding = encoding;
        part.body = match std::mem::take(&mut part.body) {
            PartType::Text(_) => PartType::Text(text(bytes, charset(part))),
            PartType::Html(_) => PartType::Html(text(bytes, charset(part))),
            PartType::InlineBinary(_) => PartType::InlineBinary(Cow::Owned(bytes)),
            // Binary (message and multipart parts were passed over above).
            _ => PartType::Binary(Cow::Owned(bytes)),
        };
    }
    for id in undecodable {
        demote(m, id);
    }
    Decoded::Done
}

/// Files an undecodable part as mail-parser does. It reads the part as
/// text of no known kind, except that text/plain stays text/plain: a
/// text/plain part stays where it was when it is its message's first part
/// or an alternative; anything else becomes an attachment. When an HTML
/// alternative goes, the text alternative stands for both (mail-parser
/// does that for an alternative with only one of the two).
fn demote(m: &mut Message<'_>, id: u32) {
    let Some(part) = m.parts.get(id as usize) else {
        return;
    };
    let plain = part.content_type().is_none_or(|ct| {
        ct.ctype().eq_ignore_ascii_case("text")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("plain"))
    });
    let alternative = m.parts.iter().find_map(|p| match &p.body {
        PartType::Multipart(kids)
            if kids.contains(&id)
                && p.content_type().is_some_and(|ct| {
                    ct.subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("alternative"))
                }) =>
        {
            Some(kids.clone())
        }
        _ => None,
    });
    if plain && (id == 0 || alternative.is_some()) {
        return;
    }
    let was_html = m.html_body.contains(&id);
    m.html_body.retain(|&x| x != id);
    m.text_body.retain(|&x| x != id);
    if let Err(at) = m.attachments.binary_search(&id) {
        m.attachments.insert(at, id);
    }
    if let Some(kids) = alternative
        && was_html
        && !kids.iter().any(|k| m.html_body.contains(k))
    {
        let texts: Vec<u32> = kids
            .iter()
            .copied()
            .filter(|k| m.text_body.contains(k))
            .collect();
        m.html_body.extend(texts);
    }
}

/// Puts back the value of a part's Content-Transfer-Encoding (the last
/// one, as mail-parser reads it) and returns the encoding it names.
fn restore_cte(part: &mut MessagePart<'_>, raw: &[u8]) -> Encoding {
    let mut encoding = Encoding::None;
    for header in &mut part.headers {
        if header.name != HeaderName::ContentTransferEncoding {
            continue;
        }
        let value = raw
            .get(header.offset_start as usize..header.offset_end as usize)
            .unwrap_or_default();
        let trimmed = value.trim_ascii();
        let text: Cow<'static, str> = if !trimmed.is_empty()
            && trimmed
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        {
            // The usual case: one token (ASCII, so valid UTF-8).
            Cow::Owned(String::from_utf8_lossy(trimmed).into_owned())
        } else {
            match reparse_cte(value) {
                Some(t) => Cow::Owned(t),
                None => {
                    header.value = HeaderValue::Empty;
                    encoding = Encoding::None;
                    continue;
                }
            }
        };
        encoding = if text.eq_ignore_ascii_case("base64") {
            Encoding::Base64
        } else if text.eq_ignore_ascii_case("quoted-printable") {
            Encoding::QuotedPrintable
        } else {
            Encoding::None
        };
        header.value = HeaderValue::Text(text);
    }
    encoding
}

/// mail-parser's own reading of an unusual Content-Transfer-Encoding value.
fn reparse_cte(value: &[u8]) -> Option<String> {
    let mut field = Vec::with_capacity(value.len() + 32);
    field.extend_from_slice(b"Content-Transfer-Encoding:");
    field.extend_from_slice(value);
    field.extend_from_slice(b"\r\n\r\n");
    let m = cte_parser().parse_headers(&field)?;
    match m
        .parts
        .first()?
        .headers
        .header_value(&HeaderName::ContentTransferEncoding)?
    {
        HeaderValue::Text(t) => Some(t.to_string()),
        _ => None,
    }
}

fn charset<'p>(part: &'p MessagePart<'_>) -> Option<&'p str> {
    part.content_type().and_then(|ct| ct.attribute("charset"))
}

/// Decoded bytes to text in the part's charset, as mail-parser does it,
/// except that ASCII in an ASCII-compatible single-byte charset (most mail)
/// is taken as it is instead of char by char.
fn text(bytes: Vec<u8>, charset: Option<&str>) -> Cow<'static, str> {
    match charset.and_then(|c| charset_decoder(c.as_bytes())) {
        Some(decode) => {
            if bytes.is_ascii() && charset.is_some_and(ascii_compatible) {
                // ASCII bytes are valid UTF-8.
                Cow::Owned(String::from_utf8(bytes).unwrap_or_default())
            } else {
                Cow::Owned(decode(&bytes))
            }
        }
        None => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

/// Charsets whose decoders map every ASCII byte to itself: the ISO-8859
/// and Windows single-byte families, Latin-n, US-ASCII and KOI8. (Not
/// UTF-7, UTF-16, ISO-2022 or HZ, whose ASCII bytes encode other text.)
fn ascii_compatible(charset: &str) -> bool {
    let c = charset.trim().as_bytes();
    let starts = |p: &str| c.len() >= p.len() && c[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    starts("iso-8859")
        || starts("iso8859")
        || starts("iso_8859")
        || starts("windows-125")
        || starts("cp125")
        || starts("latin")
        || starts("us-ascii")
        || c.eq_ignore_ascii_case(b"ascii")
        || starts("koi8")
}

/// Base64 value of each byte: 0..=63, or `SKIP` (whitespace, and a lone
/// `-`, which mail-parser passes over), `PAD` (`=`) or `BAD`.
static BASE64: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut i = 0;
    while i < 64 {
        let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i];
        t[c as usize] = i as u8;
        i += 1;
    }
    t[b' ' as usize] = SKIP;
    t[b'\t' as usize] = SKIP;
    t[b'\r' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t[b'-' as usize] = DASH;
    t[b'=' as usize] = PAD;
    t
};
const SKIP: u8 = 0x40;
const PAD: u8 = 0x41;
const DASH: u8 = 0x42;
const BAD: u8 = 0xff;

/// Decodes base64 as mail-parser does: whitespace is skipped, `=` ends a
/// group (and decoding goes on after it: concatenated encodings), and any
/// other byte outside the alphabet, `--` included, makes the body
/// undecodable (`None`).
fn base64(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut i = 0;
    let (mut acc, mut n) = (0u32, 0u8);
    let mut last = 0u8;
    while i < input.len() {
        // Four alphabet bytes at a time: the body of every line.
        if n == 0
            && let Some(q) = input.get(i..i + 4)
        {
            let (a, b, c, d) = (
                BASE64[q[0] as usize],
                BASE64[q[1] as usize],
                BASE64[q[2] as usize],
                BASE64[q[3] as usize],
            );
            if (a | b | c | d) < 64 {
                let v = (a as u32) << 18 | (b as u32) << 12 | (c as u32) << 6 | d as u32;
                out.extend_from_slice(&v.to_be_bytes()[1..]);
                i += 4;
                last = q[3];
                continue;
            }
        }
        let ch = input[i];
        i += 1;
        match BASE64[ch as usize] {
            v @ 0..64 => {
                acc = acc << 6 | v as u32;
                n += 1;
                if n == 4 {
                    out.extend_from_slice(&acc.to_be_bytes()[1..]);
                    (acc, n) = (0, 0);
                }
            }
            PAD => {
                match n {
                    2 => out.push((acc >> 4) as u8),
                    3 => out.extend_from_slice(&((acc >> 2) as u16).to_be_bytes()),
                    // One sextet is not a byte: mail-parser still emits one.
                    1 => out.push((acc << 2) as u8),
                    _ => {}
                }
                (acc, n) = (0, 0);
            }
            SKIP => {}
            DASH if last != b'-' => {}
            _ => return None,
        }
        last = ch;
    }
    Some(out)
}

/// Hex digit values (`0xff`: not one).
static HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0xff,
        };
        i += 1;
    }
    t
};

/// Decodes quoted-printable as mail-parser does: `=XX` is a byte, `=` at
/// the end of a line (trailing blanks allowed) joins lines, an `=` with no
/// hex digits after it is kept as it is, trailing blanks of a line are
/// dropped, CRs are dropped and line breaks become LF until the body has
/// shown a CR, CRLF from then on. `==` makes the body undecodable.
///
/// `line_end` is the length of the line break that followed the body in
/// the message (0 when none did: the end of the message, or a boundary in
/// mid-line). After one, the last line's blanks are dropped, and when the
/// last line ended in a soft line break mail-parser also drops as many
/// bytes before it as its line breaks are long (1 or 2): done here too,
/// so that the scanner and the learner keep seeing the text they saw.
fn quoted_printable(input: &[u8], line_end: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut crlf = false;
    // Whether the body ends in a soft line break.
    let mut soft_end = false;
    // Blanks at the end of `out` since the last other byte.
    let mut blanks = 0usize;
    let mut i = 0;
    while i < input.len() {
        // Plain bytes up to the next one that needs a look.
        let next = memchr::memchr3(b'=', b'\n', b'\r', &input[i..]).map_or(input.len(), |p| i + p);
        if next > i {
            let run = &input[i..next];
            out.extend_from_slice(run);
            let kept = run
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_whitespace())
                .count();
            blanks = if kept == run.len() {
                blanks + kept
            } else {
                kept
            };
            i = next;
            if i == input.len() {
                break;
            }
        }
        match input[i] {
            b'\r' => {
                crlf = true;
                i += 1;
            }
            b'\n' => {
                out.truncate(out.len() - blanks);
                blanks = 0;
                if crlf {
                    out.push(b'\r');
                }
                out.push(b'\n');
                i += 1;
            }
            _ => {
                // '=': a soft line break, an escape, or a literal. Blanks
                // after it are passed over, as mail-parser does.
                let mut j = i + 1;
                while j < input.len() && input[j] != b'\n' && input[j].is_ascii_whitespace() {
                    crlf |= input[j] == b'\r';
                    j += 1;
                }
                match input.get(j).copied() {
                    None => {
                        i = j;
                        soft_end = true;
                        blanks = 0;
                    }
                    Some(b'\n') => {
                        i = j + 1;
                        blanks = 0;
                    }
                    Some(b'=') => return None,
                    Some(h1) if HEX[h1 as usize] != 0xff => match input.get(j + 1).copied() {
                        Some(h2) if HEX[h2 as usize] != 0xff => {
                            out.push(HEX[h1 as usize] << 4 | HEX[h2 as usize]);
                            i = j + 2;
                            blanks = 0;
                        }
                        Some(b'=') => return None,
                        // "=A" then a line break: the digit is dropped.
                        None | Some(b'\r' | b'\n') => i = j + 1,
                        Some(c) => {
                            out.extend_from_slice(&[b'=', h1, c]);
                            i = j + 2;
                            blanks = 0;
                        }
                    },
                    Some(c) => {
                        out.extend_from_slice(&[b'=', c]);
                        i = j + 1;
                        blanks = 0;
                    }
                }
            }
        }
    }
    if line_end > 0 {
        out.truncate(out.len() - blanks);
        if soft_end {
            let crlf = crlf || line_end == 2;
            out.truncate(out.len().saturating_sub(if crlf { 2 } else { 1 }));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_mail_parser_decodes_it() {
        for (input, want) in [
            (&b"VGVzdA=="[..], &b"Test"[..]),
            (b"w6HDqcOt\r\nw7PDug==", "áéíóú".as_bytes()),
            (
                b"w\n6\nH\nD\nq\nc\nO\nt\nw\n7\n P\tD u g\n==",
                "áéíóú".as_bytes(),
            ),
            (b"VGVzdA==VGVzdA==", b"TestTest"),
            (b"", b""),
        ] {
            assert_eq!(base64(input).as_deref(), Some(want), "{input:?}");
        }
        assert_eq!(base64(b"VGV*zdA=="), None);
        assert_eq!(base64(b"VGVz--dA=="), None);
    }

    #[test]
    fn quoted_printable_as_mail_parser_decodes_it() {
        for (input, want) in [
            (&b"h=C3=B6"[..], "hö".as_bytes()),
            (b"first=AZ second", b"first=AZ second"),
            (b"soft=\r\nbreak", b"softbreak"),
            (b"soft= \nbreak", b"softbreak"),
            (b"trailing  \nblank", b"trailing\nblank"),
            (b"crlf\r\nline\r\n", b"crlf\r\nline\r\n"),
            (b"lf\nline", b"lf\nline"),
            (b"a=3dB", b"a=B"),
            (b"end=", b"end"),
        ] {
            assert_eq!(
                quoted_printable(input, 0).as_deref(),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            quoted_printable(b"last  ", 1).as_deref(),
            Some(&b"last"[..])
        );
        assert_eq!(quoted_printable(b"a==b", 0), None);
    }

    #[test]
    fn encoded_parts_are_decoded_and_their_header_restored() {
        let raw = "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me\r\n\
            --b\r\nContent-Type: application/octet-stream\r\n\
            Content-Transfer-Encoding: Base64\r\n\r\nAAEC\r\n--b--\r\n";
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.body_text(0).as_deref(), Some("Café crème"));
        let bin = m.attachment(0).unwrap();
        assert_eq!(bin.contents(), &[0, 1, 2]);
        assert_eq!(bin.encoding, Encoding::Base64);
        assert_eq!(bin.content_transfer_encoding(), Some("Base64"));
    }

    #[test]
    fn hostile_bodies_do_not_panic() {
        for body in [
            &b"="[..],
            b"=\r",
            b"=A",
            b"= \r\r\r",
            b"=\t=",
            b"====",
            b"\r\r\n",
            b"=0",
            b"=0\r\n",
        ] {
            let _ = quoted_printable(body, 2);
            let _ = quoted_printable(body, 0);
            let _ = base64(body);
        }
    }
}
