//! Symbols for a message the MIME parse did not follow to the end because
//! it went past the parse's bounds (`mxguard_message::parse::Limits`): nested
//! deeper than 64 levels, more than 1,024 parts, more header fields than
//! 1,024 in a part or 8,192 in all, more than 512 KiB of structured header
//! fields, or boundaries missing so often that searching for them would
//! read the message more than 8 times. Real mail is far below every one (corpus-dev,
//! phishing-dev and the MIME samples: at most 5 levels, 30 parts, 150
//! fields and 18 KB of header), and what is past them is not scanned, so
//! each adds to the score. Always on: the bounds cannot be turned off.

use super::Check;
use crate::Task;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::parse::Limits;

pub struct MimeLimits;

impl Check for MimeLimits {
    fn name(&self) -> &'static str {
        "mime_limits"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "MIME_TOO_DEEP",
                3.0,
                "mime",
                "MIME parts nested too deep: the deeper parts were not parsed",
            ),
            SymbolDef::new(
                "MIME_TOO_MANY_PARTS",
                2.0,
                "mime",
                "Too many MIME parts: the ones past the limit were not parsed",
            ),
            SymbolDef::new(
                "MIME_TOO_MANY_HEADERS",
                2.0,
                "mime",
                "Too many header fields: the ones past the limit were not parsed",
            ),
            SymbolDef::new(
                "MIME_MISSING_BOUNDARIES",
                2.0,
                "mime",
                "Many multiparts whose boundary never appears: the rest was not parsed",
            ),
            SymbolDef::new(
                "MIME_HEADERS_TOO_LONG",
                2.0,
                "mime",
                "Too many bytes of structured header fields: the rest were kept as raw text",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        let t = task.truncated;
        let limits = Limits::DEFAULT;
        for (hit, name, limit) in [
            (t.depth, "MIME_TOO_DEEP", limits.max_depth),
            (t.parts, "MIME_TOO_MANY_PARTS", limits.max_parts),
            (t.headers, "MIME_TOO_MANY_HEADERS", limits.max_headers),
            (
                t.header_bytes,
                "MIME_HEADERS_TOO_LONG",
                limits.max_structured_header_bytes,
            ),
            (
                t.boundary_search,
                "MIME_MISSING_BOUNDARIES",
                limits.max_boundary_search,
            ),
        ] {
            if hit {
                results.insert(name, vec![limit.to_string()]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn names(raw: &[u8]) -> Vec<String> {
        let env = Envelope::default();
        let task = Task::new(&env, raw, 1 << 30);
        assert!(task.parsed);
        let mut r = ScanResults::default();
        MimeLimits.run(&task, &mut r);
        r.hits.iter().map(|h| h.name.clone()).collect()
    }

    #[test]
    fn a_normal_message_has_none() {
        assert!(
            names(
                b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                --b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn each_limit_has_its_symbol() {
        let deep = b"Content-Type: message/rfc822\n\n".repeat(100);
        assert_eq!(names(&deep), ["MIME_TOO_DEEP"]);

        let mut parts = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
        parts.extend(b"--b\n\nx\n".repeat(2000));
        parts.extend(b"--b--\n");
        assert_eq!(names(&parts), ["MIME_TOO_MANY_PARTS"]);

        let mut headers = b"a: b\n".repeat(2000);
        headers.extend(b"\nbody\n");
        assert_eq!(names(&headers), ["MIME_TOO_MANY_HEADERS"]);

        let mut long = b"To: ".to_vec();
        long.extend(b"a@example.com, ".repeat(40_000));
        long.extend(b"\n\nbody\n");
        assert_eq!(names(&long), ["MIME_HEADERS_TOO_LONG"]);

        let mut bogus = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
        for i in 0..1000 {
            bogus.extend(format!("--b\nContent-Type: multipart/mixed; boundary=n{i}\n\n").bytes());
        }
        bogus.extend(b"--b\n\n");
        bogus.extend(b"filler\n".repeat(100_000));
        assert_eq!(names(&bogus), ["MIME_MISSING_BOUNDARIES"]);
    }
}
