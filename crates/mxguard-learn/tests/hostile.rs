//! Hostile shapes through everything that walks message content (the
//! parse, the Received parser, HTML reduction, the feature extractor, the
//! learner's sample), each on a thread with a 2 MiB stack as the milter's
//! blocking pool has: recursion per level of input would overflow it, and a
//! stack overflow aborts the process (no `catch_unwind` catches it).

use mxguard_learn::persist::Sample;
use mxguard_message::parse::{Limits, parse_bounded};
use mxguard_message::received::Hop;

/// Runs `f` on a thread with a 2 MiB stack.
fn small_stack(name: &str, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap_or_else(|_| panic!("{name} panicked"));
}

/// Parses, extracts features, reduces HTML, makes the learner's sample and
/// drops it all: what a scan and a learn do with a message.
fn everything(raw: &[u8]) {
    let m = mxguard_message::parse(raw).unwrap_or_default();
    let text = mxguard_message::text::text_parts(&m);
    let _ = mxguard_learn::extract_with_text(&m, &text, Some("a@example.com"));
    let _ = mxguard_learn::explain(&m);
    drop(text);
    drop(m);
    let _ = Sample::from_raw(raw);
}

/// Issue 11's reproduction: 33,000 nested messages in 949 KB aborted
/// `mxguard scan` and `mxguard learn` while the tree was dropped.
#[test]
fn depth_33000_message_parses_and_learns_on_a_small_stack() {
    small_stack("deep message", || {
        let mut raw = b"Content-Type:message/rfc822\n\n".repeat(33_000);
        raw.extend(b"x\n");
        everything(&raw);
    });
}

#[test]
fn deep_multiparts_and_encoded_messages_on_a_small_stack() {
    small_stack("deep multipart", || {
        let n = 50_000;
        let mut raw = Vec::new();
        for i in 0..n {
            raw.extend(format!("Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n").bytes());
        }
        raw.extend(b"Content-Type: text/html\n\n<p>deep</p>\n");
        for i in (0..n).rev() {
            raw.extend(format!("--b{i}--\n").bytes());
        }
        everything(&raw);

        // Nested messages in a digest (a part with no Content-Type is a
        // message there), each level its own multipart.
        let mut raw = Vec::new();
        for _ in 0..20_000 {
            raw.extend(b"Content-Type: multipart/digest; boundary=d\n\n--d\n\n");
        }
        everything(&raw);
    });
}

#[test]
fn deep_html_on_a_small_stack() {
    small_stack("deep html", || {
        for html in [
            "<div>".repeat(200_000),
            "<!--".repeat(200_000),
            "<a href=\"http://x.example/\">".repeat(100_000),
            "<<<<<<<<".repeat(100_000),
            "&amp;".repeat(200_000),
            "<head><style><script><template>".repeat(50_000),
        ] {
            let raw = format!("Content-Type: text/html\n\n{html}</div>\n");
            everything(raw.as_bytes());
            let raw = format!(
                "Content-Type: multipart/alternative; boundary=x\n\n--x\nContent-Type: text/html\n\n{html}\n--x--\n"
            );
            everything(raw.as_bytes());
        }
    });
}

/// Header fields mail-parser parses itself: comments, groups, quotes,
/// encoded words, angle brackets, content-type parameters, dates, ids; and
/// Received, which mxguard parses.
#[test]
fn hostile_header_fields_on_a_small_stack() {
    small_stack("hostile headers", || {
        let n = 200_000;
        let values = [
            "(".repeat(n),
            "(".repeat(n) + &")".repeat(n),
            "a:".repeat(n),
            "a:b;".repeat(n),
            "\"".repeat(n),
            "<".repeat(n),
            "<a@b>".repeat(n),
            "\\".repeat(n),
            "=?utf-8?q?a?= ".repeat(n / 8),
            "=?utf-8?b?".repeat(n / 8),
            "a@b, ".repeat(n / 4),
            "; a=b".repeat(n / 4),
            "; a*0=b; a*1=c".repeat(n / 8),
            "[".repeat(n),
        ];
        for v in &values {
            let mut raw = String::new();
            for name in [
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "References",
                "Keywords",
                "Content-Type",
                "Content-Disposition",
                "Received",
                "Return-Path",
                "List-Unsubscribe",
            ] {
                raw.push_str(&format!("{name}: {v}\n"));
            }
            raw.push_str("\nbody\n");
            everything(raw.as_bytes());
            let _ = Hop::parse(format!("from {v} by {v} with {v} id {v}").as_bytes());
        }
    });
}

/// Many parts and many header fields: parsed within the limits, past them
/// left out.
#[test]
fn many_parts_and_header_fields_stay_within_the_limits() {
    small_stack("many parts", || {
        let limits = Limits::DEFAULT;
        let mut raw = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
        raw.extend(b"--b\nX-A: 1\n\nx\n".repeat(200_000));
        raw.extend(b"--b--\n");
        let p = parse_bounded(&raw, &limits);
        assert!(p.truncated.parts);
        assert!(p.message.as_ref().unwrap().parts.len() <= limits.max_parts);
        everything(&raw);

        let mut raw = b"a:b\n".repeat(500_000);
        raw.extend(b"\nbody\n");
        let p = parse_bounded(&raw, &limits);
        assert!(p.truncated.headers);
        assert_eq!(
            p.message.as_ref().unwrap().headers().len(),
            limits.max_part_headers
        );
        everything(&raw);
    });
}
