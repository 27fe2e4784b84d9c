//! mxguard-auth: email authentication, inbound and outbound.
//!
//! Verification: SPF ([`spf`]), DKIM ([`dkim`]), DMARC ([`dmarc`]) and ARC
//! ([`arc`]), with the shared result vocabulary in [`results`]. Outbound:
//! DKIM signing ([`sign`]), ARC sealing ([`seal`]), keys ([`keys`],
//! [`keygen`]). [`report`]: DMARC aggregate reports (RFC 7489 section 7.2
//! and RFC 9990): each inbound DMARC evaluation is counted in the store,
//! and once per period a report per reporting domain is built,
//! gzip-attached and sent by SMTP to the domain's `rua` addresses, once.
//!
//! DKIM and ARC signature checks are mail-auth's; SPF ([`spf_eval`]:
//! mail-auth's fails the openspf suite) and DMARC (it needs `pct` and the
//! public-suffix organisational domain the rest of mxguard uses) are ours,
//! their lookups through [`mxguard_dns::Dns`] like every other lookup. mail-auth's `MessageAuthenticator` is built
//! around the *same* hickory resolver as `Dns` ([`Dns::resolver`]), so the
//! `[dns]` servers, time-out and cache apply to every lookup made here.
//!
//! DNS answers and messages are hostile: SPF keeps RFC 7208's limits (10
//! lookups, 2 void lookups, 10 MX/PTR names), at most
//! [`dkim::MAX_SIGNATURES`] DKIM signatures and [`arc::MAX_SETS`] ARC sets
//! are looked at per message, the DMARC tree walk asks at most
//! [`dmarc::MAX_WALK_QUERIES`] names, and TXT records over
//! [`mxguard_dns::MAX_TXT_LEN`] are dropped.

pub mod arc;
pub mod config;
pub mod dkim;
pub mod dmarc;
mod key_cache;
pub mod keygen;
pub mod keys;
pub mod report;
pub mod results;
pub mod seal;
pub mod sign;
pub mod spf;
pub mod spf_eval;

use key_cache::KeyCache;
pub use mail_auth::AuthenticatedMessage;
use mail_auth::MessageAuthenticator;
use mxguard_dns::Dns;
use std::borrow::Cow;
use std::sync::Arc;

/// The verifier: the shared resolver, seen both as mxguard's [`Dns`] and as
/// mail-auth's authenticator, and the DKIM/ARC keys parsed from its
/// answers. Cheap to clone (clones share the keys).
#[derive(Clone)]
pub struct Verifier {
    dns: Dns,
    authenticator: MessageAuthenticator,
    keys: Arc<KeyCache>,
}

impl Verifier {
    /// A verifier over `dns`' resolver: its name servers, time-out and
    /// cache.
    pub fn new(dns: &Dns) -> Verifier {
        let (capacity, longest) = dns.cache_limits();
        Verifier {
            dns: dns.clone(),
            authenticator: MessageAuthenticator(dns.resolver().clone()),
            keys: Arc::new(KeyCache::new(capacity, longest)),
        }
    }

    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    pub(crate) fn authenticator(&self) -> &MessageAuthenticator {
        &self.authenticator
    }

    /// The parsed DKIM/ARC keys, for mail-auth's TXT cache hook.
    pub(crate) fn keys(&self) -> &KeyCache {
        &self.keys
    }
}

/// A message as the DKIM and ARC checks read it: the raw bytes, trimmed
/// of the signature headers past the caps when a message carries more.
pub struct Signed<'a> {
    raw: Cow<'a, [u8]>,
    /// DKIM-Signature and ARC headers left out for the caps.
    pub dropped: usize,
}

