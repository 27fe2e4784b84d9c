//! The message digest that makes learning idempotent: the same message
//! learned twice is recognised, whatever Received lines were added between.

use mail_parser::Message;
use sha2::{Digest as _, Sha256};

/// 128 bits of SHA-256 over the Message-ID and the undecoded body (or, for a
/// message without a Message-ID, the From, Subject and Date and the body).
/// Delivery adds header lines on top and never touches these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 16]);

impl Digest {
    pub fn of(message: &Message<'_>) -> Digest {
        let mut h = Sha256::new();
        match message.message_id() {
            Some(id) => {
                h.update(b"mid\0");
                h.update(id.trim().as_bytes());
            }
            None => {
                h.update(b"hdr\0");
                for name in ["From", "Subject", "Date"] {
                    let v = message.header_raw(name).unwrap_or("").trim();
                    h.update(v.as_bytes());
                    h.update(b"\0");
                }
            }
        }
        h.update(b"\0body\0");
        let raw = message.raw_message();
        let start = message
            .parts
            .first()
            .map_or(raw.len(), |p| p.offset_body as usize)
            .min(raw.len());
        h.update(&raw[start..]);
        let full = h.finalize();
        let mut d = [0u8; 16];
        d.copy_from_slice(&full[..16]);
        Digest(d)
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(raw: &str) -> Digest {
        Digest::of(&mxguard_message::parse(raw.as_bytes()).unwrap())
    }

    #[test]
    fn stable_under_added_headers_and_distinct_otherwise() {
        let a = d("Message-ID: <1@x>\r\nSubject: hi\r\n\r\nbody\r\n");
        let b = d("Received: from x by y\r\nMessage-ID: <1@x>\r\nSubject: hi\r\n\r\nbody\r\n");
        assert_eq!(a, b);
        assert_ne!(a, d("Message-ID: <2@x>\r\nSubject: hi\r\n\r\nbody\r\n"));
        assert_ne!(a, d("Message-ID: <1@x>\r\nSubject: hi\r\n\r\nother\r\n"));
        assert_ne!(d("Subject: a\r\n\r\nb\r\n"), d("Subject: c\r\n\r\nb\r\n"));
        assert_eq!(a.hex().len(), 32);
    }
}
