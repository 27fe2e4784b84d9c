//! The feature extractor: a parsed message becomes a set of hashed features.
//!
//! Feature families (each hashed with its own seed, so `s:free` in the
//! Subject and `free` in the body are different features):
//!
//! - body words (text parts, HTML reduced to text), lower-cased, Unicode
//!   aware; runs of CJK, Thai, Lao, Khmer and Myanmar characters (scripts
//!   written without spaces) become overlapping character bigrams; long
//!   digit runs and long tokens become shape tokens, so ids and base64 junk
//!   do not flood the model; `!`, `$`, `%`, `€`, `£` are tokens;
//! - Subject words and bigrams, and the charset of its encoded words;
//! - From: display-name words, address, domain; Reply-To and Return-Path
//!   (envelope sender) domains; the DKIM signing domain;
//! - Received: only the hops *before* the message reached the receiving
//!   site (see [`received`](self)): the host names and networks of the relay
//!   that handed the message over and of the hops before it. The receiving
//!   site's own hops (its MX, spam gateway, fetchmail) say where a corpus was
//!   collected, not what the message is, and are never tokenised;
//! - MIME: content types, charsets, transfer encodings, attachment file
//!   extensions, the shape of the top-level boundary;
//! - URL hosts and their registrable domains, from text and from HTML
//!   attributes (`href`, `src`);
//! - X-Mailer / User-Agent words, the Message-ID domain, List-Id;
//! - the names of the header fields present, except fields added on the
//!   receiving side (Received-SPF, Authentication-Results, Delivered-To,
//!   X-Original-To, Return-Path, mbox Content-Length/Lines/Status…) and
//!   verdict fields of any filter (names containing spam, virus, junk,
//!   X-Amavis…), which describe the collecting site or leak a label;
//! - the words of other header fields' values as `name:word` (letters
//!   only, at most 8 per field; fields holding dates or ids are skipped);
//! - consistency: whether the URL, Message-ID, DKIM and relay domains are
//!   the From domain (legitimate bulk mail is consistent, spam borrows);
//! - shape: text size, URL count, HTML-only, recipient count, all-caps
//!   Subject, digits in the sender's local part;
//! - the sender's shape: whether the From display name's words are in the
//!   address's domain, its local part or neither (a brand borrowed by a
//!   stranger), Reply-To in the From domain or not, the envelope sender's
//!   local part (bounce/role, VERP, plain);
//! - generator fingerprints: the shape of the Message-ID's local part and
//!   the punctuation of Content-Type, MIME boundary shape;
//! - phishing marks: HTML forms, URLs with user info (`http://bank@host`)
//!   or punycode hosts.
//!
//! Never used: Date (it dates a corpus), To/Cc addresses (the collecting
//! mailbox), any verdict header, and numbers in header values. Measured and left out (worse on
//! corpus-dev, see the crate docs): body word bigrams, HTML tag names,
//! character n-grams.

use crate::hash::{hash_ascii_alnum_lower, hash_bytes, hash_pair};
use mail_parser::{HeaderName, HeaderValue, Message, MimeHeaders, PartType};
use mxguard_message::received::{Hop, Host};
use mxguard_message::text::text_parts;
use std::borrow::Cow;
use std::collections::HashMap;

/// At most this many bytes of decoded text per message are tokenised.
pub const MAX_TEXT_BYTES: usize = 96 * 1024;
/// At most this many bytes of each HTML part are searched for tags and URLs.
const MAX_HTML_BYTES: usize = 128 * 1024;
/// At most this many URLs per message give features.
const MAX_URLS: usize = 64;
/// Tokens longer than this (in bytes) become a shape token.
const MAX_TOKEN: usize = 32;

/// Feature families: the seed of each family's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Fam {
    Body = 1,
    BodyPair = 2,
    Subject = 3,
    SubjectPair = 4,
    FromName = 5,
    FromAddr = 6,
    FromDomain = 7,
    ReplyTo = 8,
    ReturnPath = 9,
    Received = 10,
    ContentType = 11,
    Charset = 12,
    Encoding = 13,
    Mailer = 14,
    MessageId = 15,
    ListId = 16,
    UrlHost = 17,
    UrlDomain = 18,
    HtmlTag = 19,
    HeaderName = 20,
    Attachment = 21,
    Shape = 22,
    Dkim = 23,
    CharGram = 24,
    HeaderValue = 25,
}

impl Fam {
    /// The weight group of the family, kept in a feature's top bits (see
    /// [`Features`]): the message's words, or one of the header-side groups.
    fn group(self) -> u32 {
        match self {
            Fam::Body | Fam::BodyPair | Fam::Subject | Fam::SubjectPair | Fam::CharGram => {
                crate::model::GROUP_TEXT
            }
            Fam::Received => 1,
            Fam::FromName
            | Fam::FromAddr
            | Fam::FromDomain
            | Fam::ReplyTo
            | Fam::ReturnPath
            | Fam::Mailer
            | Fam::MessageId
            | Fam::ListId
            | Fam::HeaderName
            | Fam::Dkim => 2,
            Fam::HeaderValue => 3,
            Fam::ContentType | Fam::Charset | Fam::Encoding | Fam::Attachment => 4,
            Fam::UrlHost | Fam::UrlDomain | Fam::HtmlTag => 5,
            Fam::Shape => 6,
        }
    }

    /// The feature of a token hash: its top bits, with the group on top.
    #[inline]
    fn feature(self, h: u64) -> u32 {
        ((h >> 32) as u32 & !(7 << GROUP_SHIFT)) | (self.group() << GROUP_SHIFT)
    }

    fn prefix(self) -> &'static str {
        match self {
            Fam::Body => "",
            Fam::BodyPair => "",
            Fam::Subject => "s:",
            Fam::SubjectPair => "s:",
            Fam::FromName => "fn:",
            Fam::FromAddr => "fa:",
            Fam::FromDomain => "fd:",
            Fam::ReplyTo => "rt:",
            Fam::ReturnPath => "rp:",
            Fam::Received => "rcvd:",
            Fam::ContentType => "ct:",
            Fam::Charset => "cs:",
            Fam::Encoding => "cte:",
            Fam::Mailer => "xm:",
            Fam::MessageId => "mid:",
            Fam::ListId => "list:",
            Fam::UrlHost => "url:",
            Fam::UrlDomain => "urld:",
            Fam::HtmlTag => "tag:",
            Fam::HeaderName => "h:",
            Fam::Attachment => "att:",
            Fam::Shape => "shape:",
            Fam::Dkim => "dkim:",
            Fam::CharGram => "c:",
            Fam::HeaderValue => "hv:",
        }
    }
}

/// Which feature families to extract (all on by default). Exists for the
/// measurements that chose the families (`examples/compare.rs`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub body_pairs: bool,
    pub headers: bool,
    pub received: bool,
    pub mime: bool,
    pub urls: bool,
    pub html_tags: bool,
    pub shape: bool,
    /// Character n-grams of the body text (0 = off).
    pub char_ngrams: usize,
    /// Words of the values of other header fields (`name:word`).
    pub header_values: bool,
}

impl Default for Options {
    fn default() -> Self {
        // Word bigrams and HTML tag names measured worse (examples/compare.rs):
        // off in the product, kept for the measurement.
        Options {
            body_pairs: false,
            headers: true,
            received: true,
            mime: true,
            urls: true,
            html_tags: false,
            shape: true,
            char_ngrams: 0,
            header_values: true,
        }
    }
}

/// Where a feature keeps its weight group: the top three bits (model
/// tables use at most the low 26 bits as the slot).
pub const GROUP_SHIFT: u32 = 29;

/// The hashed features of one message: sorted, without duplicates. Each
/// is a token hash whose top three bits name its weight group
/// ([`GROUP_SHIFT`]), so the model can weigh the message's words and its
/// header-side evidence separately.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features(pub Vec<u32>);

impl Features {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Size of [`Sink::push`]'s table of recent features.
const RECENT: usize = 1024;

/// Collects features; in debug mode also their readable names (for tests
/// and `mxguard learn --explain`-style inspection).
struct Sink {
    hashes: Vec<u32>,
    /// Token hash → (feature, readable name).
    debug: Option<HashMap<u64, (u32, String)>>,
    opts: Options,
    /// `opts` as a bit per family ([`Options::mask`]).
    on: u32,
    /// Recently added features, by the low bits of the hash ([`Sink::push`]).
    recent: Box<[u32; RECENT]>,
    ctx: Ctx,
}

/// What later features compare with: does the sender's domain recur in the
/// message's other identities (legitimate bulk mail is consistent; spam
/// borrows a From and links elsewhere)?
#[derive(Default)]
struct Ctx {
    from_domain: Option<String>,
    url_from: usize,
    url_other: usize,
    /// The envelope sender (MAIL FROM) when the caller knows it: a message
    /// under scan has no Return-Path yet (Postfix adds it at delivery),
    /// while learned mailbox files have one, and both must give the same
    /// features.
    envelope_sender: Option<String>,
}

impl Options {
    /// Bit `fam as u8` set for each family that gives features.
    fn mask(&self) -> u32 {
        ALL_FAMS
            .iter()
            .filter(|&&f| self.on(f))
            .fold(0, |m, &f| m | 1 << f as u8)
    }

