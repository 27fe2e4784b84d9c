//! The MIME parse every mxguard component uses ([`parse`]).
//!
//! mail-parser parses the header fields; mxguard walks the MIME structure
//! and decodes the bodies itself. mail-parser's own walk goes through
//! every body byte by byte: it looks for the boundary a byte at a time,
//! decodes base64 and quoted-printable through a state machine, and turns
//! single-byte charsets (US-ASCII included) into text a char at a time.
//! On corpus-dev that was more than half of the parse, and most of the
//! base64 was attachments. Here boundaries are found with `memchr`'s
//! substring search, the decoders work on runs of bytes, and ASCII text in
//! an ASCII-compatible charset is borrowed from the message as it is
//! (parse 234k → 107k instructions a message; docs/BENCHMARKS.md).
//!
//! The result is the `Message` mail-parser itself gives, to the byte: the
//! same parts, offsets, bodies and text/HTML/attachment lists, including
//! its ways with broken MIME (a missing boundary, an undecodable body, an
//! unterminated nested message). The test `tests/parse.rs` compares the
//! two on all of corpus-dev and the MIME samples. The walk follows
//! mail-parser 0.11's (parsers/message.rs); a change of that version needs
//! the comparison run again.
//!
//! That holds within [`Limits`]. Past them, and only there, the message
//! differs: a part that would open a level deeper than `max_depth` is an
//! opaque `Binary` attachment (its body up to the boundary that ends it,
//! undecoded structure and all); no part is begun past `max_parts` or once
//! the boundary search runs out (the open parts end where the walk
//! stopped); header fields past `max_part_headers` / `max_headers` are
//! not in the part's list; a structured field that does not fit in
//! `max_structured_header_bytes` is `HeaderValue::Text` of its raw value.
//! [`Truncation`] says which happened. Nothing recurses per level of input
//! (the walk keeps its own stack), so the tree's depth, at most
//! `max_depth`, bounds the recursion of dropping or comparing it.
//!
//! Received fields are kept unparsed: mail-parser's own Received parser
//! tokenises every Received field fully (dates, TLS versions, ciphers,
//! ids), which was 22% of the parse; the classifier and
//! [`crate::Mail::received`] read them with a small parser of their own
//! ([`crate::received`]).

use mail_parser::decoders::charsets::DecoderFnc;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::HEX_MAP;
use mail_parser::parsers::MessageStream;
use mail_parser::{
    ContentType, Encoding, GetHeader, Header, HeaderName, HeaderValue, Message, MessageParser,
    MessagePart, PartType,
};
use std::borrow::Cow;

/// How deep base64- or quoted-printable-encoded `message/rfc822` parts are
/// parsed in turn (mail-parser's limit); deeper ones stay binary.
const MAX_ENCODED_NESTING: usize = 3;

/// Bounds on the work and memory one message may cost, whoever sent it.
///
/// Without them a message costs far more than its size: a parsed header
/// field is ~100 bytes however short its line (45 MB of `a:b` lines took
/// 620 MiB), a part ~1 KB (500k empty parts in 43 MB took 484 MiB), an
/// address or id list ~24 bytes per 2-byte element, and a nested message is
/// a level of the tree that dropping it recurses through (33,000 levels in
/// 1 MB overflowed the stack and aborted the process). A multipart whose
/// boundary is missing costs a search to the end of the message. Past a bound the
/// parse does not fail: deeper parts become opaque, further parts and
/// header fields are left unparsed, and [`Truncation`] says which bound was
/// reached, for the scanner to report (the `MIME_TOO_*` symbols).
///
/// Real mail is far below them (corpus-dev, phishing-dev and the MIME
/// samples: at most 5 levels, 30 parts, 150 header fields and 18 KB of
/// header). They are constants, not settings: the learner and the scanner
/// must see the same message, and no admin has a reason to tune them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Multipart and message levels a part may be inside (rspamd's
    /// `max_nested` is 64 too). A multipart or message part that would open
    /// a deeper level is an opaque binary part.
    pub max_depth: usize,
    /// Parts of the whole message, nested messages included; the bytes
    /// after the last are not parsed.
    pub max_parts: usize,
    /// Header fields kept for one part; the others are skipped unparsed.
    pub max_part_headers: usize,
    /// Header fields kept for the whole message.
    pub max_headers: usize,
    /// Bytes of header fields parsed into structures (addresses, ids,
    /// lists, content types, dates, decoded text) in the whole message; a
    /// field that does not fit is kept as raw text.
    pub max_structured_header_bytes: usize,
    /// How many times the message's size the parse may search for the
    /// first boundaries of multiparts. A multipart whose boundary is
    /// missing is searched for to the end of the message (and then taken
    /// as text, as mail-parser does): 1,000 of them before 40 MB took 14 s.
    /// The parts after the search runs out are not parsed.
    pub max_boundary_search: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_depth: 64,
        max_parts: 1024,
        max_part_headers: 1024,
        max_headers: 8192,
        max_structured_header_bytes: 512 << 10,
        max_boundary_search: 8,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Which [`Limits`] a parse reached: where the message was not parsed as
/// mail-parser would have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// A part would have opened a level past `max_depth`.
    pub depth: bool,
    /// More than `max_parts` parts.
    pub parts: bool,
    /// Header fields past `max_part_headers` or `max_headers`.
    pub headers: bool,
    /// A structured field past `max_structured_header_bytes`.
    pub header_bytes: bool,
    /// Multiparts whose boundary is not in the rest of the message made
    /// the parse search more than `max_boundary_search` times the message.
    pub boundary_search: bool,
}

impl Truncation {
    pub fn any(&self) -> bool {
        self.depth || self.parts || self.headers || self.header_bytes || self.boundary_search
    }
}

/// A bounded parse's result.
#[derive(Debug, Default)]
pub struct Parsed<'x> {
    /// `None` when there is no header at all.
    pub message: Option<Message<'x>>,
    pub truncated: Truncation,
}

/// Parses a message within [`Limits::DEFAULT`]: mail-parser's `Message`,
/// with Received fields kept unparsed (their value is `HeaderValue::Empty`;
/// their raw bytes are at the header's offsets, as for every field). Use
/// this (or [`parse_bounded`]) everywhere a message is parsed, so the
/// scanner and the learner see the same message. `None` when there is no
/// header at all.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    parse_bounded(raw, &Limits::DEFAULT).message
}