impl<'a> Signed<'a> {
    /// Keeps the first [`dkim::MAX_SIGNATURES`] DKIM-Signature headers and
    /// the first [`arc::MAX_SETS`] of each ARC header: parsing hashes the
    /// body once per distinct signature shape, so an unbounded count would
    /// let one message buy unbounded CPU. Copies only when over a cap.
    pub fn new(raw: &'a [u8]) -> Signed<'a> {
        let head_end = memchr::memmem::find(raw, b"\r\n\r\n")
            .map(|i| i + 2)
            .or_else(|| memchr::memmem::find(raw, b"\n\n").map(|i| i + 1))
            .unwrap_or(raw.len());
        let head = &raw[..head_end];
        let limits: [(&[u8], usize); 4] = [
            (b"dkim-signature", dkim::MAX_SIGNATURES),
            (b"arc-seal", arc::MAX_SETS),
            (b"arc-message-signature", arc::MAX_SETS),
            (b"arc-authentication-results", arc::MAX_SETS),
        ];
        // Whether each header field, in order, is within the caps.
        let kept = || {
            let mut counts = [0usize; 4];
            header_fields(head).map(move |(start, end)| {
                let line = &head[start..end];
                let name = memchr::memchr(b':', line)
                    .map(|i| line[..i].trim_ascii())
                    .unwrap_or_default();
                let mut kept = true;
                for (i, (limit_name, cap)) in limits.iter().enumerate() {
                    if name.eq_ignore_ascii_case(limit_name) {
                        counts[i] += 1;
                        kept = counts[i] <= *cap;
                    }
                }
                (start, end, kept)
            })
        };
        // The common case, checked without allocating: nothing over a cap.
        let dropped = kept().filter(|&(_, _, k)| !k).count();
        if dropped == 0 {
            return Signed {
                raw: Cow::Borrowed(raw),
                dropped,
            };
        }
        let mut out = Vec::with_capacity(raw.len());
        for (start, end, kept) in kept() {
            if kept {
                out.extend_from_slice(&head[start..end]);
            }
        }
        out.extend_from_slice(&raw[head_end..]);
        Signed {
            raw: Cow::Owned(out),
            dropped,
        }
    }

    /// Parses for mail-auth: `None` when there is no header block.
    pub fn parse(&self) -> Option<AuthenticatedMessage<'_>> {
        AuthenticatedMessage::parse(&self.raw)
    }
}

/// The header fields of a header block as (start, end) byte ranges,
/// continuation lines included.
fn header_fields(head: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= head.len() {
            return None;
        }
        let start = pos;
        loop {
            pos = memchr::memchr(b'\n', &head[pos..]).map_or(head.len(), |i| pos + i + 1);
            if pos >= head.len() || !matches!(head[pos], b' ' | b'\t') {
                return Some((start, pos));
            }
        }
    })
}