    fn on(&self, fam: Fam) -> bool {
        let o = self;
        match fam {
            Fam::Body | Fam::Subject | Fam::SubjectPair | Fam::CharGram => true,
            Fam::BodyPair => o.body_pairs,
            Fam::Received => o.received,
            Fam::ContentType | Fam::Charset | Fam::Encoding | Fam::Attachment => o.mime,
            Fam::UrlHost | Fam::UrlDomain => o.urls,
            Fam::HtmlTag => o.html_tags,
            Fam::HeaderValue => o.header_values && o.headers,
            Fam::Shape => o.shape,
            _ => o.headers,
        }
    }
}

const ALL_FAMS: [Fam; 25] = [
    Fam::Body,
    Fam::BodyPair,
    Fam::Subject,
    Fam::SubjectPair,
    Fam::FromName,
    Fam::FromAddr,
    Fam::FromDomain,
    Fam::ReplyTo,
    Fam::ReturnPath,
    Fam::Received,
    Fam::ContentType,
    Fam::Charset,
    Fam::Encoding,
    Fam::Mailer,
    Fam::MessageId,
    Fam::ListId,
    Fam::UrlHost,
    Fam::UrlDomain,
    Fam::HtmlTag,
    Fam::HeaderName,
    Fam::Attachment,
    Fam::Shape,
    Fam::Dkim,
    Fam::CharGram,
    Fam::HeaderValue,
];

impl Sink {
    fn new(opts: Options, debug: bool) -> Sink {
        Sink {
            hashes: Vec::with_capacity(if debug { 0 } else { 1024 }),
            debug: debug.then(HashMap::new),
            opts,
            on: opts.mask(),
            recent: Box::new([0; RECENT]),
            ctx: Ctx::default(),
        }
    }

    /// Adds a feature. Words recur within a message: a direct-mapped table
    /// of recently added features drops most repeats before they reach the
    /// vector (the sort and dedup at the end remove the rest, so the set is
    /// the same; 0, the table's empty value, always goes in).
    #[inline(always)]
    fn push(&mut self, fam: Fam, h: u64) -> u32 {
        let f = fam.feature(h);
        let slot = &mut self.recent[(h as usize) % RECENT];
        if *slot != f || f == 0 {
            *slot = f;
            self.hashes.push(f);
        }
        f
    }

    /// Whether a family gives features (a bit test: this is per token).
    #[inline(always)]
    fn on(&self, fam: Fam) -> bool {
        self.on & (1 << fam as u8) != 0
    }

    #[inline(always)]
    fn tok(&mut self, fam: Fam, bytes: &[u8]) -> u64 {
        self.add(fam, hash_bytes(fam as u64, bytes), || Cow::Borrowed(bytes))
    }

    /// `tok(fam, lower-cased word)` for a word of ASCII letters and digits.
    #[inline(always)]
    fn tok_ascii_alnum(&mut self, fam: Fam, word: &[u8]) -> u64 {
        let h = hash_ascii_alnum_lower(fam as u64, word);
        self.add(fam, h, || Cow::Owned(word.to_ascii_lowercase()))
    }

    /// Adds a token's feature when its family is on; `name` (its bytes)
    /// is only made in debug mode. Returns the token hash (for pairs).
    #[inline(always)]
    fn add<'b>(&mut self, fam: Fam, h: u64, name: impl FnOnce() -> Cow<'b, [u8]>) -> u64 {
        if !self.on(fam) {
            return h;
        }
        let f = self.push(fam, h);
        if self.debug.is_some() {
            self.name(fam, h, f, &name());
        }
        h
    }

    /// Records a feature's readable name (debug mode only).
    #[cold]
    #[inline(never)]
    fn name(&mut self, fam: Fam, h: u64, f: u32, bytes: &[u8]) {
        if let Some(d) = &mut self.debug {
            d.entry(h).or_insert_with(|| {
                (
                    f,
                    format!("{}{}", fam.prefix(), String::from_utf8_lossy(bytes)),
                )
            });
        }
    }

    fn tok_str(&mut self, fam: Fam, s: &str) -> u64 {
        self.tok(fam, s.as_bytes())
    }

    /// A token given as parts joined by `:` (lower-cased ASCII).
    fn tok_lower(&mut self, fam: Fam, s: &str, buf: &mut Vec<u8>) -> u64 {
        buf.clear();
        buf.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
        let b = std::mem::take(buf);
        let h = self.tok(fam, &b);
        *buf = b;
        h
    }

    #[inline(always)]
    fn pair(&mut self, fam: Fam, a: u64, b: u64) {
        if !self.on(fam) {
            return;
        }
        let h = hash_pair(fam as u64, a, b);
        let f = self.push(fam, h);
        if let Some(d) = &mut self.debug {
            let name = format!(
                "{}{} {}",
                fam.prefix(),
                d.get(&a).map_or("?", |s| strip_prefix(&s.1)),
                d.get(&b).map_or("?", |s| strip_prefix(&s.1))
            );
            d.entry(h).or_insert((f, name));
        }
    }
}

fn strip_prefix(s: &str) -> &str {
    match s.find(':') {
        Some(i) if i < 6 && s[..i].bytes().all(|b| b.is_ascii_lowercase()) => &s[i + 1..],
        _ => s,
    }
}

/// Extracts the features of a message, decoding its text parts itself.
pub fn extract(message: &Message<'_>) -> Features {
    let text = text_parts(message);
    extract_with_text(message, &text, None)
}

