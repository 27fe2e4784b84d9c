//! A small parser of Received fields ([`Hop::parse`]), for the
//! classifier's features and [`crate::Mail::received`].
//!
//! mail-parser's own Received parser tokenises every Received field fully
//! (dates, TLS versions, ciphers, ids), which was 22% of the whole MIME
//! parse on corpus-dev, and nothing reads most of the result. So
//! [`crate::parse()`] leaves Received fields unparsed and this parser reads the
//! few things used from the raw field, and only when asked: the client's names and address
//! (`from`, its reverse-DNS name, the HELO name, the IP), the `by` host and
//! whether the hop was a mailbox fetch (`with POP3`/`with IMAP`). The rules
//! follow mail-parser 0.11's tokeniser, so the same hosts come out for
//! ordinary fields.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A host named in a Received field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

impl<'a> Host<'a> {
    pub fn name(self) -> Option<&'a str> {
        match self {
            Host::Name(n) => Some(n),
            Host::Ip(_) => None,
        }
    }
}

/// What the extractor uses of one Received field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hop<'a> {
    /// The word after `from`.
    pub from: Option<Host<'a>>,
    /// A domain name in a comment of the `from` part (the reverse-DNS name
    /// Postfix and sendmail write: `from helo (rdns [ip])`).
    pub from_iprev: Option<&'a str>,
    /// The name after `HELO`/`EHLO`/`helo=` in a comment of the `from` part.
    pub helo: Option<Host<'a>>,
    /// The client address: bracketed in the `from` part, or the first in a
    /// comment there.
    pub from_ip: Option<IpAddr>,
    /// The word after `by`.
    pub by: Option<Host<'a>>,
    /// `with POP3` or `with IMAP`: a mailbox fetch.
    pub fetch: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    None,
    From,
    Other,
}