/// A message's signature headers parsed once for the DKIM and ARC checks
/// both. mail-auth's parse hashes the body once per distinct
/// (canonicalisation, algorithm, length) over the DKIM-Signature and
/// ARC-Message-Signature headers together, and parses every header: one
/// parse shared by the two checks does that work once, not twice.
// One per message, in place: the large variant is the common one, and
// boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'a> {
    /// Within the caps: parsed from the raw bytes as they are (`None`: no
    /// header block).
    Whole(Option<AuthenticatedMessage<'a>>),
    /// Over a cap (a hostile message): the trimmed copy, which each user
    /// parses itself; see [`Parsed::message`].
    Trimmed(Signed<'static>),
}

impl<'a> Parsed<'a> {
    pub fn new(raw: &'a [u8]) -> Parsed<'a> {
        if let Some(unsigned) = unsigned(raw) {
            return Parsed::Whole(Some(unsigned));
        }
        let signed = Signed::new(raw);
        match signed.raw {
            Cow::Borrowed(raw) => Parsed::Whole(AuthenticatedMessage::parse(raw)),
            Cow::Owned(trimmed) => Parsed::Trimmed(Signed {
                raw: Cow::Owned(trimmed),
                dropped: signed.dropped,
            }),
        }
    }

    /// Signature headers left out for the caps.
    pub fn dropped(&self) -> usize {
        match self {
            Parsed::Whole(_) => 0,
            Parsed::Trimmed(s) => s.dropped,
        }
    }

    /// The parsed message: the shared one, or a parse of the trimmed copy.
    pub fn message(&self) -> Option<ParsedRef<'_>> {
        match self {
            Parsed::Whole(m) => m.as_ref().map(ParsedRef::Shared),
            Parsed::Trimmed(s) => s.parse().map(|m| ParsedRef::Own(Box::new(m))),
        }
    }
}

/// The message as mail-auth would parse it, without parsing it, when it
/// has no header that mail-auth reads as a signature: most mail. Parsing
/// walks and classifies every header field and parses the From address
/// (about 3% of the daemon's instructions per message), only for the DKIM
/// and ARC checks to find no signature. `None`: it may have one (or no
/// header at all), so it is parsed as before.
///
/// What verification reads of an unsigned message is the same either
/// way: no DKIM-Signature, no malformed one, no ARC set, no error.
fn unsigned(raw: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    // mail-auth's header walk ends at the first empty line, or earlier:
    // every field name it reads lies before it.
    let (end, body) = match memchr::memmem::find(raw, b"\n\r\n") {
        Some(i) => match memchr::memmem::find(&raw[..i], b"\n\n") {
            Some(j) => (j, j + 2),
            None => (i, i + 3),
        },
        None => memchr::memmem::find(raw, b"\n\n").map(|j| (j, j + 2))?,
    };
    // It finds at least one header (so it gives a message, not `None`)
    // when the first line is a field: a colon before any line end, and a
    // line end after it.
    let first = memchr::memchr2(b':', b'\n', raw)?;
    if raw[first] != b':' || first >= end {
        return None;
    }
    if may_name_a_signature(&raw[..end]) {
        return None;
    }
    Some(AuthenticatedMessage {
        raw_message: raw,
        body_offset: u32::try_from(body).ok()?,
        ..Default::default()
    })
}

/// Whether `head` may hold a field name mail-auth reads as a signature:
/// DKIM-Signature, DKIM2-Signature, Message-Instance, ARC-Seal,
/// ARC-Message-Signature, ARC-Authentication-Results. Every such name,
/// even folded over lines, has `arc`, `dkim` or `dkim2` before a `-`
/// (white space aside), or `message-` then `instance`; so a `-` without
/// them rules the header block out. A yes may be wrong (the text of a
/// value), and costs only the full parse.
fn may_name_a_signature(head: &[u8]) -> bool {
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    for dash in memchr::memchr_iter(b'-', head) {
        // Most dashes of a header block (dates, message ids, X- fields,
        // Content-Type) follow some other letter than the last one of
        // `arc`, `dkim`, `dkim2` or `message`: ruled out at the first
        // byte that is not white space.
        let last = head[..dash].iter().rev().find(|&&b| !space(b));
        if !matches!(last, Some(b'c' | b'C' | b'm' | b'M' | b'2' | b'e' | b'E')) {
            continue;
        }
        // The last letters before the dash, white space skipped, newest
        // first, lower case.
        let mut word = [0u8; 7];
        let mut n = 0;
        for &b in head[..dash].iter().rev() {
            if space(b) {
                continue;
            }
            if n == word.len() || !b.is_ascii_alphanumeric() {
                break;
            }
            word[n] = b.to_ascii_lowercase();
            n += 1;
        }
        let ends_with =
            |tail: &[u8]| n >= tail.len() && tail.iter().rev().zip(&word[..n]).all(|(a, b)| a == b);
        if ends_with(b"arc") || ends_with(b"dkim") || ends_with(b"dkim2") {
            return true;
        }
        if ends_with(b"message")
            && head
                .get(dash + 1..dash + 9)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"instance"))
        {
            return true;
        }
    }
    false
}

/// What [`Parsed::message`] lends: the shared parse or an own one.
pub enum ParsedRef<'p> {
    Shared(&'p AuthenticatedMessage<'p>),
    /// Of a trimmed copy (hostile messages only).
    Own(Box<AuthenticatedMessage<'p>>),
}

impl<'p> std::ops::Deref for ParsedRef<'p> {
    type Target = AuthenticatedMessage<'p>;