/// Extracts the features of a message whose decoded text parts (HTML
/// reduced to text, as `mxguard_scan::Task::text_parts` returns them) are
/// already at hand, so the scanner does not decode twice.
/// `envelope_sender` (MAIL FROM, without `<>`) stands in for the
/// Return-Path a message in transit does not have yet.
pub fn extract_with_text(
    message: &Message<'_>,
    text: &[Cow<'_, str>],
    envelope_sender: Option<&str>,
) -> Features {
    extract_from(message, text, Options::default(), envelope_sender, &[])
}

/// [`extract_with_text`] with the message's Received fields already
/// parsed: `hops` are its top-level Received fields, in order, each
/// [`Hop::parse`]d (as `mxguard_message::Mail::received` keeps them), so
/// a scan does not parse them twice. Fields past `hops` are parsed here;
/// the features are the same as [`extract_with_text`]'s.
pub fn extract_with_hops(
    message: &Message<'_>,
    text: &[Cow<'_, str>],
    envelope_sender: Option<&str>,
    hops: &[Hop<'_>],
) -> Features {
    extract_from(message, text, Options::default(), envelope_sender, hops)
}

#[doc(hidden)]
pub fn extract_opts(message: &Message<'_>, text: &[Cow<'_, str>], opts: Options) -> Features {
    extract_from(message, text, opts, None, &[])
}

fn extract_from(
    message: &Message<'_>,
    text: &[Cow<'_, str>],
    opts: Options,
    envelope_sender: Option<&str>,
    hops: &[Hop<'_>],
) -> Features {
    let mut sink = Sink::new(opts, false);
    sink.ctx.envelope_sender = envelope_sender.map(|s| truncate(s, 320).to_string());
    run(message, text, hops, &mut sink);
    let mut v = sink.hashes;
    sort_features(&mut v);
    v.dedup();
    Features(v)
}

/// Sorts feature ids: a least-significant-digit radix sort, a byte per
/// pass, for the hundreds of ids a message has (a third of the time of a
/// comparison sort there); a comparison sort for few.
fn sort_features(v: &mut Vec<u32>) {
    if v.len() < 128 {
        v.sort_unstable();
        return;
    }
    // Per byte value, the count of each pass's byte (the four passes side
    // by side, so the prefix sums below are one vector add a byte value).
    let mut at = [[0u32; 4]; 256];
    for &x in v.iter() {
        for pass in 0..4 {
            at[(x >> (8 * pass)) as usize & 0xff][pass] += 1;
        }
    }
    // The counts become where each byte value's ids start; a byte that is
    // the same in every id orders nothing, and its pass is skipped.
    let n = v.len() as u32;
    let mut sum = [0u32; 4];
    let mut same = [false; 4];
    for slot in at.iter_mut() {
        let counts = std::mem::replace(slot, sum);
        for ((s, same), c) in sum.iter_mut().zip(same.iter_mut()).zip(counts) {
            *same |= c == n;
            *s += c;
        }
    }
    let mut from = std::mem::take(v);
    let mut to = vec![0u32; from.len()];
    for pass in (0..4).filter(|&p| !same[p]) {
        for &x in &from {
            let slot = &mut at[(x >> (8 * pass)) as usize & 0xff][pass];
            to[*slot as usize] = x;
            *slot += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    *v = from;
}

/// The readable names of a message's features (sorted), for tests and for
/// explaining a verdict. Slow; never on the scan path.
pub fn explain(message: &Message<'_>) -> Vec<String> {
    let mut v: Vec<String> = explain_hashes(message)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Each feature's hash with its readable name.
pub fn explain_hashes(message: &Message<'_>) -> Vec<(u32, String)> {
    let text = text_parts(message);
    let mut sink = Sink::new(Options::default(), true);
    run(message, &text, &[], &mut sink);
    let mut v: Vec<(u32, String)> = sink.debug.unwrap_or_default().into_values().collect();
    v.sort();
    v.dedup_by_key(|x| x.0);
    v
}

fn run(m: &Message<'_>, text: &[Cow<'_, str>], hops: &[Hop<'_>], sink: &mut Sink) {
    if m.parts.is_empty() {
        // Not a message (mail-parser's default): no features.
        return;
    }
    let mut buf = Vec::with_capacity(64);
    headers(m, sink, &mut buf);
    received(m, hops, sink, &mut buf);
    mime(m, sink, &mut buf);

    // Body text.
    let mut budget = MAX_TEXT_BYTES;
    let mut words = Words::new();
    let mut urls = 0usize;
    let mut total = 0usize;
    // Which text parts were HTML: their URLs are taken from the HTML source.
    let from_html: Vec<bool> = m
        .text_body
        .iter()
        .filter_map(|&id| match m.parts.get(id as usize).map(|p| &p.body) {
            Some(PartType::Html(_)) => Some(true),
            Some(PartType::Text(_)) => Some(false),
            _ => None,
        })
        .collect();
    for (i, t) in text.iter().enumerate() {
        if budget == 0 {
            break;
        }
        let t = truncate(t, budget);
        budget -= t.len();
        total += t.len();
        words.run(t, Fam::Body, Fam::BodyPair, sink);
        if sink.opts.char_ngrams > 0 {
            char_ngrams(t, sink.opts.char_ngrams, sink);
        }
        if !from_html.get(i).copied().unwrap_or(false) {
            urls += text_urls(t, sink, &mut buf, MAX_URLS.saturating_sub(urls));
        }
    }
    // HTML: tag names and the URLs of attributes.
    let mut html_parts = 0;
    for part in &m.parts {
        if let PartType::Html(h) = &part.body {
            html_parts += 1;
            let h = truncate(h, MAX_HTML_BYTES);
            urls += html(h, sink, &mut buf, MAX_URLS.saturating_sub(urls));
        }
    }
    let size = match total {
        0 => "text:none",
        1..=200 => "text:tiny",
        201..=1000 => "text:small",
        1001..=5000 => "text:medium",
        _ => "text:large",
    };
    sink.tok_str(Fam::Shape, size);
    if urls > 0 && sink.ctx.from_domain.is_some() {
        sink.tok_str(
            Fam::Shape,
            match (sink.ctx.url_from > 0, sink.ctx.url_other > 0) {
                (true, false) => "urls:all_from_domain",
                (true, true) => "urls:some_from_domain",
                _ => "urls:none_from_domain",
            },
        );
    }
    let u = match urls {
        0 => "urls:0",
        1 => "urls:1",
        2..=4 => "urls:few",
        _ => "urls:many",
    };
    sink.tok_str(Fam::Shape, u);
    if html_parts > 0
        && m.text_body.iter().all(|&id| {
            m.parts
                .get(id as usize)
                .is_some_and(|p| matches!(p.body, PartType::Html(_)))
        })
    {
        sink.tok_str(Fam::Shape, "html_only");
    }
}

fn char_ngrams(t: &str, n: usize, sink: &mut Sink) {
    let mut norm: Vec<u8> = Vec::with_capacity(t.len());
    let mut space = true;
    for &b in t.as_bytes() {
        if b.is_ascii_whitespace() {
            if !space {
                norm.push(b' ');
            }
            space = true;
        } else {
            norm.push(b.to_ascii_lowercase());
            space = false;
        }
    }
    for w in norm.windows(n) {
        let h = hash_bytes(Fam::CharGram as u64, w);
        sink.push(Fam::CharGram, h);
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// [`truncate`] for UTF-8 held in a byte vector: cut to at most `max`
/// bytes, at a character boundary.
fn truncate_bytes(b: &mut Vec<u8>, max: usize) {
    if b.len() > max {
        let mut end = max;
        while end > 0 && (b[end] & 0xc0) == 0x80 {
            end -= 1;
        }
        b.truncate(end);
    }
}

/// Header fields added on the receiving side or by a filter: never features.
/// `name` is lower-case. A `match` (by length, then bytes) rather than a
/// list search: this runs for every header of every message.
fn ignored_header(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "x-amavis",
        "x-mozilla-",
        "x-imap",
        "x-evolution",
        "arc-",
        "x-ms-exchange-organization-",
        "x-ms-exchange-transport-",
        "x-forefront-",
        "x-microsoft-antispam",
        "x-barracuda",
        "x-asg-",
        "x-ironport",
        "x-proofpoint",
        "x-greylist",
        "x-quarantine",
        "x-policyd",
        "x-dspam",
        "x-bogosity",
        "x-crm114",
        "x-rspamd",
        "x-razor",
        "x-dcc",
        "x-bayes",
        "x-miltered",
        "x-scanned",
        "x-scanner",
        "x-virus",
    ];
    if matches!(
        name,
        "received"
            | "received-spf"
            | "authentication-results"
            | "arc-authentication-results"
            | "authentication-results-original"
            | "return-path"
            | "delivered-to"
            | "x-original-to"
            | "envelope-to"
            | "x-envelope-to"
            | "x-envelope-from"
            | "x-rcpt-to"
            | "delivery-date"
            | "x-delivery-date"
            | "content-length"
            | "lines"
            | "status"
            | "x-status"
            | "x-uid"
            | "x-uidl"
            | "x-keywords"
            | "x-label"
            | "x-received"
            | "x-gmail-received"
            | "x-original-arrival-time"
            | "x-originalarrivaltime"
            | "x-sid-result"
            | "x-sid-pra"
            | "x-sieve"
            | "x-fetchmail-warning"
            | "x-filter-id"
            | "x-ms-has-attach"
    ) || has_verdict_word(name.as_bytes())
    {
        return true;
    }
    // Every prefix starts with `x-` or `arc-`: most names need no search.
    (name.starts_with("x-") || name.starts_with("arc-"))
        && PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether a lower-case name contains `spam`, `virus` or `junk`: one pass,
/// looking further only at an `s`, `v` or `j`.
#[inline]
fn has_verdict_word(name: &[u8]) -> bool {
    (0..name.len()).any(|i| match name[i] {
        b's' => name[i..].starts_with(b"spam"),
        b'v' => name[i..].starts_with(b"virus"),
        b'j' => name[i..].starts_with(b"junk"),
        _ => false,
    })
}

/// `hay.contains(needle)` for the short names and needles here, without
/// the general substring searcher's set-up cost (this runs per header).
#[inline]
fn has_sub(hay: &str, needle: &[u8]) -> bool {
    hay.as_bytes().windows(needle.len()).any(|w| w == needle)
}

/// `name` lower-cased into `out`, or false when it is not a usable field
/// name (empty, longer than 64 bytes, or containing white space). One pass
/// over the bytes for the ASCII names nearly all are.
#[inline]
fn lower_name(name: &str, out: &mut String) -> bool {
    if name.is_empty() || name.len() > 64 {
        return false;
    }
    out.clear();
    if name.is_ascii() {
        // `char::is_whitespace` for ASCII: space and \t \n \x0b \x0c \r.
        if name.bytes().any(|b| matches!(b, b' ' | b'\t'..=b'\r')) {
            return false;
        }
    } else if name.contains(char::is_whitespace) {
        return false;
    }
    out.push_str(name);
    out.make_ascii_lowercase();
    true
}

fn headers(m: &Message<'_>, sink: &mut Sink, buf: &mut Vec<u8>) {
    let mut lname = String::with_capacity(32);
    let mut from_domain: Option<String> = None;
    let mut rcpts = 0usize;
    let mut reply_to: Option<String> = None;
    for h in m.headers() {
        if !lower_name(h.name(), &mut lname) || ignored_header(&lname) {
            continue;
        }
        sink.tok_str(Fam::HeaderName, &lname);
        match &h.name {
            HeaderName::Subject => {
                if let Some(s) = h.value.as_text() {
                    let mut w = Words::new();
                    w.run(truncate(s, 1000), Fam::Subject, Fam::SubjectPair, sink);
                    if s.is_empty() {
                        sink.tok_str(Fam::Shape, "subject:empty");
                    }
                    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
                    if letters >= 8 && !s.chars().any(|c| c.is_lowercase()) {
                        sink.tok_str(Fam::Shape, "subject:caps");
                    }
                }
            }
            HeaderName::From => {
                if let HeaderValue::Address(a) = &h.value
                    && let Some(addr) = a.first()
                {
                    if let Some(n) = addr.name() {
                        let mut w = Words::new();
                        w.run(truncate(n, 200), Fam::FromName, Fam::FromName, sink);
                        sink.tok_str(Fam::Shape, name_shape(n, addr.address().unwrap_or("")));
                    } else {
                        sink.tok_str(Fam::Shape, "from:noname");
                    }
                    if let Some(ad) = addr.address() {
                        let ad = truncate(ad, 200);
                        sink.tok_lower(Fam::FromAddr, ad, buf);
                        if let Some((local, dom)) = ad.rsplit_once('@') {
                            sink.tok_lower(Fam::FromDomain, dom, buf);
                            let reg = registrable(dom);
                            if reg.len() != dom.len() {
                                sink.tok_lower(Fam::FromDomain, reg, buf);
                            }
                            from_domain = Some(reg.to_ascii_lowercase());
                            sink.ctx.from_domain = from_domain.clone();
                            let digits = local.bytes().filter(u8::is_ascii_digit).count();
                            sink.tok_str(
                                Fam::Shape,
                                match digits {
                                    0 => "from_local_digits:0",
                                    1..=2 => "from_local_digits:few",
                                    _ => "from_local_digits:many",
                                },
                            );
                        }
                    }
                }
            }
            HeaderName::ReplyTo => {
                if let HeaderValue::Address(a) = &h.value
                    && let Some(dom) = a
                        .first()
                        .and_then(|x| x.address())
                        .and_then(|x| x.rsplit_once('@'))
                {
                    sink.tok_lower(Fam::ReplyTo, registrable(dom.1), buf);
                    reply_to = Some(registrable(dom.1).to_ascii_lowercase());
                }
            }
            HeaderName::To | HeaderName::Cc => {
                if let HeaderValue::Address(a) = &h.value {
                    rcpts += a.iter().count();
                    if a.iter().any(|x| {
                        x.name().is_some_and(undisclosed) || x.address().is_some_and(undisclosed)
                    }) {
                        sink.tok_str(Fam::Shape, "to:undisclosed");
                    }
                }
            }
            HeaderName::MessageId => {
                if let Some(id) = h.value.as_text() {
                    match id.rsplit_once('@') {
                        Some((local, dom)) => {
                            // The shape of the id's local part tells the
                            // software that made it (MUAs and bulk mailers
                            // differ, spamware has its own).
                            buf.clear();
                            buf.extend_from_slice(b"msgid_local:");
                            shape(local.trim_start_matches('<'), buf);
                            sink.tok(Fam::Shape, buf);
                            let dom = dom.trim_end_matches('>');
                            let reg = registrable(dom);
                            sink.tok_lower(Fam::MessageId, reg, buf);
                            if sink
                                .ctx
                                .from_domain
                                .as_deref()
                                .is_some_and(|f| reg.eq_ignore_ascii_case(f))
                            {
                                sink.tok_str(Fam::Shape, "msgid:from_domain");
                            }
                        }
                        None => {
                            sink.tok_str(Fam::Shape, "msgid:noat");
                        }
                    }
                }
            }
            HeaderName::ContentType => {
                // Its punctuation (quotes, spacing, boundary style) is
                // another fingerprint of the generating software. Line
                // breaks and tabs are left out: they change with storage
                // (LF files, CRLF from the milter) and folding.
                if let Some(v) = raw_value(m, h) {
                    let punct: String = v
                        .trim()
                        .chars()
                        .filter(|c| !c.is_ascii_alphanumeric() && !matches!(c, '\r' | '\n' | '\t'))
                        .take(16)
                        .collect();
                    sink.tok_str(Fam::Shape, &format!("ct_punct:{punct}"));
                }
            }
            HeaderName::ListId => {
                if let Some(v) = h.value.as_text() {
                    let id = v
                        .rsplit_once('<')
                        .map_or(v, |(_, r)| r.trim_end_matches('>'));
                    sink.tok_lower(Fam::ListId, truncate(id, 100), buf);
                }
            }
            HeaderName::Other(_) => match lname.as_str() {
                "x-mailer" | "user-agent" | "x-newsreader" => {
                    if let Some(v) = h.value.as_text() {
                        let mut w = Words::new();
                        w.run(truncate(v, 200), Fam::Mailer, Fam::Mailer, sink);
                    }
                }
                "dkim-signature" => {
                    if let Some(d) = raw_value(m, h).and_then(|v| tag_value(v, "d")) {
                        sink.tok_lower(Fam::Dkim, d, buf);
                        if sink
                            .ctx
                            .from_domain
                            .as_deref()
                            .is_some_and(|f| registrable(d).eq_ignore_ascii_case(f))
                        {
                            sink.tok_str(Fam::Shape, "dkim:from_domain");
                        }
                    }
                }
                _ => header_value(&lname, raw_value(m, h), sink, buf),
            },
            HeaderName::Sender
            | HeaderName::Organization
            | HeaderName::Comments
            | HeaderName::Keywords
            | HeaderName::ContentDisposition
            | HeaderName::ContentLanguage
            | HeaderName::ListUnsubscribe
            | HeaderName::ListPost
            | HeaderName::ListHelp
            | HeaderName::ListSubscribe
            | HeaderName::ListOwner
            | HeaderName::ListArchive
            | HeaderName::ResentFrom
            | HeaderName::ResentSender => header_value(&lname, raw_value(m, h), sink, buf),
            _ => {}
        }
    }
    // Return-Path is added on delivery, but its value is the envelope
    // sender the client gave: that domain is about the message. Without
    // one, the envelope sender the caller gave, else (mail-parser's
    // fallback) the From address.
    let envelope = sink.ctx.envelope_sender.take();
    let has_return_path = m
        .root_part()
        .headers
        .iter()
        .any(|h| h.name == HeaderName::ReturnPath);
    let sender = match envelope.as_deref() {
        Some(e) if !has_return_path => Some(e),
        _ => m.return_address(),
    };
    if let Some(rp) = sender
        && let Some((local, dom)) = rp.rsplit_once('@')
    {
        // The envelope sender's shape: list and bulk software bounce to
        // role or VERP addresses, people send from their own.
        const BOUNCE: &[&str] = &["bounce", "return", "owner", "errors"];
        let l = local.to_ascii_lowercase();
        let kind = if BOUNCE.iter().any(|b| l.contains(b)) {
            "rp_local:bounce"
        } else if l.bytes().filter(u8::is_ascii_digit).count() >= 6 || l.len() > 30 {
            "rp_local:verp"
        } else {
            "rp_local:plain"
        };
        sink.tok_str(Fam::Shape, kind);
        let reg = registrable(dom).to_ascii_lowercase();
        sink.tok_lower(Fam::ReturnPath, &reg, buf);
        if from_domain.as_deref() == Some(reg.as_str()) {
            sink.tok_str(Fam::Shape, "return_path:from_domain");
        }
    }
    if let Some(rt) = &reply_to {
        sink.tok_str(
            Fam::Shape,
            if from_domain.as_ref() == Some(rt) {
                "reply_to:from_domain"
            } else {
                "reply_to:other_domain"
            },
        );
    }
    sink.tok_str(
        Fam::Shape,
        match rcpts {
            0 => "rcpts:0",
            1 => "rcpts:1",
            2..=5 => "rcpts:few",
            _ => "rcpts:many",
        },
    );
}

/// How the From display name relates to the address: an address in the
/// name (`"support@bank.example" <x@elsewhere>`), a name none of whose
/// words is in the address (a brand borrowed by a stranger), or related.
fn name_shape(name: &str, address: &str) -> &'static str {
    if name.contains('@') {
        return "from:name_has_address";
    }
    let address = address.to_ascii_lowercase();
    let mut words = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .peekable();
    if words.peek().is_none() {
        return "from:name_short";
    }
    let (local, domain) = address.rsplit_once('@').unwrap_or((&address, ""));
    let (mut in_local, mut in_domain) = (false, false);
    for w in words {
        let w = w.to_lowercase();
        in_local |= local.contains(&w);
        in_domain |= domain.contains(&w);
    }
    match (in_local, in_domain) {
        (_, true) => "from:name_in_domain",
        (true, false) => "from:name_in_local",
        _ => "from:name_not_in_address",
    }
}

/// Whether `s` contains `undisclosed` in any ASCII case (no lower-cased copy).
fn undisclosed(s: &str) -> bool {
    s.as_bytes()
        .windows(11)
        .any(|w| w.eq_ignore_ascii_case(b"undisclosed"))
}

/// Words of another header field's value, as `name:word` (at most 8,
/// letters only: numbers in headers are ids and dates that describe a
/// corpus). Fields whose values are dates or unique ids are skipped.
fn header_value(lname: &str, raw: Option<&str>, sink: &mut Sink, buf: &mut Vec<u8>) {
    if !sink.on(Fam::HeaderValue)
        || has_sub(lname, b"date")
        || lname.ends_with("-id")
        || matches!(
            lname,
            "references" | "in-reply-to" | "mime-version" | "thread-index" | "x-ymail-osg"
        )
    {
        return;
    }
    let Some(raw) = raw else { return };
    let raw = truncate(raw, 160);
    if raw.is_ascii() {
        return ascii_header_value(lname, raw, sink, buf);
    }
    let mut n = 0;
    for word in raw.split(|c: char| !c.is_alphanumeric()) {
        if word.len() < 2 || word.len() > 24 || !word.chars().all(char::is_alphabetic) {
            continue;
        }
        buf.clear();
        buf.extend_from_slice(lname.as_bytes());
        buf.push(b':');
        for c in word.chars().flat_map(char::to_lowercase) {
            let mut t = [0u8; 4];
            buf.extend_from_slice(c.encode_utf8(&mut t).as_bytes());
        }
        let b = std::mem::take(buf);
        sink.tok(Fam::HeaderValue, &b);
        *buf = b;
        n += 1;
        if n == 8 {
            break;
        }
    }
}

/// [`header_value`] for an ASCII value (nearly all): the same words, in
/// one pass over the bytes; the `name:` prefix is written once.
fn ascii_header_value(lname: &str, raw: &str, sink: &mut Sink, buf: &mut Vec<u8>) {
    let b = raw.as_bytes();
    buf.clear();
    buf.extend_from_slice(lname.as_bytes());
    buf.push(b':');
    let prefix = buf.len();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        if ASCII_CLASS[b[i] as usize] == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = false;
        while let Some(&c) = b.get(i) {
            let class = ASCII_CLASS[c as usize];
            if class == 0 {
                break;
            }
            digits |= class == DIGIT;
            i += 1;
        }
        let word = &b[start..i];
        if word.len() < 2 || word.len() > 24 || digits {
            continue;
        }
        buf.truncate(prefix);
        buf.extend(word.iter().map(u8::to_ascii_lowercase));
        sink.tok(Fam::HeaderValue, buf);
        n += 1;
        if n == 8 {
            break;
        }
    }
}

fn raw_value<'a>(m: &'a Message<'_>, h: &mail_parser::Header<'_>) -> Option<&'a str> {
    let raw = m.raw_message();
    raw.get(h.offset_start as usize..h.offset_end as usize)
        .and_then(|b| std::str::from_utf8(b).ok())
}

/// `tag=value` from a DKIM-Signature-like tag list.
fn tag_value<'a>(v: &'a str, tag: &str) -> Option<&'a str> {
    v.split(';').find_map(|kv| {
        let (k, val) = kv.split_once('=')?;
        (k.trim() == tag).then(|| val.trim())
    })
}

/// The registrable part of a host name, approximately: the last two labels,
/// or three under a two-letter country code whose second level is a generic
/// short label (`example.co.uk`, `example.com.au`).
///
/// Byte searches rather than `str` pattern searchers: this runs several
/// times per Received hop, URL and address.
///
/// Not `mxguard_message::domain::organisational` (the public suffix list):
/// its output is hashed into features, so changing it changes what every
/// learned model means. Moving to the list is a tokenizer version change
/// (`model::TOKENIZER_VERSION`) and a relearn, measured before it is taken.
pub(crate) fn registrable(host: &str) -> &str {
    let mut end = host.len();
    while end > 0 && host.as_bytes()[end - 1] == b'.' {
        end -= 1;
    }
    let host = &host[..end];
    let b = host.as_bytes();
    let Some(last) = memchr::memrchr(b'.', b) else {
        return host;
    };
    let Some(second) = memchr::memrchr(b'.', &b[..last]) else {
        return host;
    };
    let tld = &host[last + 1..];
    let sld = &host[second + 1..last];
    if tld.len() == 2
        && (sld.len() <= 3 || matches!(sld, "gov" | "ac" | "co" | "com" | "net" | "org" | "ne"))
    {
        return match memchr::memrchr(b'.', &b[..second]) {
            Some(third) => &host[third + 1..],
            None => host,
        };
    }
    &host[second + 1..]
}

/// Received: the receiving site's own hops are skipped; the hop that handed
/// the message to the site, and the hops before it, give features.
///
/// Walking from the top (newest) down, a hop is the site's own while its
/// client is a loopback or private address, has no `from` at all (internal
/// hand-offs such as `by 10.1.2.3 with SMTP`), is a mailbox fetch (POP3/IMAP,
/// e.g. fetchmail), or shares a registrable domain with a host the site has
/// already shown as its own. The first other hop is the hand-over: its client
/// host words, domain and /16 network are features; earlier hops give only
/// their client domains. The `by` hosts are never features.
///
/// The fields are read raw with [`Hop::parse`]: [`mxguard_message::parse()`] leaves
/// them unparsed (mail-parser's full Received parser cost more than any
/// other header).
/// `parsed`: the first Received fields already parsed (may be empty).
fn received(m: &Message<'_>, parsed: &[Hop<'_>], sink: &mut Sink, buf: &mut Vec<u8>) {
    // The site's registrable domains, as borrowed slices compared without
    // regard to ASCII case (at most two per hop, 20 hops): no allocation.
    let mut site = Site {
        names: [""; 40],
        len: 0,
    };
    let mut handed_over = false;
    let mut hops = 0;
    let raw = m.raw_message();
    let fields = m
        .root_part()
        .headers
        .iter()
        .filter(|h| h.name == HeaderName::Received);
    for (i, h) in fields.enumerate() {
        let parsed_here;
        let r = match parsed.get(i) {
            Some(r) => r,
            None => {
                let value = raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .unwrap_or_default();
                parsed_here = Hop::parse(value);
                &parsed_here
            }
        };
        if r.is_empty() {
            continue;
        }
        hops += 1;
        if hops > 20 {
            break;
        }
        if !handed_over && let Some(by) = r.by.and_then(Host::name) {
            site.add(registrable(by));
        }
        let from_name = r
            .from_iprev
            .or_else(|| r.from.and_then(Host::name))
            .or_else(|| r.helo.and_then(Host::name));
        let ip = r.from_ip.or(match r.from {
            Some(Host::Ip(ip)) => Some(ip),
            _ => None,
        });
        let reg = from_name.map(registrable);
        if !handed_over {
            let fetch = r.fetch;
            let private = ip.is_some_and(is_private);
            let own = from_name.is_some_and(|n| n.eq_ignore_ascii_case("localhost"))
                || reg.is_some_and(|r| site.contains(r));
            if from_name.is_none() && ip.is_none() || fetch || private || own {
                if let Some(reg) = reg
                    && (fetch || private)
                {
                    site.add(reg);
                }
                continue;
            }
            handed_over = true;
            // The relay that handed the message over.
            match (from_name, reg) {
                (Some(n), Some(reg)) if n.contains('.') => {
                    sink.tok_lower(Fam::Received, reg, buf);
                    if sink
                        .ctx
                        .from_domain
                        .as_deref()
                        .is_some_and(|f| reg.eq_ignore_ascii_case(f))
                    {
                        sink.tok_str(Fam::Shape, "relay:from_domain");
                    }
                    let mut w = Words::new();
                    w.run(truncate(n, 200), Fam::Received, Fam::Received, sink);
                }
                _ => {
                    sink.tok_str(Fam::Shape, "relay:no_rdns");
                }
            }
            if let Some(std::net::IpAddr::V4(v4)) = ip {
                let o = v4.octets();
                buf.clear();
                write_u8(buf, o[0]);
                buf.push(b'.');
                write_u8(buf, o[1]);
                sink.tok(Fam::Received, buf);
            }
        } else if let (Some(n), Some(reg)) = (from_name, reg)
            && n.contains('.')
        {
            sink.tok_lower(Fam::Received, reg, buf);
        }
    }
    if !handed_over {
        sink.tok_str(Fam::Shape, "relay:none");
    }
}

/// The receiving site's registrable domains seen so far ([`received`]).
struct Site<'a> {
    names: [&'a str; 40],
    len: usize,
}

impl<'a> Site<'a> {
    fn contains(&self, reg: &str) -> bool {
        self.names[..self.len]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(reg))
    }

    fn add(&mut self, reg: &'a str) {
        if self.len < self.names.len() && !self.contains(reg) {
            self.names[self.len] = reg;
            self.len += 1;
        }
    }
}

/// Appends a byte's decimal digits.
fn write_u8(buf: &mut Vec<u8>, n: u8) {
    if n >= 100 {
        buf.push(b'0' + n / 100);
    }
    if n >= 10 {
        buf.push(b'0' + n / 10 % 10);
    }
    buf.push(b'0' + n % 10);
}

fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v) => {
            v.is_private() || v.is_loopback() || v.is_link_local() || v.is_unspecified()
        }
        std::net::IpAddr::V6(v) => {
            v.is_loopback() || v.is_unspecified() || (v.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

fn mime(m: &Message<'_>, sink: &mut Sink, buf: &mut Vec<u8>) {
    for (i, part) in m.parts.iter().enumerate().take(64) {
        if let Some(ct) = part.content_type() {
            buf.clear();
            buf.extend_from_slice(ct.ctype().as_bytes());
            buf.push(b'/');
            buf.extend_from_slice(ct.subtype().unwrap_or("").as_bytes());
            truncate_bytes(buf, 80);
            buf.make_ascii_lowercase();
            sink.tok(Fam::ContentType, buf);
            if let Some(cs) = ct.attribute("charset") {
                sink.tok_lower(Fam::Charset, truncate(cs, 40), buf);
            }
            if i == 0
                && let Some(b) = ct.attribute("boundary")
            {
                buf.clear();
                buf.extend_from_slice(b"boundary:");
                shape(b, buf);
                sink.tok(Fam::Shape, buf);
            }
        } else if i == 0 {
            sink.tok_str(Fam::ContentType, "none");
        }
        if let Some(cte) = part.content_transfer_encoding() {
            sink.tok_lower(Fam::Encoding, truncate(cte, 40), buf);
        }
        if let Some(name) = part.attachment_name() {
            let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
            sink.tok_lower(Fam::Attachment, truncate(ext, 10), buf);
        }
    }
    // Charsets of encoded words in the Subject.
    if let Some(h) = m
        .root_part()
        .headers
        .iter()
        .find(|h| h.name == HeaderName::Subject)
        && let Some(raw) = raw_value(m, h)
    {
        for piece in raw.split("=?").skip(1).take(4) {
            if let Some((cs, _)) = piece.split_once('?') {
                buf.clear();
                buf.extend_from_slice(b"subject:");
                buf.extend_from_slice(truncate(cs, 40).as_bytes());
                buf.make_ascii_lowercase();
                sink.tok(Fam::Charset, buf);
            }
        }
    }
}

/// A MIME boundary's shape: letters → a, digits → 9, runs collapsed,
/// so `----=_NextPart_000_0012_01C2...` and generator-specific patterns
/// stand out without every random boundary being its own feature.
/// Appended to `out`.
fn shape(s: &str, out: &mut Vec<u8>) {
    let start = out.len();
    let mut last = ' ';
    for c in s.chars().take(60) {
        let k = if c.is_ascii_digit() {
            '9'
        } else if c.is_ascii_alphabetic() {
            'a'
        } else {
            c
        };
        if k != last || !(k == '9' || k == 'a') {
            out.extend_from_slice(k.encode_utf8(&mut [0; 4]).as_bytes());
        }
        last = k;
        if out.len() - start >= 24 {
            break;
        }
    }
}

/// Scripts written without spaces between words: character bigrams.
#[inline]
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified
        | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x2FFFF)
}

