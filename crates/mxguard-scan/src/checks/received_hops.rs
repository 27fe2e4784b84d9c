//! Received hops: fields whose shape no MTA writes. Only the syntax of the
//! fields is judged, never what they claim (a hop before ours can write
//! anything), and no verdict another receiver wrote is read.

use super::Check;
use crate::Task;
use mail_parser::HeaderName;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::received::Host;

const GROUP: &str = "received";

/// The most Received fields looked at (as [`mxguard_message::mail::MAX_HOPS`]).
const MAX_FIELDS: usize = 64;

pub struct ReceivedHops;

impl Check for ReceivedHops {
    fn name(&self) -> &'static str {
        "received_hops"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "RCVD_ILLEGAL_CHARS",
                4.0,
                GROUP,
                "A Received field has bytes outside ASCII",
            ),
            SymbolDef::new(
                "RCVD_HELO_USER",
                3.0,
                GROUP,
                "A hop's HELO is the word \"user\"",
            ),
            SymbolDef::new("RCVD_COUNT_ZERO", 0.0, GROUP, "No Received field at all"),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        let mut fields = 0usize;
        let mut illegal = false;
        for h in task
            .headers()
            .iter()
            .filter(|h| h.name == HeaderName::Received)
            .take(MAX_FIELDS)
        {
            fields += 1;
            let raw = task
                .raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            illegal |= has_illegal_byte(raw);
        }
        if fields == 0 {
            results.insert("RCVD_COUNT_ZERO", vec![]);
            return;
        }
        if illegal {
            results.insert("RCVD_ILLEGAL_CHARS", vec![]);
        }
        let helo_user = task.received().iter().any(|hop| {
            [hop.helo, hop.from]
                .into_iter()
                .flatten()
                .filter_map(Host::name)
                .any(|n| n.eq_ignore_ascii_case("user"))
        });
        if helo_user {
            results.insert("RCVD_HELO_USER", vec![]);
        }
    }
}

/// Whether `raw` has a byte no header field may hold: one outside ASCII,
/// or a control other than CR, LF and tab. Eight bytes at a time (most
/// fields have neither, and every field is looked at), the bytes of a word
/// with a control in it one by one.
fn has_illegal_byte(raw: &[u8]) -> bool {
    const LOW: u64 = u64::from_ne_bytes([0x20; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let byte = |b: u8| b >= 0x80 || (b < 0x20 && !matches!(b, b'\r' | b'\n' | b'\t'));
    let mut words = raw.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_ne_bytes(w.try_into().unwrap_or_default());
        if x & HIGH != 0 {
            return true;
        }
        // A byte below 0x20 (none is 0x80 or above here): its subtraction
        // borrows into its top bit.
        if x.wrapping_sub(LOW) & HIGH != 0 && w.iter().any(|&b| byte(b)) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn scan(raw: &[u8]) -> Vec<String> {
        let env = Envelope::default();
        let task = Task::new(&env, raw, 1 << 20);
        let mut r = ScanResults::default();
        ReceivedHops.run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn hops() {
        let ok = b"Received: from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.org with ESMTPS id 1; Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: a@example.com\r\n\r\nx\r\n";
        assert!(scan(ok).is_empty());
        assert_eq!(
            scan(b"From: a@example.com\r\n\r\nx\r\n"),
            vec!["RCVD_COUNT_ZERO"]
        );
        let user = b"Received: from user (unknown [192.0.2.1]) by mx.example.org; Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: a@example.com\r\n\r\nx\r\n";
        assert_eq!(scan(user), vec!["RCVD_HELO_USER"]);
        let illegal = "Received: from h\u{e9}.example (x [192.0.2.1]) by mx.example.org; Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: a@example.com\r\n\r\nx\r\n";
        assert_eq!(scan(illegal.as_bytes()), vec!["RCVD_ILLEGAL_CHARS"]);
    }

    #[test]
    fn illegal_bytes_at_every_position_and_value() {
        let reference = |raw: &[u8]| {
            raw.iter()
                .any(|b| *b >= 0x80 || (*b < 0x20 && !b"\r\n\t".contains(b)))
        };
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut raw = vec![b'a'; len];
                    raw[at] = b;
                    assert_eq!(has_illegal_byte(&raw), reference(&raw), "{raw:?}");
                    raw[len - 1 - at] = b'\n';
                    assert_eq!(has_illegal_byte(&raw), reference(&raw), "{raw:?}");
                }
            }
        }
    }
}