/// [`parse`] within `limits`, saying which it reached.
pub fn parse_bounded<'x>(raw: &'x [u8], limits: &Limits) -> Parsed<'x> {
    let mut budget = Budget {
        limits: *limits,
        parts: 0,
        headers: 0,
        structured_bytes: 0,
        boundary_search: 0,
        truncated: Truncation::default(),
    };
    let message = walk(raw, MAX_ENCODED_NESTING, 0, &mut budget);
    Parsed {
        message,
        truncated: budget.truncated,
    }
}

/// What the message has used of its [`Limits`] so far (nested encoded
/// messages included).
struct Budget {
    limits: Limits,
    parts: usize,
    headers: usize,
    structured_bytes: usize,
    /// Bytes searched for multiparts' first boundaries.
    boundary_search: usize,
    truncated: Truncation,
}

impl Budget {
    /// [`find_boundary`] for a multipart's first boundary, within what is
    /// left of the search budget (`max_boundary_search` times the message,
    /// plus 1 MiB): `Err` when the boundary is not within it and the rest
    /// of the message is longer.
    fn find_first_boundary(
        &mut self,
        raw: &[u8],
        from: usize,
        boundary: &[u8],
    ) -> Result<Option<(usize, usize)>, ()> {
        let allowed = raw
            .len()
            .saturating_mul(self.limits.max_boundary_search)
            .saturating_add(1 << 20);
        let left = allowed.saturating_sub(self.boundary_search);
        let end = from.saturating_add(left).min(raw.len());
        let window = raw.get(..end).unwrap_or_default();
        match find_boundary(window, from, boundary) {
            Some((start, after)) => {
                self.boundary_search += after - from;
                Ok(Some((start, after)))
            }
            None if end == raw.len() => {
                self.boundary_search += end.saturating_sub(from);
                Ok(None)
            }
            None => {
                self.boundary_search = allowed;
                Err(())
            }
        }
    }
}

/// How a header field's value is parsed: mail-parser's built-in table
/// (parsers/header.rs), with Received skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Unstructured text, encoded words decoded.
    Text,
    Address,
    Date,
    Id,
    CommaSeparated,
    ContentType,
    /// Left unparsed: read by [`crate::received`] when asked for.
    Received,
    /// Everything else, MIME-Version included.
    Raw,
}

/// The fields parsed into structures, for [`mail_parser_reference`]; the
/// test `field_table_matches_the_reference` keeps [`field`] in step.
const FIELDS: [(HeaderName<'static>, Field); 36] = {
    use Field::*;
    use HeaderName as H;
    [
        (H::Subject, Text),
        (H::Comments, Text),
        (H::ContentDescription, Text),
        (H::ContentLocation, Text),
        (H::ContentTransferEncoding, Text),
        (H::From, Address),
        (H::To, Address),
        (H::Cc, Address),
        (H::Bcc, Address),
        (H::ReplyTo, Address),
        (H::Sender, Address),
        (H::ResentTo, Address),
        (H::ResentFrom, Address),
        (H::ResentBcc, Address),
        (H::ResentCc, Address),
        (H::ResentSender, Address),
        (H::ListArchive, Address),
        (H::ListHelp, Address),
        (H::ListId, Address),
        (H::ListOwner, Address),
        (H::ListPost, Address),
        (H::ListSubscribe, Address),
        (H::ListUnsubscribe, Address),
        (H::Date, Date),
        (H::ResentDate, Date),
        (H::MessageId, Id),
        (H::References, Id),
        (H::InReplyTo, Id),
        (H::ReturnPath, Id),
        (H::ContentId, Id),
        (H::ResentMessageId, Id),
        (H::Keywords, CommaSeparated),
        (H::ContentLanguage, CommaSeparated),
        (H::ContentType, ContentType),
        (H::ContentDisposition, ContentType),
        (H::Received, Received),
    ]
};

/// [`FIELDS`] as a match (a header's parser is looked up for every field).
fn field(name: &HeaderName<'_>) -> Field {
    use HeaderName as H;
    match name {
        H::Subject
        | H::Comments
        | H::ContentDescription
        | H::ContentLocation
        | H::ContentTransferEncoding => Field::Text,
        H::From
        | H::To
        | H::Cc
        | H::Bcc
        | H::ReplyTo
        | H::Sender
        | H::ResentTo
        | H::ResentFrom
        | H::ResentBcc
        | H::ResentCc
        | H::ResentSender
        | H::ListArchive
        | H::ListHelp
        | H::ListId
        | H::ListOwner
        | H::ListPost
        | H::ListSubscribe
        | H::ListUnsubscribe => Field::Address,
        H::Date | H::ResentDate => Field::Date,
        H::MessageId
        | H::References
        | H::InReplyTo
        | H::ReturnPath
        | H::ContentId
        | H::ResentMessageId => Field::Id,
        H::Keywords | H::ContentLanguage => Field::CommaSeparated,
        H::ContentType | H::ContentDisposition => Field::ContentType,
        H::Received => Field::Received,
        _ => Field::Raw,
    }
}

/// One part's header block: mail-parser's `MessageStream::parse_headers`
/// with the parsers of [`field`], within the budget. Returns false at the
/// end of the message (no blank line).
fn parse_header_block<'x>(
    stream: &mut MessageStream<'x>,
    raw: &'x [u8],
    headers: &mut Vec<Header<'x>>,
    budget: &mut Budget,
) -> bool {
    loop {
        loop {
            match stream.peek() {
                Some(b'\n') => {
                    stream.next();
                    return true;
                }
                None => return false,
                Some(ch) if !ch.is_ascii_whitespace() => break,
                _ => {
                    stream.next();
                }
            }
        }
        let offset_field = stream.offset();
        let Some(name) = stream.parse_header_name() else {
            if stream.is_eof() {
                return false;
            }
            continue;
        };
        if headers.len() >= budget.limits.max_part_headers
            || budget.headers >= budget.limits.max_headers
        {
            budget.truncated.headers = true;
            skip_field(stream, raw);
            continue;
        }
        budget.headers += 1;
        let from = stream.offset();
        let value = match field(&name) {
            Field::Received => {
                skip_field(stream, raw);
                HeaderValue::Empty
            }
            Field::Raw => raw_value(stream, raw),
            structured => {
                let left = budget.limits.max_structured_header_bytes - budget.structured_bytes;
                // Only measured when the rest of the message might not fit.
                if raw.len() - from > left && field_end(raw, from) - from > left {
                    budget.truncated.header_bytes = true;
                    raw_value(stream, raw)
                } else {
                    let value = match structured {
                        Field::Text => stream.parse_unstructured(),
                        Field::Address => stream.parse_address(),
                        Field::Date => stream.parse_date(),
                        Field::Id => stream.parse_id(),
                        Field::CommaSeparated => stream.parse_comma_separared(),
                        _ => stream.parse_content_type(),
                    };
                    budget.structured_bytes = (budget.structured_bytes + stream.offset() - from)
                        .min(budget.limits.max_structured_header_bytes);
                    value
                }
            }
        };
        headers.push(Header {
            name,
            value,
            offset_field: offset_field as u32,
            offset_start: from as u32,
            offset_end: stream.offset() as u32,
        });
    }
}

