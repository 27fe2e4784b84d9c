//! Postfix's policy delegation protocol: a request is `name=value` lines
//! ended by an empty line; the answer is `action=...` and an empty line.
//! Connections are reused for many requests.

use std::net::IpAddr;

/// Limits on one request, so a hostile or broken client cannot make the
/// server buffer without bound.
pub const MAX_LINE: usize = 8 * 1024;
pub const MAX_ATTRIBUTES: usize = 256;
/// Bytes in one request, newlines included, counted as received (before
/// invalid UTF-8 is replaced, which can triple it). Postfix's requests are
/// one to two KiB; long addresses and certificate names stay well below.
pub const MAX_REQUEST: usize = 32 * 1024;

/// The SMTP stage a request is made at (`protocol_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    EndOfMessage,
    /// VRFY, ETRN and anything newer: only the rcpt-style checks apply.
    Other,
}

impl Stage {
    pub fn parse(s: &str) -> Stage {
        const NAMES: [(&str, Stage); 7] = [
            ("RCPT", Stage::Rcpt),
            ("CONNECT", Stage::Connect),
            ("HELO", Stage::Helo),
            ("EHLO", Stage::Helo),
            ("MAIL", Stage::Mail),
            ("DATA", Stage::Data),
            ("END-OF-MESSAGE", Stage::EndOfMessage),
        ];
        NAMES
            .iter()
            .find(|(name, _)| s.eq_ignore_ascii_case(name))
            .map_or(Stage::Other, |&(_, stage)| stage)
    }
}

/// One policy request. Unknown attributes are kept but ignored, as the
/// protocol asks: Postfix adds attributes over time.
///
/// Every name and value lives in one string, the attributes being spans of
/// it: reading a request allocates nothing per attribute (a map of owned
/// strings cost two allocations each, some 25 per request). A lookup scans
/// the spans, which for Postfix's two dozen short names is quicker than
/// hashing; a name sent twice reads as its last value.
#[derive(Debug, Clone, Default)]
pub struct Request {
    text: String,
    attrs: Vec<Attr>,
}

/// Where one attribute's name and value are in [`Request::text`]: the
/// name is `name_start..name_end`, the value `value_start..end`.
#[derive(Debug, Clone, Copy)]
struct Attr {
    name_start: u32,
    name_end: u32,
    value_start: u32,
    end: u32,
}

impl Request {
    /// The value of an attribute, empty when it is absent.
    pub fn get(&self, name: &str) -> &str {
        self.find(name).unwrap_or("")
    }

    /// Whether the attribute was sent (even empty).
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn find(&self, name: &str) -> Option<&str> {
        self.attrs.iter().rev().find_map(|a| {
            (self.slice(a.name_start, a.name_end) == name).then(|| self.slice(a.value_start, a.end))
        })
    }

    fn slice(&self, from: u32, to: u32) -> &str {
        self.text.get(from as usize..to as usize).unwrap_or("")
    }

    /// Attributes in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|a| {
            (
                self.slice(a.name_start, a.name_end),
                self.slice(a.value_start, a.end),
            )
        })
    }

    /// How many attribute lines the request holds.
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// Adds an attribute, as a received `name=value` line would (tests and
    /// callers that build requests themselves).
    pub fn insert(&mut self, name: &str, value: &str) {
        let name_start = self.text.len();
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push('=');
        self.text.push_str(value);
        self.push_attr(name_start, name_end, name_end + 1);
    }

    fn push_attr(&mut self, name_start: usize, name_end: usize, value_start: usize) {
        // MAX_REQUEST bounds the text far below u32::MAX.
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.attrs.push(Attr {
            name_start: at(name_start),
            name_end: at(name_end),
            value_start: at(value_start),
            end: at(self.text.len()),
        });
    }

    pub fn stage(&self) -> Stage {
        Stage::parse(self.get("protocol_state"))
    }

    pub fn client_ip(&self) -> Option<IpAddr> {
        self.get("client_address").parse().ok()
    }

    /// The client's verified host name, or `None` for Postfix's `unknown`.
    pub fn client_name(&self) -> Option<&str> {
        Some(self.get("client_name")).filter(|n| !n.is_empty() && *n != "unknown")
    }

    pub fn reverse_client_name(&self) -> Option<&str> {
        Some(self.get("reverse_client_name")).filter(|n| !n.is_empty() && *n != "unknown")
    }

    pub fn helo(&self) -> &str {
        self.get("helo_name")
    }

    pub fn sender(&self) -> &str {
        self.get("sender")
    }

    pub fn recipient(&self) -> &str {
        self.get("recipient")
    }

    pub fn sasl_username(&self) -> &str {
        self.get("sasl_username")
    }
}