impl<'a> Hop<'a> {
    /// Parses a Received field's raw value (folding included). Any bytes
    /// give a result; what is not understood is skipped.
    pub fn parse(value: &'a [u8]) -> Hop<'a> {
        let mut hop = Hop::default();
        let mut t = Tokens::new(value);
        let mut state = State::None;
        while let Some(tok) = t.next() {
            let Kind::Word(w) = tok.kind else {
                if tok.kind == Kind::Semicolon {
                    if t.depth == 0 {
                        // Only the date follows: nothing used.
                        break;
                    }
                    // (mail-parser ends the `from` part at any `;`.)
                    state = State::Other;
                }
                continue;
            };
            let top = tok.depth == 0;
            match keyword(w) {
                Some(Key::From) if hop.from.is_none() => {
                    hop.from = t.host(BRACKET);
                    state = State::From;
                }
                Some(Key::By) if top => {
                    hop.by = t.host(BRACKET | ANGLE);
                    state = State::Other;
                }
                Some(Key::With) if top => {
                    // The protocol, possibly after other words ("with
                    // Microsoft SMTP Server"); stops at the next clause.
                    while let Some(next) = t.peek() {
                        match next.kind {
                            Kind::Semicolon => break,
                            Kind::Word(w) if keyword(w).is_some_and(Key::ends_with) => break,
                            Kind::Word(w) if is_tls_version(w) => break,
                            Kind::Word(w) if is_protocol(w) => {
                                hop.fetch = w.eq_ignore_ascii_case(b"pop3")
                                    || w.eq_ignore_ascii_case(b"imap");
                                t.next();
                                break;
                            }
                            _ => {
                                t.next();
                            }
                        }
                    }
                    state = State::Other;
                }
                Some(Key::For | Key::Id | Key::Via) if top => {
                    // Their value is skipped, as mail-parser consumes it.
                    t.skip_value(EQUAL | ANGLE | BRACKET | COLON);
                    state = State::Other;
                }
                Some(Key::Ident) if !top => {
                    t.skip_value(EQUAL | ANGLE | BRACKET | COLON);
                }
                Some(Key::Helo) if state == State::From && !top => {
                    hop.helo = t.host(EQUAL | BRACKET | COLON);
                }
                Some(_) => {}
                None if state == State::From => {
                    if let Some(ip) = ip(w) {
                        if tok.bracket || (!top && hop.from_ip.is_none()) {
                            hop.from_ip = Some(ip);
                        }
                    } else if !top && is_domain(w) {
                        hop.from_iprev = Some(text(w));
                    }
                }
                None => {}
            }
        }
        hop
    }

    /// Whether nothing the extractor uses was found.
    pub fn is_empty(&self) -> bool {
        self.from.is_none()
            && self.from_iprev.is_none()
            && self.helo.is_none()
            && self.from_ip.is_none()
            && self.by.is_none()
            && !self.fetch
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    From,
    By,
    With,
    For,
    Id,
    Via,
    Ident,
    Helo,
}

impl Key {
    /// Keywords that end a `with` clause's search for the protocol.
    fn ends_with(self) -> bool {
        !matches!(self, Key::Ident | Key::Helo)
    }
}

#[inline]
fn keyword(w: &[u8]) -> Option<Key> {
    // Most words are host names, ids and dates: rejected on length and
    // first letter.
    if !(2..=5).contains(&w.len())
        || !matches!(
            w[0] | 0x20,
            b'f' | b'b' | b'w' | b'i' | b'v' | b'h' | b'e' | b'l'
        )
    {
        return None;
    }
    let mut l = [0u8; 5];
    l[..w.len()].copy_from_slice(w);
    l.make_ascii_lowercase();
    Some(match &l[..w.len()] {
        b"from" => Key::From,
        b"by" => Key::By,
        b"with" => Key::With,
        b"for" => Key::For,
        b"id" => Key::Id,
        b"via" => Key::Via,
        b"ident" => Key::Ident,
        b"helo" | b"ehlo" | b"lhlo" => Key::Helo,
        _ => return None,
    })
}

/// The protocol names mail-parser knows after `with` (hyphens ignored:
/// `local-esmtp`, `esmtp-tls`).
fn is_protocol(w: &[u8]) -> bool {
    if w.len() > 12 {
        return false;
    }
    let mut l = [0u8; 12];
    let mut n = 0;
    for &b in w.iter().filter(|&&b| b != b'-') {
        l[n] = b.to_ascii_lowercase();
        n += 1;
    }
    matches!(
        &l[..n],
        b"smtp"
            | b"smtpd"
            | b"smtpsvc"
            | b"esmtp"
            | b"esmtpa"
            | b"asmtp"
            | b"esmtps"
            | b"esmtpsa"
            | b"esmtptls"
            | b"lmtp"
            | b"lsmtp"
            | b"lmtpa"
            | b"lmtps"
            | b"lmtpsa"
            | b"utf8smtp"
            | b"utf8smtpa"
            | b"utf8smtps"
            | b"utf8smtpsa"
            | b"utf8lmtp"
            | b"utf8lmtpa"
            | b"utf8lmtps"
            | b"utf8lmtpsa"
            | b"localesmtp"
            | b"localesmtps"
            | b"localbsmtp"
            | b"http"
            | b"https"
            | b"httpu"
            | b"httprest"
            | b"imap"
            | b"pop3"
            | b"local"
            | b"socket"
            | b"stdin"
            | b"mms"
    )
}

/// `TLSv1.2`, `TLS1_3`, `SSLv3`, `DTLSv1.2`…
fn is_tls_version(w: &[u8]) -> bool {
    let l = |p: &[u8]| w.len() > p.len() && w[..p.len()].eq_ignore_ascii_case(p);
    let rest = if l(b"dtls") {
        &w[4..]
    } else if l(b"tls") || l(b"ssl") {
        &w[3..]
    } else {
        return false;
    };
    let rest = rest.strip_prefix(b"v").unwrap_or(rest);
    rest.first().is_some_and(u8::is_ascii_digit)
        && rest
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b'.' || b == b'_')
}

/// An IPv4 or IPv6 address written as one word.
fn ip(w: &[u8]) -> Option<IpAddr> {
    // Host names fail on the first byte.
    if !w
        .first()
        .is_some_and(|&b| b.is_ascii_hexdigit() || b == b':')
    {
        return None;
    }
    let s = std::str::from_utf8(w).ok()?;
    if w.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else if w.contains(&b':')
        && w.iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        None
    }
}

/// A domain name as mail-parser's tokeniser classifies one: a letter, a
/// dot, otherwise only letters, digits, dots, hyphens and non-ASCII bytes.
fn is_domain(w: &[u8]) -> bool {
    w.iter().any(u8::is_ascii_alphabetic)
        && w.contains(&b'.')
        && w.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b >= 0x7f)
        && !is_tls_version(w)
}

/// A word as text (mail-parser's empty text for invalid UTF-8).
fn text(w: &[u8]) -> &str {
    std::str::from_utf8(w).unwrap_or_default()
}