/// mail-parser's `parse_and_ignore`: the stream moved past the field
/// whose value it is at, found with `memchr` rather than a byte at a time
/// (Received fields are long and many).
fn skip_field(stream: &mut MessageStream<'_>, raw: &[u8]) {
    skip_to(stream, field_end(raw, stream.offset()));
}

/// Moves `stream` on to `end` (at or after its offset). Nothing to do at
/// the end of the message, where a stream that has read past the last
/// byte must not be moved (its position is then past the end).
fn skip_to(stream: &mut MessageStream<'_>, end: usize) {
    let n = end.saturating_sub(stream.offset());
    if n > 0 {
        stream.skip_bytes(n);
    }
}

/// mail-parser's `parse_raw`: the field's value without the white space
/// (space, tab, CR, LF) around it, as text (lossy), `Empty` when there is
/// none; the stream moved past the field. The end is found with `memchr`,
/// and valid UTF-8 is borrowed after one validation (`from_utf8_lossy`
/// walks its chunks a byte at a time).
fn raw_value<'x>(stream: &mut MessageStream<'x>, raw: &'x [u8]) -> HeaderValue<'x> {
    let from = stream.offset();
    let end = field_end(raw, from);
    skip_to(stream, end);
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let value = &raw[from..end];
    let Some(first) = value.iter().position(|b| !blank(b)) else {
        return HeaderValue::Empty;
    };
    let last = value.iter().rposition(|b| !blank(b)).unwrap_or(first);
    let value = &value[first..=last];
    HeaderValue::Text(match std::str::from_utf8(value) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value),
    })
}

/// Where the header field whose value starts at `from` ends: after the
/// line break not followed by a blank (folding), or at the end.
fn field_end(raw: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(p) = memchr::memchr(b'\n', &raw[at..]) {
        at += p + 1;
        if !matches!(raw.get(at), Some(b' ' | b'\t')) {
            return at;
        }
    }
    raw.len()
}

/// The same parse done by mail-parser alone: the reference [`parse`] is
/// tested against, and the baseline of the throughput example. Not for
/// use elsewhere.
#[doc(hidden)]
pub fn mail_parser_reference() -> MessageParser {
    // A parser with any per-header setting uses only the table given here;
    // everything not in it, MIME-Version included, is raw (the default).
    let mut p = MessageParser::new();
    for (name, f) in FIELDS {
        p = match f {
            Field::Text => p.header_text(name),
            Field::Address => p.header_address(name),
            Field::Date => p.header_date(name),
            Field::Id => p.header_id(name),
            Field::CommaSeparated => p.header_comma_separated(name),
            Field::ContentType => p.header_content_type(name),
            Field::Received => p.ignore_header(name),
            Field::Raw => p,
        };
    }
    p
}

/// What a part is, as mail-parser sorts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mixed,
    Alternative,
    Related,
    Digest,
    OtherMultipart,
    TextPlain,
    TextHtml,
    TextOther,
    /// image, audio, video.
    Inline,
    Message,
    Other,
}

/// (multipart, inline, text, kind) of a part from its Content-Type; with
/// none, text/plain, or a message inside a multipart/digest.
fn kind_of(ct: Option<&ContentType<'_>>, parent: Kind) -> (bool, bool, bool, Kind) {
    let Some(ct) = ct else {
        return if parent == Kind::Digest {
            (false, false, false, Kind::Message)
        } else {
            (false, true, true, Kind::TextPlain)
        };
    };
    match ct.ctype() {
        "multipart" => (
            true,
            false,
            false,
            match ct.subtype() {
                Some("mixed") => Kind::Mixed,
                Some("alternative") => Kind::Alternative,
                Some("related") => Kind::Related,
                Some("digest") => Kind::Digest,
                _ => Kind::OtherMultipart,
            },
        ),
        "text" => match ct.subtype() {
            Some("plain") => (false, true, true, Kind::TextPlain),
            Some("html") => (false, true, true, Kind::TextHtml),
            _ => (false, false, true, Kind::TextOther),
        },
        "image" | "audio" | "video" => (false, true, false, Kind::Inline),
        "message" if matches!(ct.subtype(), Some("rfc822" | "global")) => {
            (false, false, false, Kind::Message)
        }
        _ => (false, false, false, Kind::Other),
    }
}

/// One level of the walk: a message's root, or a multipart.
struct Level {
    kind: Kind,
    boundary: Option<Vec<u8>>,
    in_alternative: bool,
    /// Parts begun at this level.
    parts: usize,
    /// Lengths of the message's HTML and text lists when the level began.
    html_parts: usize,
    text_parts: usize,
    need_html: bool,
    need_text: bool,
    /// The level's own part (the multipart, or the nested message).
    part_id: usize,
    sub_part_ids: Vec<u32>,
}

impl Level {
    fn message(boundary: Option<Vec<u8>>, part_id: usize) -> Level {
        Level {
            kind: Kind::Message,
            boundary,
            in_alternative: false,
            parts: 0,
            html_parts: 0,
            text_parts: 0,
            need_html: true,
            need_text: true,
            part_id,
            sub_part_ids: Vec::new(),
        }
    }

    /// Whether the level's part gets a `Multipart` body: all but a
    /// message's root level, whose only part is part 0.
    fn has_own_sub_parts(&self) -> bool {
        self.sub_part_ids.len() != 1 || self.sub_part_ids[0] != 0
    }
}