/// Why a request could not be read. The connection is closed after any.
#[derive(Debug, PartialEq)]
pub enum ProtocolError {
    LineTooLong,
    TooManyAttributes,
    RequestTooLarge,
    /// A line without `=`.
    Malformed(String),
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtocolError::LineTooLong => write!(f, "request line longer than {MAX_LINE} bytes"),
            ProtocolError::TooManyAttributes => {
                write!(f, "request with more than {MAX_ATTRIBUTES} attributes")
            }
            ProtocolError::RequestTooLarge => {
                write!(f, "request larger than {MAX_REQUEST} bytes")
            }
            ProtocolError::Malformed(l) => {
                write!(f, "malformed request line {l:?} (expected name=value)")
            }
        }
    }
}

/// Builds a request from lines as they arrive.
#[derive(Default)]
pub struct RequestBuilder {
    request: Request,
    /// Bytes of the request so far, as received.
    bytes: usize,
}

impl RequestBuilder {
    /// Whether no line of the next request has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty()
    }

    /// Feeds one line (without its newline). Returns the finished request
    /// at the empty line.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Request>, ProtocolError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.bytes = 0;
            // The next request gets room for one like this one.
            let next = Request {
                text: String::with_capacity(self.request.text.len()),
                attrs: Vec::with_capacity(self.request.attrs.len()),
            };
            return Ok(Some(std::mem::replace(&mut self.request, next)));
        }
        if line.len() > MAX_LINE {
            return Err(ProtocolError::LineTooLong);
        }
        // Checked on the raw bytes, before anything is converted or kept.
        self.bytes += line.len() + 1;
        if self.bytes > MAX_REQUEST {
            return Err(ProtocolError::RequestTooLarge);
        }
        if self.request.attrs.len() >= MAX_ATTRIBUTES {
            return Err(ProtocolError::TooManyAttributes);
        }

        // Appended as from_utf8_lossy would convert it, without a copy;
        // valid UTF-8 (Postfix's requests) in one go.
        let request = &mut self.request;
        let start = request.text.len();
        match std::str::from_utf8(line) {
            Ok(text) => request.text.push_str(text),
            Err(_) => {
                for chunk in line.utf8_chunks() {
                    request.text.push_str(chunk.valid());
                    if !chunk.invalid().is_empty() {
                        request.text.push(char::REPLACEMENT_CHARACTER);
                    }
                }
            }
        }
        // `=` is ASCII: its first byte is where the name ends.
        let eq = request.text.as_bytes()[start..]
            .iter()
            .position(|&b| b == b'=')
            .map(|i| start + i);
        let Some(eq) = eq else {
            let shown = request.text[start..].chars().take(80).collect();
            request.text.truncate(start);
            return Err(ProtocolError::Malformed(shown));
        };
        let raw_name = &request.text[start..eq];
        let name_start = start + (raw_name.len() - raw_name.trim_start().len());
        let name_end = start + raw_name.trim_end().len().max(name_start - start);
        request.push_attr(name_start, name_end, eq + 1);
        Ok(None)
    }
}

/// Formats the answer block; newlines in the text are flattened so a
/// reply can never inject a second attribute.
pub fn answer(action: &str) -> String {
    let mut out = String::with_capacity(action.len() + 9);
    push_answer(&mut out, action);
    out
}