/// What a finished word becomes, from its letter and digit counts and its
/// kept length in bytes: `None` nothing (shorter than two characters),
/// `Some(Some(shape))` a shape token, `Some(None)` the word itself.
#[inline]
fn word_kind(letters: usize, digits: usize, len: usize) -> Option<Option<[u8; 2]>> {
    if letters + digits < 2 {
        None
    } else if letters == 0 && digits > 4 {
        // Long numbers: phone numbers, ids, dates. Their length only.
        Some(Some([b'#', b'0' + digits.min(9) as u8]))
    } else if len > MAX_TOKEN {
        Some(Some([b'~', b'0' + (len / 16).min(9) as u8]))
    } else {
        Some(None)
    }
}

const LETTER: u8 = 1;
const DIGIT: u8 = 2;
/// ASCII letters and digits (0 for everything else, non-ASCII included).
static ASCII_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        if c.is_ascii_digit() {
            t[i] = DIGIT;
        } else if c.is_ascii_alphabetic() {
            t[i] = LETTER;
        }
        i += 1;
    }
    t
};

/// Byte classes of 64 bytes of text as bit masks (bit k: byte
/// `start + k`), so that the tokeniser finds where a word or a gap ends
/// with one count of trailing ones instead of a branch per byte.
struct Window {
    start: usize,
    /// ASCII letters and digits.
    alnum: u64,
    digit: u64,
    /// ASCII bytes that end a word and give no token: all but letters,
    /// digits and `!`, `$`, `%` (past the end of the text too).
    plain: u64,
}