    fn deref(&self) -> &AuthenticatedMessage<'p> {
        match self {
            ParsedRef::Shared(m) => m,
            ParsedRef::Own(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_headers_over_the_cap_are_left_out_once() {
        let mut raw = String::from("Received: by mx\r\n\tfolded\r\n");
        for i in 0..dkim::MAX_SIGNATURES + 2 {
            raw.push_str(&format!("DKIM-Signature: v=1; n={i};\r\n b=x\r\n"));
        }
        raw.push_str("From: a@example.com\r\n\r\nbody\r\n");
        let signed = Signed::new(raw.as_bytes());
        assert_eq!(signed.dropped, 2);
        let text = String::from_utf8(signed.raw.to_vec()).unwrap();
        assert!(
            text.starts_with("Received: by mx\r\n\tfolded\r\n"),
            "{text}"
        );
        assert!(text.contains("n=9;\r\n b=x\r\nFrom: a@example.com\r\n\r\nbody\r\n"));
        assert!(!text.contains("n=10"), "{text}");
        let parsed = Parsed::new(raw.as_bytes());
        assert!(matches!(parsed, Parsed::Trimmed(_)));
        assert_eq!(parsed.dropped(), 2);
        assert!(parsed.message().is_some());

        // Within the caps: no copy, one parse shared as it is.
        let ok = "DKIM-Signature: v=1;\r\n b=x\r\nFrom: a@example.com\r\n\r\nbody\r\n";
        let signed = Signed::new(ok.as_bytes());
        assert!(matches!(signed.raw, Cow::Borrowed(_)));
        assert_eq!(signed.dropped, 0);
        let parsed = Parsed::new(ok.as_bytes());
        assert!(matches!(parsed, Parsed::Whole(Some(_))));
        assert_eq!(parsed.dropped(), 0);
        assert!(matches!(Parsed::new(b""), Parsed::Whole(None)));
    }

    /// Whether mail-auth's parse found anything signature-like.
    fn holds_signatures(m: &AuthenticatedMessage<'_>) -> bool {
        !m.dkim_headers.is_empty()
            || !m.errors.is_empty()
            || !m.ams_headers.is_empty()
            || !m.as_headers.is_empty()
            || !m.aar_headers.is_empty()
            || !m.dkim2_signatures.is_empty()
            || !m.dkim2_instances.is_empty()
    }

    /// Every message the shortcut passes, a full parse finds unsigned:
    /// crafted edge cases (folded names, LF line ends, no header), and the
    /// test data's mail when present. Returns how many took the shortcut.
    fn shortcut_agrees(raw: &[u8]) -> bool {
        let full = AuthenticatedMessage::parse(raw);
        match unsigned(raw) {
            Some(fast) => {
                let full = full.unwrap_or_else(|| {
                    panic!(
                        "shortcut on a message mail-auth finds no header in: {:?}",
                        String::from_utf8_lossy(raw)
                    )
                });
                assert!(
                    !holds_signatures(&full),
                    "shortcut on a signed message: {:?}",
                    String::from_utf8_lossy(&raw[..raw.len().min(400)])
                );
                assert!(!holds_signatures(&fast));
                assert_eq!(fast.body_offset, full.body_offset);
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_unsigned_shortcut_agrees_with_a_full_parse() {
        let cases: &[(&[u8], bool)] = &[
            (
                b"From: a@example.com\r\nSubject: x-y\r\n\r\nbody-dkim-arc\r\n",
                true,
            ),
            (b"From: a@example.com\nMessage-ID: <1@x>\n\nbody\n", true),
            (
                b"From: a@example.com\r\nDKIM-Signature: v=1; a=x\r\n\r\nb\r\n",
                false,
            ),
            (b"From: a@b\r\nDKIM-\r\n Signature: v=1\r\n\r\nb\r\n", false),
            (b"From: a@b\r\nARC-Seal: i=1\r\n\r\nb\r\n", false),
            (b"From: a@b\r\nA\r\n RC-Seal: i=1\r\n\r\nb\r\n", false),
            (
                b"From: a@b\r\narc-authentication-results: i=1\r\n\r\nb\r\n",
                false,
            ),
            (b"From: a@b\r\nDKIM2-Signature: i=1\r\n\r\nb\r\n", false),
            (b"From: a@b\r\nMessage-Instance: m=1\r\n\r\nb\r\n", false),
            (b"From: a@b\r\nDKIM-Signature : v=1\r\n\r\nb\r\n", false),
            (b"From: a@b\nX: y\n\nDKIM-Signature: v=1\n", true),
            // No header mail-auth would read: parsed as before.
            (b"", false),
            (b"\r\nFrom: a@b\r\n\r\n", false),
            (b"junk line\r\nFrom: a@b\r\n\r\n", false),
            (b"Subject: no line end", false),
            (b"Subject: no blank line\r\n", false),
        ];
        for (raw, shortcut) in cases {
            assert_eq!(
                shortcut_agrees(raw),
                *shortcut,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let base = std::env::var_os("MXGUARD_TESTDATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../../shared/testdata")
            });
        let dirs = [
            "corpus-dev/ham",
            "corpus-dev/spam",
            "phishing-dev",
            "mime-samples",
            "dkim-vectors/mail-dkim-perl",
        ];
        let (mut seen, mut fast) = (0usize, 0usize);
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(base.join(dir)) else {
                eprintln!(
                    "SKIP: {} is absent (set MXGUARD_TESTDATA)",
                    base.join(dir).display()
                );
                continue;
            };
            for e in entries.flatten() {
                let Ok(raw) = std::fs::read(e.path()) else {
                    continue;
                };
                seen += 1;
                fast += usize::from(shortcut_agrees(&raw));
            }
        }
        eprintln!("{fast} of {seen} test messages took the unsigned shortcut");
        if seen > 1000 {
            // corpus-dev: 143 of 4,578 messages are signed.
            assert!(fast * 10 > seen * 8, "{fast} of {seen}");
        }
    }
}