/// [`answer`], appended to `out` (a connection reuses one buffer).
pub fn push_answer(out: &mut String, action: &str) {
    out.push_str("action=");
    if action.contains(['\n', '\r']) {
        out.push_str(&action.replace(['\n', '\r'], " "));
    } else {
        out.push_str(action);
    }
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_requests_and_ignores_unknown_attributes() {
        let mut b = RequestBuilder::default();
        for l in [
            "request=smtpd_access_policy",
            "protocol_state=RCPT",
            "client_address=192.0.2.1",
            "future_attr=x=y",
        ] {
            assert_eq!(b.line(l.as_bytes()).unwrap().map(|_| ()), None);
        }
        let r = b.line(b"").unwrap().unwrap();
        assert_eq!(r.stage(), Stage::Rcpt);
        assert_eq!(r.client_ip(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(r.get("future_attr"), "x=y");
        assert_eq!(r.client_name(), None);
        // The builder is ready for the next request on the same connection.
        b.line(b"protocol_state=DATA").unwrap();
        assert_eq!(b.line(b"").unwrap().unwrap().stage(), Stage::Data);
    }

    #[test]
    fn hostile_input_is_refused() {
        let mut b = RequestBuilder::default();
        assert!(matches!(
            b.line(b"no equals sign"),
            Err(ProtocolError::Malformed(_))
        ));
        assert!(matches!(
            b.line(&vec![b'a'; MAX_LINE + 1]),
            Err(ProtocolError::LineTooLong)
        ));
        let mut b = RequestBuilder::default();
        for i in 0..MAX_ATTRIBUTES {
            b.line(format!("a{i}=1").as_bytes()).unwrap();
        }
        assert!(matches!(
            b.line(b"one=more"),
            Err(ProtocolError::TooManyAttributes)
        ));
    }

    /// Lines of invalid UTF-8 count as received: a request stops at
    /// MAX_REQUEST bytes, long before 256 lines of 8 KiB (2 MiB, 6 MiB once
    /// each 0xFF became a replacement character) are kept.
    #[test]
    fn a_request_is_capped_in_bytes_before_conversion() {
        let mut b = RequestBuilder::default();
        let mut kept = 0;
        let err = (0..MAX_ATTRIBUTES)
            .find_map(|i| {
                let mut line = format!("a{i:03}=").into_bytes();
                line.resize(MAX_LINE, 0xFF);
                match b.line(&line) {
                    Ok(_) => {
                        kept += line.len();
                        None
                    }
                    Err(e) => Some(e),
                }
            })
            .expect("refused before the attribute cap");
        assert_eq!(err, ProtocolError::RequestTooLarge);
        assert!(kept <= MAX_REQUEST, "{kept}");
        let held = b.request.text.len();
        assert!(held <= 3 * MAX_REQUEST, "{held}");
        // The count starts over with each request.
        let mut b = RequestBuilder::default();
        for _ in 0..3 * MAX_REQUEST / 100 {
            b.line(&[b'x'; 98].iter().chain(b"=y").copied().collect::<Vec<u8>>())
                .unwrap();
            assert!(b.line(b"").unwrap().is_some());
        }
    }

    /// Names are trimmed, values kept as sent (`=` included), the last of
    /// a repeated name wins, invalid UTF-8 becomes U+FFFD, as before.
    #[test]
    fn attributes_read_as_sent() {
        let mut b = RequestBuilder::default();
        for l in [
            &b"  sender \t=a@x.example"[..],
            b"recipient=",
            b"x==y=",
            b"sender=b@x.example",
            b"bad=\xff\xfeok",
            b"=anonymous",
        ] {
            assert!(b.line(l).unwrap().is_none());
        }
        let r = b.line(b"").unwrap().unwrap();
        assert_eq!(r.get("sender"), "b@x.example");
        assert!(r.contains("recipient") && r.get("recipient").is_empty());
        assert!(!r.contains("helo_name") && r.get("helo_name").is_empty());
        assert_eq!(r.get("x"), "=y=");
        assert_eq!(r.get("bad"), "\u{fffd}\u{fffd}ok");
        assert_eq!(r.get(""), "anonymous");
        assert_eq!(r.len(), 6);
        assert_eq!(
            r.iter().next(),
            Some(("sender", "a@x.example")),
            "names trimmed"
        );
        // A malformed line leaves nothing of itself behind.
        let mut b = RequestBuilder::default();
        b.line(b"a=1").unwrap();
        assert_eq!(
            b.line(b"no equals \xff").err(),
            Some(ProtocolError::Malformed("no equals \u{fffd}".into()))
        );
        assert_eq!(b.request.text, "a=1");
        let mut built = Request::default();
        built.insert("client_address", "192.0.2.1");
        assert_eq!(built.client_ip(), Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn answers_cannot_be_split() {
        assert_eq!(answer("DUNNO"), "action=DUNNO\n\n");
        assert_eq!(answer("REJECT a\nb"), "action=REJECT a b\n\n");
    }
}