fn part(headers: Vec<mail_parser::Header<'_>>, header: usize, body: usize) -> MessagePart<'_> {
    MessagePart {
        headers,
        is_encoding_problem: false,
        encoding: Encoding::None,
        body: PartType::default(),
        offset_header: header as u32,
        offset_body: body as u32,
        offset_end: 0,
    }
}

/// The walk: mail-parser's state machine (parsers/message.rs), with the
/// body work done by the functions below, within the budget. `encoded` is
/// how many more encoded messages may be parsed inside this one; `outer`
/// the levels this message is inside.
fn walk<'x>(
    raw: &'x [u8],
    encoded: usize,
    outer: usize,
    budget: &mut Budget,
) -> Option<Message<'x>> {
    let mut pos = 0usize;
    let mut message = Message::default();
    let mut level = Level::message(None, 0);
    let mut stack: Vec<(Level, Option<Message<'_>>)> = Vec::new();
    let mut headers = Vec::new();

    'outer: loop {
        if budget.parts >= budget.limits.max_parts {
            // The rest is not parsed (the open levels end here).
            budget.truncated.parts = true;
            break;
        }
        let offset_header = pos;
        let mut stream = MessageStream::new(raw);
        stream.skip_bytes(pos);
        let more = parse_header_block(&mut stream, raw, &mut headers, budget);
        pos = stream.offset();
        if !more {
            break;
        }
        let offset_body = pos;
        budget.parts += 1;
        level.parts += 1;
        let id = message.parts.len();
        level.sub_part_ids.push(id as u32);

        let ct = headers
            .header_value(&HeaderName::ContentType)
            .and_then(|c| c.as_content_type());
        let (mut multipart, mut inline, mut is_text, mut kind) = kind_of(ct, level.kind);
        // Levels this part is inside; a multipart or a message part here
        // would open one more.
        let depth = outer + stack.len();
        if (multipart || kind == Kind::Message) && depth >= budget.limits.max_depth {
            // Too deep: an opaque part, its body up to the boundary that
            // ends it, as it is.
            budget.truncated.depth = true;
            (multipart, inline, is_text, kind) = (false, false, false, Kind::Other);
        }

        if multipart && let Some(boundary) = ct.and_then(|c| c.attribute("boundary")) {
            let Ok(found) = budget.find_first_boundary(raw, pos, boundary.as_bytes()) else {
                // Searched too much already: the rest is not parsed.
                budget.truncated.boundary_search = true;
                break;
            };
            if let Some((_, after)) = found {
                let new = Level {
                    kind,
                    boundary: Some(boundary.as_bytes().to_vec()),
                    in_alternative: level.in_alternative || kind == Kind::Alternative,
                    parts: 0,
                    html_parts: message.html_body.len(),
                    text_parts: message.text_body.len(),
                    need_html: level.need_html,
                    need_text: level.need_text,
                    part_id: id,
                    sub_part_ids: Vec::new(),
                };
                message.parts.push(part(
                    std::mem::take(&mut headers),
                    offset_header,
                    offset_body,
                ));
                stack.push((std::mem::replace(&mut level, new), None));
                pos = skip_line_end(raw, after);
                continue;
            }
            kind = Kind::TextOther;
            is_text = true;
        }

        let mut encoding = match headers.header_value(&HeaderName::ContentTransferEncoding) {
            Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("base64") => Encoding::Base64,
            Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("quoted-printable") => {
                Encoding::QuotedPrintable
            }
            _ => Encoding::None,
        };

        if kind == Kind::Message && encoding == Encoding::None {
            // A message inside the message: its headers follow, and it ends
            // at its parent's boundary.
            let new = Level::message(level.boundary.take(), id);
            message.attachments.push(id as u32);
            message.parts.push(part(
                std::mem::take(&mut headers),
                offset_header,
                offset_body,
            ));
            stack.push((
                std::mem::replace(&mut level, new),
                Some(std::mem::take(&mut message)),
            ));
            continue;
        }

        // The body: up to the boundary, decoded.
        let boundary = level.boundary.as_deref().unwrap_or_default();
        let mut is_encoding_problem = false;
        let (offset_end, mut bytes): (usize, Cow<'_, [u8]>) = match part_end(raw, pos, boundary) {
            Some((end, after, next)) => {
                let body = &raw[offset_body..end];
                pos = after;
                let decoded = match encoding {
                    Encoding::None => Some(Cow::Borrowed(body)),
                    // A '-' just before a boundary in mid-line makes "--"
                    // that mail-parser's base64 decoder takes for a
                    // boundary that is not there: undecodable.
                    Encoding::Base64 if next == Next::Boundary && body.ends_with(b"-") => None,
                    Encoding::Base64 => base64(body).map(Cow::Owned),
                    Encoding::QuotedPrintable => quoted_printable(body, next).map(Cow::Owned),
                };
                match decoded {
                    Some(bytes) => (end, bytes),
                    None => {
                        is_encoding_problem = true;
                        (end, Cow::Borrowed(body))
                    }
                }
            }
            None => {
                // No boundary after it: mail-parser takes the rest of the
                // message as this part's text and forgets the boundary.
                is_encoding_problem = true;
                level.boundary = None;
                pos = raw.len();
                (raw.len(), Cow::Borrowed(&raw[offset_body..]))
            }
        };
        if is_encoding_problem {
            encoding = Encoding::None;
            if kind != Kind::TextPlain {
                kind = Kind::TextOther;
            }
            inline = false;
            is_text = true;
        }

        let body = if kind != Kind::Message {
            let inline = inline
                && headers
                    .header_value(&HeaderName::ContentDisposition)
                    .is_none_or(|d| !d.as_content_type().is_some_and(|c| c.is_attachment()))
                && (level.parts == 1
                    || level.kind != Kind::Related
                        && (kind == Kind::Inline || ct.is_none_or(|c| !c.has_attribute("name"))));
            // A message of one text/plain part is text, however broken.
            let inline = inline
                || level.parts == 1
                    && level.kind == Kind::Message
                    && kind == Kind::TextPlain
                    && is_encoding_problem;
            let (to_html, to_text) = if level.kind == Kind::Alternative {
                match kind {
                    Kind::TextHtml => (true, false),
                    Kind::TextPlain => (false, true),
                    _ => (false, false),
                }
            } else if inline {
                if level.in_alternative && (level.need_text || level.need_html) {
                    match kind {
                        Kind::TextHtml => level.need_text = false,
                        Kind::TextPlain => level.need_html = false,
                        _ => {}
                    }
                }
                (level.need_html, level.need_text)
            } else {
                (false, false)
            };
            if to_html {
                message.html_body.push(id as u32);
            }
            if to_text {
                message.text_body.push(id as u32);
            }
            if is_text {
                let text = text(bytes, ct.and_then(|c| c.attribute("charset")));
                let is_html = kind == Kind::TextHtml;
                if !to_html && is_html || !to_text && !is_html {
                    message.attachments.push(id as u32);
                }
                if is_html {
                    PartType::Html(text)
                } else {
                    PartType::Text(text)
                }
            } else {
                message.attachments.push(id as u32);
                if inline {
                    PartType::InlineBinary(bytes)
                } else {
                    PartType::Binary(bytes)
                }
            }
        } else {
            // An encoded message/rfc822 part: the decoded message.
            message.attachments.push(id as u32);
            let nested = (encoded > 0)
                .then(|| {
                    walk(&bytes, encoded - 1, depth + 1, budget).map(|n| {
                        (
                            n.html_body,
                            n.text_body,
                            n.attachments,
                            n.parts
                                .into_iter()
                                .map(MessagePart::into_owned)
                                .collect::<Vec<_>>(),
                        )
                    })
                })
                .flatten();
            match nested {
                Some((html_body, text_body, attachments, parts)) => PartType::Message(Message {
                    html_body,
                    text_body,
                    attachments,
                    parts,
                    raw_message: Cow::Owned(std::mem::take(&mut bytes).into_owned()),
                }),
                None => {
                    is_encoding_problem = true;
                    PartType::Binary(bytes)
                }
            }
        };
        message.parts.push(MessagePart {
            headers: std::mem::take(&mut headers),
            encoding,
            is_encoding_problem,
            body,
            offset_header: offset_header as u32,
            offset_body: offset_body as u32,
            offset_end: offset_end as u32,
        });

        if level.boundary.is_some() {
            'inner: loop {
                if level.kind == Kind::Message {
                    // A nested message ends at its parent's boundary.
                    let Some((mut parent, Some(mut parent_message))) = stack.pop() else {
                        break 'outer;
                    };
                    let dashes = level.boundary.as_ref().map_or(0, |b| b.len() + 2);
                    let at = pos.saturating_sub(dashes);
                    let end = if at >= 2 && raw[at - 2] == b'\r' {
                        at - 2
                    } else {
                        at.saturating_sub(1)
                    };
                    message.raw_message = Cow::Borrowed(raw);
                    if let Some(p) = parent_message.parts.get_mut(level.part_id) {
                        p.offset_end = end as u32;
                        if message.parts.is_empty() {
                            p.is_encoding_problem = true;
                            p.body = PartType::Text(String::from_utf8_lossy(
                                raw.get(p.offset_body as usize..end).unwrap_or_default(),
                            ));
                        } else {
                            p.body = PartType::Message(std::mem::take(&mut message));
                        }
                    }
                    message = parent_message;
                    parent.boundary = level.boundary.take();
                    level = parent;
                }

                let (ended, after) = multipart_end(raw, pos);
                pos = after;
                if !ended {
                    // The next part's headers follow.
                    break 'inner;
                }
                if level.kind == Kind::Alternative && level.need_html && level.need_text {
                    // An alternative with only HTML, or only text: that
                    // part stands for both.
                    if level.text_parts == message.text_body.len()
                        && level.html_parts != message.html_body.len()
                    {
                        let ids = message.html_body[level.html_parts..].to_vec();
                        message.text_body.extend(ids);
                    }
                    if level.html_parts == message.html_body.len()
                        && level.text_parts != message.text_body.len()
                    {
                        let ids = message.text_body[level.text_parts..].to_vec();
                        message.html_body.extend(ids);
                    }
                }
                let Some(p) = message.parts.get_mut(level.part_id) else {
                    break 'outer;
                };
                if level.has_own_sub_parts() {
                    p.body = PartType::Multipart(std::mem::take(&mut level.sub_part_ids));
                }
                if let Some((parent, _)) = stack.pop() {
                    level = parent;
                    if let Some(b) = &level.boundary
                        && let Some((end, after)) = next_boundary_line(raw, pos, b)
                    {
                        p.offset_end = end as u32;
                        pos = after;
                        continue 'inner;
                    }
                }
                p.offset_end = pos as u32;
                break 'outer;
            }
        } else if pos >= raw.len() {
            break 'outer;
        }
    }

    // Unterminated levels (corrupt MIME): keep what was found.
    while let Some((parent, parent_message)) = stack.pop() {
        if let Some(mut parent_message) = parent_message {
            message.raw_message = Cow::Borrowed(raw);
            if let Some(p) = parent_message.parts.get_mut(level.part_id) {
                p.offset_end = pos as u32;
                if message.parts.is_empty() {
                    p.is_encoding_problem = true;
                    let raw_text = raw.get(p.offset_body as usize..pos);
                    let text = raw_text
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .and_then(|t| {
                            let b = std::str::from_utf8(level.boundary.as_deref()?).ok()?;
                            let (t, _) = t.rsplit_once(b)?;
                            let t = t.strip_suffix("--")?;
                            let t = t.strip_suffix('\n').unwrap_or(t);
                            Some(t.strip_suffix('\r').unwrap_or(t))
                        });
                    p.body = PartType::Text(match text {
                        Some(t) => Cow::Borrowed(t),
                        None => String::from_utf8_lossy(raw_text.unwrap_or_default()),
                    });
                } else {
                    p.body = PartType::Message(std::mem::take(&mut message));
                }
            }
            message = parent_message;
        } else if let Some(p) = message.parts.get_mut(level.part_id) {
            p.offset_end = pos as u32;
            if level.has_own_sub_parts() {
                p.body = PartType::Multipart(std::mem::take(&mut level.sub_part_ids));
            }
        }
        level = parent;
    }

    message.raw_message = Cow::Borrowed(raw);
    if !message.parts.is_empty() {
        message.parts[0].offset_end = raw.len() as u32;
        Some(message)
    } else if !headers.is_empty() {
        // Headers and no body.
        message.parts.push(MessagePart {
            headers,
            encoding: Encoding::None,
            is_encoding_problem: true,
            body: PartType::Text("".into()),
            offset_header: 0,
            offset_body: raw.len() as u32,
            offset_end: raw.len() as u32,
        });
        Some(message)
    } else {
        None
    }
}