impl Window {
    fn at(bytes: &[u8], start: usize) -> Window {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        // Bytes in lo..=hi, for bytes below 0x80 (no carries between
        // bytes): their high bit set.
        let in_range = |x: u64, lo: u8, hi: u8| {
            (x.wrapping_add(ONES * u64::from(0x80 - lo))
                & !x.wrapping_add(ONES * u64::from(0x7f - hi)))
                & HIGH
        };
        // The high bit of each byte, gathered into 8 bits.
        let gather = |m: u64| ((m >> 7) & ONES).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        let mut block = [0u8; 64];
        let tail = bytes.get(start..).unwrap_or_default();
        let n = tail.len().min(64);
        block[..n].copy_from_slice(&tail[..n]);
        let (mut alnum, mut digit, mut plain) = (0u64, 0u64, 0u64);
        for (k, chunk) in block.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let high = w & HIGH;
            let x = w & !HIGH;
            let d = in_range(x, b'0', b'9');
            let l = in_range(x | (ONES * 0x20), b'a', b'z');
            let sym = in_range(x, b'!', b'!') | in_range(x, b'$', b'%');
            let ascii = !high & HIGH;
            let a = (d | l) & ascii;
            alnum |= gather(a) << (8 * k);
            digit |= gather(d & ascii) << (8 * k);
            plain |= gather(ascii & !a & !(sym & ascii)) << (8 * k);
        }
        Window {
            start,
            alnum,
            digit,
            plain,
        }
    }

    /// Moves the window to `i` when `i` is past it.
    #[inline]
    fn cover(&mut self, bytes: &[u8], i: usize) {
        if i >= self.start + 64 {
            *self = Window::at(bytes, i);
        }
    }

    /// The run of bytes of `class` from `i` within the window (and the
    /// text): its length, and how many of them are digits.
    #[inline]
    fn run(&self, i: usize, class: u64, len: usize) -> (usize, usize) {
        let off = i - self.start;
        let n = ((!(class >> off)).trailing_zeros() as usize)
            .min(64 - off)
            .min(len - i);
        let mask = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        (n, ((self.digit >> off) & mask).count_ones() as usize)
    }

    /// Whether a run stopped only because the window ended (so it may go
    /// on in the next one).
    #[inline]
    fn ran_out(&self, i: usize, len: usize) -> bool {
        i == self.start + 64 && i < len
    }
}