/// Separators [`Tokens::host`] may skip.
const BRACKET: u8 = 1;
const ANGLE: u8 = 2;
const EQUAL: u8 = 4;
const COLON: u8 = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind<'a> {
    Word(&'a [u8]),
    ParenOpen,
    ParenClose,
    BracketOpen,
    BracketClose,
    AngleOpen,
    AngleClose,
    Semicolon,
    Colon,
    Equal,
    Slash,
    Quote,
    Comma,
}

#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    kind: Kind<'a>,
    /// Comment depth where a word starts (0 for separators, as mail-parser).
    depth: u32,
    /// Whether a word is inside `[...]`.
    bracket: bool,
}

/// Words and separators of a Received field, tracking comments and
/// brackets like mail-parser's tokeniser.
struct Tokens<'a> {
    b: &'a [u8],
    i: usize,
    peeked: Option<Tok<'a>>,
    /// A word just ended at a colon: the colon is a separator.
    colon: bool,
    depth: u32,
    brackets: u32,
    in_quote: bool,
    in_date: bool,
}

impl<'a> Tokens<'a> {
    fn new(b: &'a [u8]) -> Tokens<'a> {
        Tokens {
            b,
            i: 0,
            peeked: None,
            colon: false,
            depth: 0,
            brackets: 0,
            in_quote: false,
            in_date: false,
        }
    }

    fn peek(&mut self) -> Option<Tok<'a>> {
        if self.peeked.is_none() {
            self.peeked = self.scan();
        }
        self.peeked
    }

    fn next(&mut self) -> Option<Tok<'a>> {
        self.peeked.take().or_else(|| self.scan())
    }

    /// After a keyword: skips the separators in `skip` (a mask of
    /// [`BRACKET`], [`ANGLE`], [`EQUAL`], [`COLON`]), then takes a word as
    /// the host (an address or a name); another separator ends the search.
    fn host(&mut self, skip: u8) -> Option<Host<'a>> {
        let w = self.value(skip)?;
        Some(ip(w).map_or_else(|| Host::Name(text(w)), Host::Ip))
    }

    /// [`Tokens::host`]'s word, unclassified.
    fn value(&mut self, skip: u8) -> Option<&'a [u8]> {
        while let Some(t) = self.peek() {
            let bit = match t.kind {
                Kind::Word(w) => {
                    self.next();
                    return Some(w);
                }
                Kind::BracketOpen => BRACKET,
                Kind::AngleOpen => ANGLE,
                Kind::Equal => EQUAL,
                Kind::Colon => COLON,
                _ => 0,
            };
            if skip & bit == 0 {
                return None;
            }
            self.next();
        }
        None
    }

    /// [`Tokens::host`], the value dropped.
    fn skip_value(&mut self, skip: u8) {
        let _ = self.value(skip);
    }

    fn scan(&mut self) -> Option<Tok<'a>> {
        let b = self.b;
        let sep = |kind| {
            Some(Tok {
                kind,
                depth: 0,
                bracket: false,
            })
        };
        if self.colon {
            self.colon = false;
            self.i += 1;
            return sep(Kind::Colon);
        }
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
        let &c = b.get(self.i)?;
        let start = self.i;
        self.i += 1;
        match c {
            b'(' => {
                if !self.in_quote {
                    self.depth = self.depth.saturating_add(1);
                }
                return sep(Kind::ParenOpen);
            }
            b')' => {
                if !self.in_quote {
                    self.depth = self.depth.saturating_sub(1);
                }
                return sep(Kind::ParenClose);
            }
            // mail-parser sets its bracket depth from the comment depth.
            b'[' => {
                if !self.in_quote {
                    self.brackets = self.depth.saturating_add(1);
                }
                return sep(Kind::BracketOpen);
            }
            b']' => {
                if !self.in_quote {
                    self.brackets = self.depth.saturating_sub(1);
                }
                return sep(Kind::BracketClose);
            }
            b'<' => return sep(Kind::AngleOpen),
            b'>' => return sep(Kind::AngleClose),
            b'=' => return sep(Kind::Equal),
            b';' => {
                if self.depth == 0 {
                    self.in_date = true;
                }
                return sep(Kind::Semicolon);
            }
            b'/' => return sep(Kind::Slash),
            b'"' => {
                self.in_quote = !self.in_quote;
                return sep(Kind::Quote);
            }
            b',' => return sep(Kind::Comma),
            b':' if self.in_date => return sep(Kind::Colon),
            _ => {}
        }
        // A word. A colon continues it while it can still be an IPv6
        // address (hex digits and at most seven colons so far).
        let mut colons = usize::from(c == b':');
        let mut hex_only = BYTE_CLASS[c as usize] != OTHER;
        while let Some(&c) = b.get(self.i) {
            match BYTE_CLASS[c as usize] {
                HEX => {}
                OTHER => hex_only = false,
                END => break,
                _ => {
                    // A colon.
                    if !hex_only || colons == 7 {
                        self.colon = true;
                        break;
                    }
                    colons += 1;
                }
            }
            self.i += 1;
        }
        Some(Tok {
            kind: Kind::Word(&b[start..self.i]),
            depth: self.depth,
            bracket: self.brackets > 0,
        })
    }
}