/// The first `--boundary` at or after `from`: (its start, the position
/// after it).
fn find_boundary(raw: &[u8], from: usize, boundary: &[u8]) -> Option<(usize, usize)> {
    if boundary.is_empty() {
        return None;
    }
    let hay = raw.get(from..)?;
    let mut at = 0;
    // The boundary preceded by "--".
    while let Some(p) = memchr::memmem::find(&hay[at..], boundary) {
        let p = at + p;
        if p >= 2 && hay[p - 2] == b'-' && hay[p - 1] == b'-' {
            return Some((from + p - 2, from + p + boundary.len()));
        }
        at = p + 1;
    }
    None
}

/// Where a part's body that starts at `from` ends, the position after the
/// boundary that ends it, and what came between (see [`Next`]); `None`
/// when no boundary follows. The line break before the boundary is not the
/// body's. With no boundary (a message's only part), the body runs to the
/// end.
fn part_end(raw: &[u8], from: usize, boundary: &[u8]) -> Option<(usize, usize, Next)> {
    if boundary.is_empty() {
        return Some((raw.len(), raw.len(), Next::End));
    }
    let (start, after) = find_boundary(raw, from, boundary)?;
    let end = if start > from && raw[start - 1] == b'\n' {
        if start - 1 > from && raw[start - 2] == b'\r' {
            start - 2
        } else {
            start - 1
        }
    } else {
        start
    };
    let next = if end < start {
        Next::LineBreak(start - end)
    } else {
        Next::Boundary
    };
    Some((end, after, next))
}