/// The word tokeniser: reusable state for one text stream.
struct Words {
    cur: Vec<u8>,
    letters: usize,
    digits: usize,
    non_ascii: bool,
    prev: Option<u64>,
    prev_unspaced: Option<char>,
    run_len: usize,
}

impl Words {
    fn new() -> Words {
        Words {
            cur: Vec::with_capacity(64),
            letters: 0,
            digits: 0,
            non_ascii: false,
            prev: None,
            prev_unspaced: None,
            run_len: 0,
        }
    }

    fn run(&mut self, text: &str, fam: Fam, pair: Fam, sink: &mut Sink) {
        self.prev = None;
        let bytes = text.as_bytes();
        let mut win = Window::at(bytes, 0);
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if ASCII_CLASS[b as usize] != 0 {
                    // A run of ASCII letters and digits, taken at once.
                    if self.prev_unspaced.is_some() {
                        self.end_unspaced(fam, sink);
                    }
                    let start = i;
                    let mut digits = 0;
                    loop {
                        win.cover(bytes, i);
                        let (n, d) = win.run(i, win.alnum, bytes.len());
                        digits += d;
                        i += n;
                        if !win.ran_out(i, bytes.len()) {
                            break;
                        }
                    }
                    let run = &bytes[start..i];
                    if self.cur.is_empty() && bytes.get(i).is_none_or(|&c| c < 0x80) {
                        // The whole word (ASCII punctuation or the end
                        // follows): emitted without copying it into `cur`.
                        self.ascii_word(run, digits, fam, pair, sink);
                    } else {
                        // Continues with non-ASCII letters: accumulate, as
                        // byte by byte (bytes past the 64-byte cap are
                        // counted, not kept).
                        self.digits += digits;
                        self.letters += run.len() - digits;
                        let keep = run.len().min(64usize.saturating_sub(self.cur.len()));
                        self.cur
                            .extend(run[..keep].iter().map(u8::to_ascii_lowercase));
                    }
                } else {
                    i += 1;
                    // Usually nothing to end (spaces between ASCII words):
                    // tested here, so the common case makes no calls.
                    if !self.cur.is_empty() {
                        self.flush(fam, pair, sink);
                    }
                    if self.prev_unspaced.is_some() {
                        self.end_unspaced(fam, sink);
                    }
                    if matches!(b, b'!' | b'$' | b'%') {
                        self.cur.push(b);
                        self.flush_symbol(fam, sink);
                    }
                    // The blanks and punctuation after it do nothing more:
                    // passed over at once.
                    loop {
                        win.cover(bytes, i);
                        let (n, _) = win.run(i, win.plain, bytes.len());
                        i += n;
                        if !win.ran_out(i, bytes.len()) {
                            break;
                        }
                    }
                }
                continue;
            }
            // Non-ASCII: decode one char.
            let c = text[i..].chars().next().unwrap_or('\u{FFFD}');
            i += c.len_utf8();
            if is_unspaced(c) {
                self.flush(fam, pair, sink);
                self.unspaced(c, fam, sink);
            } else if c.is_alphanumeric() {
                self.end_unspaced(fam, sink);
                self.non_ascii = true;
                for l in c.to_lowercase() {
                    let mut tmp = [0u8; 4];
                    if self.cur.len() < 64 {
                        self.cur
                            .extend_from_slice(l.encode_utf8(&mut tmp).as_bytes());
                    }
                }
                self.letters += 1;
            } else {
                self.flush(fam, pair, sink);
                self.end_unspaced(fam, sink);
                if matches!(c, '€' | '£') {
                    let mut tmp = [0u8; 4];
                    self.cur
                        .extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                    self.flush_symbol(fam, sink);
                }
            }
        }
        self.flush(fam, pair, sink);
        self.end_unspaced(fam, sink);
    }

    fn flush_symbol(&mut self, fam: Fam, sink: &mut Sink) {
        sink.tok(fam, &self.cur);
        self.cur.clear();
    }

    #[inline]
    fn flush(&mut self, fam: Fam, pair: Fam, sink: &mut Sink) {
        if self.cur.is_empty() {
            return;
        }
        let (letters, digits) = (self.letters, self.digits);
        self.letters = 0;
        self.digits = 0;
        self.non_ascii = false;
        let h = match word_kind(letters, digits, self.cur.len()) {
            None => {
                self.cur.clear();
                return;
            }
            Some(Some(shape)) => sink.tok(fam, &shape),
            Some(None) => sink.tok(fam, &self.cur),
        };
        self.cur.clear();
        self.pair_with_prev(h, fam, pair, sink);
    }

    /// A whole ASCII word (`cur` empty): the same features as accumulating
    /// it in `cur` and flushing, without the copy.
    #[inline]
    fn ascii_word(&mut self, run: &[u8], digits: usize, fam: Fam, pair: Fam, sink: &mut Sink) {
        let kept = run.len().min(64);
        let h = match word_kind(run.len() - digits, digits, kept) {
            None => return,
            Some(Some(shape)) => sink.tok(fam, &shape),
            Some(None) => sink.tok_ascii_alnum(fam, run),
        };
        self.pair_with_prev(h, fam, pair, sink);
    }

    #[inline]
    fn pair_with_prev(&mut self, h: u64, fam: Fam, pair: Fam, sink: &mut Sink) {
        if fam != pair {
            if let Some(p) = self.prev {
                sink.pair(pair, p, h);
            }
            self.prev = Some(h);
        }
    }

    /// One character of an unspaced script: emits the bigram with the
    /// previous one of the run.
    #[inline]
    fn unspaced(&mut self, c: char, fam: Fam, sink: &mut Sink) {
        let mut tmp = [0u8; 8];
        if let Some(p) = self.prev_unspaced {
            let n = p.encode_utf8(&mut tmp[..4]).len();
            let m = c.encode_utf8(&mut tmp[n..n + 4]).len();
            sink.tok(fam, &tmp[..n + m]);
        }
        self.prev_unspaced = Some(c);
        self.run_len += 1;
        self.prev = None;
    }

    /// Ends a run of an unspaced script; a one-character run is a token.
    #[inline]
    fn end_unspaced(&mut self, fam: Fam, sink: &mut Sink) {
        if let Some(p) = self.prev_unspaced.take() {
            if self.run_len == 1 {
                let mut tmp = [0u8; 4];
                sink.tok(fam, p.encode_utf8(&mut tmp).as_bytes());
            }
            self.run_len = 0;
        }
    }
}