const OTHER: u8 = 0;
const HEX: u8 = 1;
const END: u8 = 2;
const COLON_BYTE: u8 = 3;
/// Word bytes (hex digits or other), colons, and the bytes that end a word
/// (white space and separators).
static BYTE_CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => HEX,
            b':' => COLON_BYTE,
            b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'[' | b']' | b'<' | b'>' | b'='
            | b';' | b'/' | b'"' | b',' => END,
            _ => OTHER,
        };
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(s: &str) -> Hop<'_> {
        Hop::parse(s.as_bytes())
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn postfix() {
        let h = hop(
            " from mail.sender.example (mail.sender.example [203.0.113.9])\r\n\tby mx.collector.example (Postfix) with ESMTPS id 4Xy2; Mon, 1 Jan 2024 00:00:00 +0000\r\n",
        );
        assert_eq!(h.from, Some(Host::Name("mail.sender.example")));
        assert_eq!(h.from_iprev, Some("mail.sender.example"));
        assert_eq!(h.from_ip, ip("203.0.113.9"));
        assert_eq!(h.by, Some(Host::Name("mx.collector.example")));
        assert!(!h.fetch);
        // Unknown reverse DNS: the HELO name is the `from` word.
        let h = hop(
            " from laptop.example (unknown [198.51.100.7]) by mx.example (Postfix) with ESMTP id 1 for <a@b.example>; date",
        );
        assert_eq!(h.from, Some(Host::Name("laptop.example")));
        assert_eq!(h.from_iprev, None);
        assert_eq!(h.from_ip, ip("198.51.100.7"));
        // IPv6 client.
        let h = hop(
            " from mx.example (mx.example [IPv6:2001:db8::25]) by mx2.example (Postfix) with ESMTPS id 2",
        );
        assert_eq!(h.from_ip, ip("2001:db8::25"));
        // Local pickup.
        let h = hop(" by mail.example (Postfix, from userid 1000) id 3; date");
        assert_eq!(h.by, Some(Host::Name("mail.example")));
        assert_eq!(h.from, Some(Host::Name("userid")));
        assert_eq!(h.from_ip, None);
    }

    #[test]
    fn sendmail() {
        let h = hop(
            " from relay.example.org (relay.example.org [192.0.2.44] (may be forged))\n\tby mail.example.com (8.14.4/8.14.4) with ESMTP id r0ABC; Tue, 2 Jan 2024 10:00:00 -0500",
        );
        assert_eq!(h.from, Some(Host::Name("relay.example.org")));
        assert_eq!(h.from_iprev, Some("relay.example.org"));
        assert_eq!(h.from_ip, ip("192.0.2.44"));
        assert_eq!(h.by, Some(Host::Name("mail.example.com")));
        let h = hop(
            " from localhost (localhost [127.0.0.1]) by host.example (8.12/8.12) with SMTP id x",
        );
        assert_eq!(h.from, Some(Host::Name("localhost")));
        assert_eq!(h.from_ip, ip("127.0.0.1"));
    }

    #[test]
    fn exim() {
        let h = hop(
            " from [198.51.100.7] (helo=laptop) by mail.sender.example with esmtpa (Exim 4.96) (envelope-from <a@sender.example>) id 1rXyZ-000; Mon, 1 Jan 2024",
        );
        assert_eq!(h.from, Some(Host::Ip("198.51.100.7".parse().unwrap())));
        assert_eq!(h.helo, Some(Host::Name("laptop")));
        assert_eq!(h.from_ip, None);
        assert_eq!(h.by, Some(Host::Name("mail.sender.example")));
        let h = hop(
            " from mail.x.example ([203.0.113.1] helo=mail.x.example) by mx.y.example with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384 (Exim 4.94.2) (envelope-from <b@x.example>) id 1; date",
        );
        assert_eq!(h.from, Some(Host::Name("mail.x.example")));
        assert_eq!(h.helo, Some(Host::Name("mail.x.example")));
        assert_eq!(h.from_ip, ip("203.0.113.1"));
        assert_eq!(h.from_iprev, None);
    }

    #[test]
    fn qmail_exchange_and_fetch() {
        let h = hop(" (qmail 12345 invoked from network); 1 Jan 2024 00:00:00 -0000");
        assert_eq!(h.from, Some(Host::Name("network")));
        let h = hop(
            " from unknown (HELO mail.x.example) (203.0.113.5)\r\n  by mx.y.example with SMTP; 1 Jan 2024",
        );
        assert_eq!(h.from, Some(Host::Name("unknown")));
        assert_eq!(h.helo, Some(Host::Name("mail.x.example")));
        assert_eq!(h.from_ip, ip("203.0.113.5"));
        let h = hop(
            " from EXCH01.corp.example (10.1.2.3) by EXCH02.corp.example (10.1.2.4) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.1.2507.6; Tue, 2 Jan 2024",
        );
        assert_eq!(h.from, Some(Host::Name("EXCH01.corp.example")));
        assert_eq!(h.from_ip, ip("10.1.2.3"));
        assert_eq!(h.by, Some(Host::Name("EXCH02.corp.example")));
        let h = hop(
            " from pop.example.net [192.0.2.1]\n\tby localhost with POP3 (fetchmail-6.4.37)\n\tfor <me@localhost> (single-drop); Mon, 1 Jan 2024",
        );
        assert!(h.fetch);
        assert_eq!(h.from_ip, ip("192.0.2.1"));
        assert_eq!(h.by, Some(Host::Name("localhost")));
        assert!(hop(" from imap.example by localhost with IMAP (fetchmail)").fetch);
        assert!(!hop(" from a.example by b.example with ESMTP (IMAP)").fetch);
    }

    #[test]
    fn malformed_and_hostile_fields_do_not_panic() {
        for s in [
            "",
            " ",
            "from",
            "by",
            " from [",
            " from (((((((",
            " ))))) from ]]]] by [[[[",
            " from \"quoted (not a comment\" (x [1.2.3.4]) by y",
            " from a:b:c:d:e:f:g:h:i:j by ::::::::::::::::",
            " from 999.1.1.1 (x [1.2.3.256]) by 1.2.3",
            " with with with with",
            " from \u{e9}t\u{e9}.example (h\u{f6}st.example [192.0.2.1])",
            " id id id ident ident helo helo ehlo",
            ";;;;;;:::;;;",
        ] {
            let _ = hop(s);
        }
        let _ = Hop::parse(b" from \xff\xfe.example (\xc3.x [1.2.3.4]) by \xff");
        let long = format!(" from {} by {}", "(".repeat(100_000), "a.".repeat(100_000));
        let _ = hop(&long);
        let empty = hop(" garbage only");
        assert!(empty.is_empty());
        // Invalid addresses are names, not addresses.
        assert_eq!(
            hop(" from 999.1.1.1 by x").from,
            Some(Host::Name("999.1.1.1"))
        );
    }

    #[test]
    fn shared_parser_keeps_received_raw_and_the_rest_as_default() {
        use mail_parser::{HeaderName, MessageParser};
        let raw = b"Received: from a.example (a.example [192.0.2.1]) by b.example with ESMTP; date\r\nFrom: A <a@a.example>\r\nList-Id: <l.example>\r\nSubject: =?utf-8?q?hi?=\r\nContent-Transfer-Encoding: quoted-printable (comment)\r\n\r\nbody=3D\r\n";
        let m = crate::parse(&raw[..]).unwrap();
        let d = MessageParser::default().parse(&raw[..]).unwrap();
        assert_eq!(m.received_all().count(), 0);
        for (a, b) in m.headers().iter().zip(d.headers()) {
            assert_eq!(
                (a.offset_start, a.offset_end),
                (b.offset_start, b.offset_end)
            );
            if a.name != HeaderName::Received {
                assert_eq!(a.value, b.value);
            }
        }
        assert_eq!(m.body_text(0), d.body_text(0));
        let h = &m.headers()[0];
        let hop = Hop::parse(&raw[h.offset_start as usize..h.offset_end as usize]);
        assert_eq!(hop.from_ip, ip("192.0.2.1"));
    }
}