/// The next `--boundary` after the end of a multipart: (the end of the
/// last line before it, less its line break; the position after it).
fn next_boundary_line(raw: &[u8], from: usize, boundary: &[u8]) -> Option<(usize, usize)> {
    let (start, after) = find_boundary(raw, from, boundary)?;
    let end = match memchr::memrchr(b'\n', &raw[from..start]) {
        Some(p) => {
            let nl = from + p;
            if nl > from && raw[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            }
        }
        None => from,
    };
    Some((end, after))
}

/// After a boundary: `--` ends the multipart (true); otherwise the line
/// break (or the blanks up to it) is passed over.
fn multipart_end(raw: &[u8], pos: usize) -> (bool, usize) {
    match (raw.get(pos), raw.get(pos + 1)) {
        (Some(b'\r'), Some(b'\n')) => (false, pos + 2),
        (Some(b'-'), Some(b'-')) => (true, pos + 2),
        (Some(b'\n'), _) => (false, pos + 1),
        (Some(c), _) if c.is_ascii_whitespace() => (false, skip_line_end(raw, pos + 1)),
        _ => (false, pos),
    }
}

/// Blanks and CRs, then one LF.
fn skip_line_end(raw: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = raw.get(pos) {
        match c {
            b'\r' | b' ' | b'\t' => pos += 1,
            b'\n' => return pos + 1,
            _ => break,
        }
    }
    pos
}

/// A body's bytes as text in its charset, as mail-parser does it, but
/// faster for the common cases: ASCII in an ASCII-compatible charset (most
/// mail) is taken as it is, borrowed from the message when it was not
/// encoded; other text in a single-byte charset goes through a table of
/// its 128 upper bytes instead of a char at a time; valid UTF-8 is checked
/// with the fast validator before the lossy one.
fn text<'x>(bytes: Cow<'x, [u8]>, charset: Option<&str>) -> Cow<'x, str> {
    match (bytes, charset.and_then(|c| charset_decoder(c.as_bytes()))) {
        (bytes, Some(decode)) => {
            if !charset.is_some_and(single_byte) {
                Cow::Owned(decode(&bytes))
            } else if bytes.is_ascii() {
                // ASCII is valid UTF-8.
                match bytes {
                    Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).unwrap_or_default()),
                    Cow::Owned(v) => Cow::Owned(String::from_utf8(v).unwrap_or_default()),
                }
            } else {
                Cow::Owned(decode_single_byte(&bytes, decode))
            }
        }
        (Cow::Owned(v), None) => Cow::Owned(
            String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        (Cow::Borrowed(b), None) => match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(b),
        },
    }
}

/// Text in a single-byte charset: runs of ASCII copied, the other bytes
/// looked up in the charset's table, which is built once per thread by
/// asking mail-parser's decoder for each of the 128 upper bytes.
fn decode_single_byte(bytes: &[u8], decode: DecoderFnc) -> String {
    thread_local! {
        static TABLES: std::cell::RefCell<Vec<(usize, Box<[char; 128]>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    TABLES.with_borrow_mut(|tables| {
        let key = decode as usize;
        let i = match tables.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let mut table = Box::new(['\u{FFFD}'; 128]);
                for (b, c) in table.iter_mut().enumerate() {
                    *c = decode(&[0x80 + b as u8])
                        .chars()
                        .next()
                        .unwrap_or('\u{FFFD}');
                }
                tables.push((key, table));
                tables.len() - 1
            }
        };
        let table = &tables[i].1;
        let mut out = String::with_capacity(bytes.len() + bytes.len() / 4);
        let mut rest = bytes;
        while !rest.is_empty() {
            let ascii = rest
                .iter()
                .position(|b| !b.is_ascii())
                .unwrap_or(rest.len());
            // ASCII is valid UTF-8.
            out.push_str(std::str::from_utf8(&rest[..ascii]).unwrap_or_default());
            if let Some(&b) = rest.get(ascii) {
                out.push(table[(b - 0x80) as usize]);
                rest = &rest[ascii + 1..];
            } else {
                break;
            }
        }
        out
    })
}

/// Charsets of one byte per character whose decoders map every ASCII byte
/// to itself: the ISO-8859 and Windows single-byte families, Latin-n,
/// US-ASCII and KOI8. (Not UTF-7, UTF-16, ISO-2022 or HZ, whose ASCII bytes
/// encode other text, nor the multi-byte CJK charsets.)
fn single_byte(charset: &str) -> bool {
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

/// Decodes quoted-printable as mail-parser does: `=XX` is a byte, `=` at
/// the end of a line (trailing blanks allowed) joins lines, an `=` with no
/// hex digits after it is kept as it is, trailing blanks of a line are
/// dropped, CRs are dropped and line breaks become LF until the body has
/// shown a CR, CRLF from then on. `==` makes the body undecodable.
///
/// `next` is what followed the body in the message. mail-parser's ways
/// there are kept, so that the scanner and the learner keep seeing the text
/// they saw: after a line break the last line's blanks are dropped, and
/// when the last line ended in a soft line break as many bytes before it as
/// its line breaks are long (1 or 2) go too; before a boundary in mid-line
/// an unfinished `=` or `=X` stays.
fn quoted_printable(input: &[u8], next: Next) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut crlf = false;
    // Whether the body ends in a soft line break.
    let mut soft_end = false;
    // The bytes of an escape the body ends in the middle of ("=", "=X").
    let mut unfinished: &[u8] = &[];
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
                        unfinished = b"=";
                    }
                    Some(b'\n') => {
                        i = j + 1;
                        blanks = 0;
                    }
                    Some(b'=') => return None,
                    Some(h1) if HEX_MAP[h1 as usize] >= 0 => {
                        // mail-parser waits for the second digit across
                        // line breaks (which it writes out meanwhile).
                        let (mut k, mut last) = (j + 1, h1);
                        while let Some(&c @ (b'\r' | b'\n')) = input.get(k) {
                            if c == b'\r' {
                                crlf = true;
                            } else {
                                out.truncate(out.len() - blanks);
                                blanks = 0;
                                if crlf {
                                    out.push(b'\r');
                                }
                                out.push(b'\n');
                            }
                            last = c;
                            k += 1;
                        }
                        match input.get(k).copied() {
                            None => {
                                i = k;
                                unfinished = &input[j..=j];
                            }
                            Some(b'=') => return None,
                            Some(h2) if HEX_MAP[h2 as usize] >= 0 => {
                                out.push(
                                    (HEX_MAP[h1 as usize] as u8) << 4 | HEX_MAP[h2 as usize] as u8,
                                );
                                i = k + 1;
                                blanks = 0;
                            }
                            Some(c) => {
                                out.extend_from_slice(&[b'=', last, c]);
                                i = k + 1;
                                blanks = 0;
                            }
                        }
                    }
                    Some(c) => {
                        out.extend_from_slice(&[b'=', c]);
                        i = j + 1;
                        blanks = 0;
                    }
                }
            }
        }
    }
    match next {
        Next::End => {}
        Next::LineBreak(len) => {
            out.truncate(out.len() - blanks);
            if soft_end {
                let crlf = crlf || len == 2;
                out.truncate(out.len().saturating_sub(if crlf { 2 } else { 1 }));
            }
        }
        Next::Boundary => {
            if !unfinished.is_empty() {
                out.push(b'=');
                if unfinished != b"=" {
                    out.extend_from_slice(unfinished);
                }
            }
        }
    }
    Some(out)
}