/// URLs written in text (or HTML source), by the message crate's scanner
/// (the one the message model's URL view uses).
fn text_urls(t: &str, sink: &mut Sink, buf: &mut Vec<u8>, max: usize) -> usize {
    mxguard_message::url::scan(t, max, |found| {
        url(found.host, sink, buf);
        true
    })
}

/// Features of one URL host: the host, its registrable domain, or a marker
/// for a numeric (IP) host.
fn url(host: &str, sink: &mut Sink, buf: &mut Vec<u8>) {
    let (userinfo, host) = mxguard_message::url::split_userinfo(host);
    if userinfo.is_some() {
        sink.tok_str(Fam::Shape, "url:userinfo");
    }
    if host.starts_with("xn--") || host.contains(".xn--") {
        sink.tok_str(Fam::Shape, "url:punycode");
    }
    let host = mxguard_message::url::trim_host(host);
    if host.is_empty() {
        return;
    }
    if host.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        sink.tok_str(Fam::Shape, "url:ip");
        return;
    }
    if !host.contains('.') {
        return;
    }
    let host = truncate(host, 100);
    sink.tok_lower(Fam::UrlHost, host, buf);
    let reg = registrable(host);
    if sink
        .ctx
        .from_domain
        .as_deref()
        .is_some_and(|f| reg.eq_ignore_ascii_case(f))
    {
        sink.ctx.url_from += 1;
    } else {
        sink.ctx.url_other += 1;
    }
    if reg.len() != host.len() {
        sink.tok_lower(Fam::UrlDomain, reg, buf);
    }
}

/// HTML: URL hosts (from attributes and text alike) and, when enabled,
/// tag names.
fn html(h: &str, sink: &mut Sink, buf: &mut Vec<u8>, max_urls: usize) -> usize {
    let urls = text_urls(h, sink, buf, max_urls);
    if memchr::memmem::find(h.as_bytes(), b"<form").is_some()
        || memchr::memmem::find(h.as_bytes(), b"<FORM").is_some()
    {
        sink.tok_str(Fam::Shape, "html:form");
    }
    if sink.opts.html_tags {
        let b = h.as_bytes();
        for p in memchr::memchr_iter(b'<', b) {
            let start = p + 1;
            let mut e = start;
            while e < b.len() && b[e].is_ascii_alphanumeric() && e - start < 16 {
                e += 1;
            }
            if e > start {
                buf.clear();
                buf.extend(b[start..e].iter().map(u8::to_ascii_lowercase));
                let name = std::mem::take(buf);
                sink.tok(Fam::HtmlTag, &name);
                *buf = name;
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &str) -> Vec<String> {
        let m = mxguard_message::parse(raw.as_bytes()).unwrap();
        explain(&m)
    }

    fn has(n: &[String], s: &str) -> bool {
        n.iter().any(|x| x == s)
    }

    #[test]
    fn a_long_url_host_is_cut_at_a_character_boundary() {
        // Found by fuzzing: the 255-byte cap on a host fell inside 'é'.
        for pad in 250..256 {
            let host = format!("{}{}", "a".repeat(pad), "é".repeat(4));
            for body in [format!("see http://{host}/x"), format!("see www.{host}/x")] {
                let raw = format!(
                    "Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
                );
                let n = names(&raw);
                assert!(!n.is_empty());
            }
        }
    }

    const MSG: &str = "Received: from mx.collector.example (mx.collector.example [10.0.0.5])\r
\tby inbox.collector.example with ESMTP id 1; Mon, 1 Jan 2024 00:00:00 +0000\r
Received: from mail.sender.example (mail.sender.example [203.0.113.9])\r
\tby mx.collector.example with ESMTP id 2; Mon, 1 Jan 2024 00:00:00 +0000\r
Received: from [198.51.100.7] (helo=laptop) by mail.sender.example with ESMTPA; Mon, 1 Jan 2024 00:00:00 +0000\r
Authentication-Results: mx.collector.example; spf=pass\r
Received-SPF: pass\r
X-Spam-Status: No, score=-2.0\r
Delivered-To: me@collector.example\r
From: \"Anna Müller\" <Anna@Sender.Example>\r
To: me@collector.example\r
Subject: Günstige Angebote: FREE offer\r
Message-ID: <abc@mail.sender.example>\r
X-Mailer: Foo Mailer 2.1\r
Organization: Acme Widgets 2024\r
Date: Mon, 1 Jan 2024 00:00:00 +0000\r
MIME-Version: 1.0\r
Content-Type: multipart/alternative; boundary=\"b1\"\r
\r
--b1\r
Content-Type: text/html; charset=utf-8\r
\r
<html><body><p>Hello <b>World</b>, visit <a href=\"https://www.shop.example.co.uk/x?y=1\">here</a> \r
and http://203.0.113.50/path. Stra\u{df}e \u{41f}\u{420}\u{418}\u{412}\u{415}\u{422} \u{4e2d}\u{6587}\u{6d4b}\u{8bd5}</p></body></html>\r
--b1--\r
";

    #[test]
    fn features_cover_headers_body_urls_and_scripts() {
        let n = names(MSG);
        // Subject and body words, lower-cased, Unicode-aware.
        assert!(has(&n, "s:günstige"), "{n:?}");
        assert!(has(&n, "s:free"));
        assert!(
            has(&n, "hello") && has(&n, "world"),
            "HTML reduced to text: {n:?}"
        );
        assert!(
            !n.iter().any(|x| x == "html" || x == "body"),
            "no tag names as words"
        );
        assert!(has(&n, "straße"));
        assert!(has(&n, "привет"));
        // CJK: character bigrams.
        assert!(
            has(&n, "中文") && has(&n, "文测") && has(&n, "测试"),
            "{n:?}"
        );
        // From.
        assert!(has(&n, "fn:anna") && has(&n, "fn:müller"));
        assert!(has(&n, "fa:anna@sender.example"));
        assert!(has(&n, "fd:sender.example"));
        // Received: the hand-over relay, not the collecting site.
        assert!(has(&n, "rcvd:sender.example"), "{n:?}");
        assert!(has(&n, "rcvd:203.0"));
        assert!(
            !n.iter().any(|x| x.contains("collector")),
            "collector hops leak: {n:?}"
        );
        // MIME.
        assert!(has(&n, "ct:multipart/alternative"));
        assert!(has(&n, "ct:text/html"));
        assert!(has(&n, "cs:utf-8"));
        // URLs from HTML attributes and text.
        assert!(has(&n, "url:www.shop.example.co.uk"));
        assert!(has(&n, "urld:example.co.uk"));
        assert!(has(&n, "shape:url:ip"));
        // Other header families.
        assert!(has(&n, "xm:foo") && has(&n, "mid:sender.example"));
        assert!(has(&n, "shape:msgid:from_domain"));
        assert!(has(&n, "h:x-mailer"));
        assert!(has(&n, "hv:organization:acme") && has(&n, "hv:organization:widgets"));
        assert!(
            !n.iter().any(|x| x.contains("2024") || x.contains("jan")),
            "no dates: {n:?}"
        );
        // Receiving-side and verdict headers are never features.
        for h in [
            "h:received",
            "h:authentication-results",
            "h:received-spf",
            "h:x-spam-status",
            "h:delivered-to",
            "h:to",
        ] {
            if h == "h:to" {
                assert!(has(&n, h));
            } else {
                assert!(!has(&n, h), "{h} must be ignored");
            }
        }
        assert!(
            !n.iter().any(|x| x.contains("spf") || x.contains("pass")),
            "{n:?}"
        );
    }

    /// The sender's shape: display name against address, Reply-To and
    /// envelope sender, the generator's Message-ID and Content-Type style,
    /// and the phishing marks of URLs and HTML.
    #[test]
    fn sender_shape_and_fingerprints() {
        let brand = names(
            "Return-Path: <bounce-7d1e9a@mailer.example>\r\n\
             From: \"PayPal Service\" <alert@cheap-hosting.example>\r\n\
             Reply-To: <collect@elsewhere.example>\r\n\
             Message-ID: <KX7QW2ZPLM@cheap-hosting.example>\r\n\
             Content-Type: text/html; charset=\"utf-8\"\r\n\
             Subject: verify\r\n\r\n\
             <form action=\"http://user@xn--pypal-4ve.example/login\">x</form>\r\n",
        );
        for f in [
            "shape:from:name_not_in_address",
            "shape:reply_to:other_domain",
            "shape:rp_local:bounce",
            "shape:msgid_local:a9a9a",
            "shape:ct_punct:/; =\"-\"",
            "shape:html:form",
            "shape:url:userinfo",
            "shape:url:punycode",
        ] {
            assert!(has(&brand, f), "{f} missing: {brand:?}");
        }
        let person = names(
            "From: Anna Meyer <anna.meyer@mail.example>\r\nReply-To: anna@mail.example\r\n\
             Subject: hi\r\n\r\nhello\r\n",
        );
        assert!(has(&person, "shape:from:name_in_local"), "{person:?}");
        assert!(has(&person, "shape:reply_to:from_domain"));
        let shop = names("From: Example Shop <news@shop.example>\r\nSubject: x\r\n\r\ny\r\n");
        assert!(has(&shop, "shape:from:name_in_domain"), "{shop:?}");
        let addr =
            names("From: \"bank@bank.example\" <x@other.example>\r\nSubject: x\r\n\r\ny\r\n");
        assert!(has(&addr, "shape:from:name_has_address"), "{addr:?}");
    }

    /// A message in transit has no Return-Path; given its envelope sender
    /// it has the features of the same message learned from a mailbox.
    #[test]
    fn envelope_sender_stands_in_for_return_path() {
        let body = "From: Shop <news@shop.example>\r\nMessage-ID: <a1@shop.example>\r\n\
                    Subject: offers\r\n\r\nNew offers this week.\r\n";
        let stored = format!("Return-Path: <bounce-77a1@mailer.example>\r\n{body}");
        fn parse(raw: &str) -> Message<'_> {
            mxguard_message::parse(raw.as_bytes()).unwrap()
        }
        let learned = extract(&parse(&stored));
        let transit = parse(body);
        let text = text_parts(&transit);
        let scanned = extract_with_text(&transit, &text, Some("bounce-77a1@mailer.example"));
        assert_eq!(learned, scanned);
        // Without it, the From address is the fallback: other features.
        assert_ne!(learned, extract_with_text(&transit, &text, None));
        // A Return-Path present wins over what the caller says.
        let m = parse(&stored);
        let t = text_parts(&m);
        assert_eq!(learned, extract_with_text(&m, &t, Some("x@other.example")));
    }

    #[test]
    fn legacy_cjk_charsets_decode() {
        // "中文" in GB2312, Base64 in the Subject and QP... in the body.
        let raw = "Subject: =?gb2312?B?1tDOxA==?=\r\nContent-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: base64\r\n\r\n1tDOxLLiytQ=\r\n";
        let n = names(raw);
        assert!(has(&n, "s:中文"), "{n:?}");
        assert!(has(&n, "中文") && has(&n, "测试"), "{n:?}");
        assert!(has(&n, "cs:subject:gb2312"));
    }

    #[test]
    fn window_masks_are_the_byte_classes() {
        let mut x: u64 = 3;
        let mut bytes = Vec::new();
        for _ in 0..1000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bytes.push((x >> 56) as u8);
        }
        bytes.extend_from_slice(b"Hello, World! 42$ 100% ~`{|}@[]^_/:;<=>?");
        for start in [0, 1, 7, 63, 64, 500, 990, bytes.len() - 5, bytes.len()] {
            let w = Window::at(&bytes, start);
            for k in 0..64 {
                let b = bytes.get(start + k).copied().unwrap_or(0);
                let bit = |m: u64| m >> k & 1 == 1;
                assert_eq!(
                    bit(w.alnum),
                    b.is_ascii_alphanumeric(),
                    "{start}+{k}: {b:#x}"
                );
                assert_eq!(bit(w.digit), b.is_ascii_digit(), "{start}+{k}: {b:#x}");
                let plain = b.is_ascii() && !b.is_ascii_alphanumeric() && !b"!$%".contains(&b);
                assert_eq!(bit(w.plain), plain, "{start}+{k}: {b:#x}");
            }
        }
    }

    #[test]
    fn radix_sort_sorts() {
        let mut x: u64 = 7;
        for n in [0, 1, 127, 128, 129, 1000, 5000] {
            let mut v: Vec<u32> = (0..n)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    // Few distinct values too, so equal keys and skipped passes occur.
                    (x >> 33) as u32 % if n > 1000 { 97 } else { u32::MAX }
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            sort_features(&mut v);
            assert_eq!(v, want, "{n}");
        }
    }

    #[test]
    fn hashed_features_are_sorted_unique_and_stable() {
        let m = mxguard_message::parse(MSG.as_bytes()).unwrap();
        let a = extract(&m);
        assert!(a.0.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(a, extract(&m));
        let text = text_parts(&m);
        assert_eq!(a, extract_with_text(&m, &text, None));
        assert!(a.len() > 40);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for raw in [
            &b""[..],
            b"\xff\xfe\x00garbage",
            b"Subject: \xe4\xb8\r\n\r\n<a href=\"http://",
            b"Content-Type: text/html\r\n\r\n<<<<a href=www.>http://@/",
            b"Received: from\r\nReceived: by\r\nFrom: <@>\r\nMessage-ID: @\r\n\r\nwww.",
        ] {
            let m = mxguard_message::parse(raw).unwrap_or_default();
            let _ = extract(&m);
            let _ = explain(&m);
        }
        let long = format!("Subject: x\r\n\r\n{}", "a".repeat(1 << 20));
        let m = mxguard_message::parse(long.as_bytes()).unwrap();
        assert!(extract(&m).len() < 20);
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("mail.example.com"), "example.com");
        assert_eq!(registrable("example.com"), "example.com");
        assert_eq!(registrable("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registrable("www.example.com.au"), "example.com.au");
        assert_eq!(registrable("localhost"), "localhost");
    }
}