/// What followed a part's body in the message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The end of the message (a message of one part).
    End,
    /// A line break of this length, then the boundary.
    LineBreak(usize),
    /// The boundary, in mid-line.
    Boundary,
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

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
                quoted_printable(input, Next::End).as_deref(),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            quoted_printable(b"last  ", Next::LineBreak(1)).as_deref(),
            Some(&b"last"[..])
        );
        assert_eq!(quoted_printable(b"a==b", Next::End), None);
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
            for next in [Next::End, Next::LineBreak(2), Next::Boundary] {
                let _ = quoted_printable(body, next);
            }
            let _ = base64(body);
        }
    }

    /// Levels of nested messages in the tree (what dropping it recurses
    /// through), counted without recursion.
    fn message_depth(m: &Message<'_>) -> usize {
        let mut deepest = 0;
        let mut todo = vec![(m, 0)];
        while let Some((m, d)) = todo.pop() {
            deepest = deepest.max(d);
            for p in &m.parts {
                if let PartType::Message(n) = &p.body {
                    todo.push((n, d + 1));
                }
            }
        }
        deepest
    }

    fn reference(raw: &[u8]) -> Option<Message<'_>> {
        static P: std::sync::LazyLock<MessageParser> =
            std::sync::LazyLock::new(mail_parser_reference);
        P.parse(raw)
    }

    /// Raw and Received fields are read without mail-parser's byte loop
    /// (`raw_value`, `skip_field`): every cut of a header block, through
    /// folds, blank values, bad UTF-8 and a name with no colon at the end,
    /// parses as mail-parser parses it.
    #[test]
    fn raw_and_skipped_fields_at_every_cut_are_mail_parsers() {
        let raw: &[u8] = b"Received: from a (b [192.0.2.1])\r\n\tby c; date\r\n\
            X-Raw:   spaced  value \t\r\n  folded\r\n\
            X-Empty:\r\n \r\n\
            X-Bad: caf\xe9 \xff\r\n\
            MIME-Version: 1.0\n\
            Received: by x\n\
            X-Last: tail\r\n\
            \r\nbody\r\n";
        for end in 0..=raw.len() {
            let cut = &raw[..end];
            assert_eq!(
                parse(cut),
                reference(cut),
                "{:?}",
                String::from_utf8_lossy(cut)
            );
        }
        let names_only: &[u8] = b"Received: x\r\nX-No-Colon";
        assert_eq!(parse(names_only), reference(names_only));
    }

    #[test]
    fn field_table_matches_the_reference() {
        for (name, f) in FIELDS {
            assert_eq!(field(&name), f, "{name:?}");
        }
        for name in [
            HeaderName::MimeVersion,
            HeaderName::Other("X-Mailer".into()),
        ] {
            assert_eq!(field(&name), Field::Raw);
        }
    }

    #[test]
    fn nested_messages_past_the_depth_limit_are_opaque() {
        let limits = Limits::DEFAULT;
        // Within the limit: mail-parser's message.
        let mut raw = b"Content-Type: message/rfc822\n\n".repeat(limits.max_depth);
        raw.extend(b"Subject: x\n\nbody\n");
        let p = parse_bounded(&raw, &limits);
        assert_eq!(p.truncated, Truncation::default());
        assert_eq!(p.message, reference(&raw));
        assert_eq!(message_depth(p.message.as_ref().unwrap()), limits.max_depth);

        let mut raw = b"Content-Type: message/rfc822\n\n".repeat(limits.max_depth + 5);
        raw.extend(b"x\n");
        let p = parse_bounded(&raw, &limits);
        assert!(p.truncated.depth && !p.truncated.parts);
        let m = p.message.unwrap();
        assert_eq!(message_depth(&m), limits.max_depth);
        // The deepest part holds the rest, as it is.
        let mut m = &m;
        while let PartType::Message(n) = &m.parts[0].body {
            m = n;
        }
        let rest = b"Content-Type: message/rfc822\n\n".repeat(4);
        assert_eq!(
            m.parts[0].body,
            PartType::Binary([&rest[..], b"x\n"].concat().into())
        );
        assert_eq!(m.attachments, [0]);
    }

    #[test]
    fn multiparts_past_the_depth_limit_are_opaque() {
        let nest = |n: usize| {
            let mut raw = Vec::new();
            for i in 0..n {
                raw.extend(
                    format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").bytes(),
                );
            }
            raw.extend(b"Content-Type: text/plain\n\ndeepest\n");
            for i in (0..n).rev() {
                raw.extend(format!("--b{i}--\n").bytes());
            }
            raw
        };
        let limits = Limits::DEFAULT;
        let raw = nest(limits.max_depth);
        let p = parse_bounded(&raw, &limits);
        assert_eq!(p.truncated, Truncation::default());
        assert_eq!(p.message, reference(&raw));
        assert_eq!(p.message.unwrap().body_text(0).as_deref(), Some("deepest"));

        let raw = nest(limits.max_depth + 100);
        let p = parse_bounded(&raw, &limits);
        assert!(p.truncated.depth);
        let m = p.message.unwrap();
        // The levels within the limit, then one opaque part.
        assert_eq!(m.parts.len(), limits.max_depth + 1);
        assert!(matches!(
            m.parts[limits.max_depth].body,
            PartType::Binary(_)
        ));
        assert!(m.text_body.is_empty());
    }

    #[test]
    fn encoded_messages_count_towards_the_depth() {
        // A base64 message/rfc822 part under 63 levels: its own nested
        // message would be the 65th level.
        let inner = "Content-Type: message/rfc822\n\nSubject: in\n\nhi\n";
        let b64 = base64_encode(inner.as_bytes());
        let mut raw = b"Content-Type: message/rfc822\n\n".repeat(Limits::DEFAULT.max_depth - 1);
        raw.extend(
            format!("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{b64}\n")
                .bytes(),
        );
        let p = parse_bounded(&raw, &Limits::DEFAULT);
        assert!(p.truncated.depth);
        assert_eq!(
            message_depth(&p.message.unwrap()),
            Limits::DEFAULT.max_depth
        );
    }

    fn base64_encode(b: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in b.chunks(3) {
            let v = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                out.push(if i <= c.len() {
                    A[(v >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        out
    }

    #[test]
    fn parts_past_the_limit_are_not_parsed() {
        let parts = |n: usize| {
            let mut raw = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
            raw.extend(b"--b\nContent-Type: text/plain\n\nx\n".repeat(n));
            raw.extend(b"--b--\n");
            raw
        };
        let limits = Limits::DEFAULT;
        // The root and its parts.
        let raw = parts(limits.max_parts - 1);
        let p = parse_bounded(&raw, &limits);
        assert_eq!(p.truncated, Truncation::default());
        assert_eq!(p.message, reference(&raw));

        let raw = parts(limits.max_parts * 3);
        let p = parse_bounded(&raw, &limits);
        assert_eq!(
            p.truncated,
            Truncation {
                parts: true,
                ..Default::default()
            }
        );
        let m = p.message.unwrap();
        assert_eq!(m.parts.len(), limits.max_parts);
        assert_eq!(m.text_body.len(), limits.max_parts - 1);
    }

    #[test]
    fn searches_for_missing_boundaries_are_bounded() {
        let bogus = |n: usize| {
            let mut raw = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
            for i in 0..n {
                raw.extend(
                    format!("--b\nContent-Type: multipart/mixed; boundary=nope{i}\n\nx\n").bytes(),
                );
            }
            raw.extend(b"--b\n\n");
            raw.extend(b"filler text\n".repeat(10_000));
            raw.extend(b"--b--\n");
            raw
        };
        // A few: searched to the end, as mail-parser does.
        let raw = bogus(5);
        let p = parse_bounded(&raw, &Limits::DEFAULT);
        assert_eq!(p.truncated, Truncation::default());
        assert_eq!(p.message, reference(&raw));

        // Many (here: past 2 times the message plus 1 MiB): the parts after
        // the search ran out are not parsed.
        let raw = bogus(1000);
        let limits = Limits {
            max_boundary_search: 2,
            ..Limits::DEFAULT
        };
        let p = parse_bounded(&raw, &limits);
        assert_eq!(
            p.truncated,
            Truncation {
                boundary_search: true,
                ..Default::default()
            }
        );
        let searched = raw.len() - raw.iter().position(|&c| c == b'x').unwrap();
        let n = p.message.unwrap().parts.len();
        assert!(
            n > 2 && n < 2 + (2 * raw.len() + (1 << 20)) / searched + 2,
            "{n} parts"
        );
    }

    #[test]
    fn header_fields_past_the_limits_are_not_parsed() {
        let limits = Limits::DEFAULT;
        let mut raw = b"Subject: first\n".to_vec();
        raw.extend(b"X-A: b\n".repeat(limits.max_part_headers - 1));
        raw.extend(b"\nbody\n");
        let p = parse_bounded(&raw, &limits);
        assert_eq!(p.truncated, Truncation::default());
        assert_eq!(p.message, reference(&raw));

        // One part with too many.
        let mut raw = b"X-A: b\n".repeat(limits.max_part_headers * 4);
        raw.extend(b"Subject: past the limit\n\nbody\n");
        let p = parse_bounded(&raw, &limits);
        assert!(p.truncated.headers);
        let m = p.message.unwrap();
        assert_eq!(m.headers().len(), limits.max_part_headers);
        assert_eq!(m.subject(), None);
        assert_eq!(m.body_text(0).as_deref(), Some("body\n"));

        // Many parts, each within the per-part limit.
        let mut raw = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
        let per_part = limits.max_part_headers - 1;
        let n = limits.max_headers / per_part + 2;
        for _ in 0..n {
            raw.extend(b"--b\n");
            raw.extend(b"X-A: b\n".repeat(per_part));
            raw.extend(b"\nx\n");
        }
        raw.extend(b"--b--\n");
        let p = parse_bounded(&raw, &limits);
        assert!(p.truncated.headers);
        let total: usize = p
            .message
            .unwrap()
            .parts
            .iter()
            .map(|p| p.headers.len())
            .sum();
        assert_eq!(total, limits.max_headers);
    }

    #[test]
    fn structured_fields_past_the_byte_budget_stay_raw() {
        let limits = Limits {
            max_structured_header_bytes: 1000,
            ..Limits::DEFAULT
        };
        let list = |n: usize| "a@example.com, ".repeat(n);
        // Within the budget: parsed.
        let raw = format!("To: {}\nCc: {}\n\nx\n", list(30), list(30));
        let p = parse_bounded(raw.as_bytes(), &limits);
        assert_eq!(p.truncated, Truncation::default());
        assert_eq!(p.message, reference(raw.as_bytes()));
        // Past it: the field that does not fit is raw, later small ones
        // that fit are still parsed.
        let raw = format!(
            "To: {}\nCc: {}\nSubject: =?utf-8?q?caf=C3=A9?=\n\nx\n",
            list(40),
            list(40)
        );
        let p = parse_bounded(raw.as_bytes(), &limits);
        assert!(p.truncated.header_bytes);
        let m = p.message.unwrap();
        assert!(m.to().is_some());
        assert!(matches!(m.header("Cc"), Some(HeaderValue::Text(_))));
        assert_eq!(m.subject(), Some("café"));
    }
}
