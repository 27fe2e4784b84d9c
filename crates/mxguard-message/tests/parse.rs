//! `mxguard_message::parse` (mail-parser's structure, mxguard's body
//! decoders) gives the same `Message` as mail-parser decoding the bodies
//! itself, on every message of corpus-dev and of the MIME samples
//! (RFC, malformed and odd messages from mail-parser's and CPython's test
//! suites).

mod common;

use common::{files, testdata};

#[test]
fn same_message_as_mail_parser() {
    let root = testdata();
    let files = files(&root, &["corpus-dev", "mime-samples"]);
    if files.len() < 4000 {
        eprintln!(
            "SKIPPED: corpus-dev and mime-samples not found under {} (set MXGUARD_TESTDATA); the parse comparison did not run",
            root.display()
        );
        return;
    }
    let reference = mxguard_message::parse::mail_parser_reference();
    let mut differ = Vec::new();
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let ours = mxguard_message::parse(&raw);
        let theirs = reference.parse(&raw);
        if ours != theirs {
            differ.push(format!("{}: {}", f.display(), explain(&ours, &theirs)));
        }
    }
    eprintln!("{} messages compared, {} differ", files.len(), differ.len());
    assert!(differ.is_empty(), "differ: {differ:#?}");
}

/// Where two parses differ first (for the failure message).
fn explain(a: &Option<mail_parser::Message<'_>>, b: &Option<mail_parser::Message<'_>>) -> String {
    let (Some(a), Some(b)) = (a, b) else {
        return format!("parsed: {} vs {}", a.is_some(), b.is_some());
    };
    if a.parts.len() != b.parts.len() {
        return format!("{} parts vs {}", a.parts.len(), b.parts.len());
    }
    for (i, (p, q)) in a.parts.iter().zip(&b.parts).enumerate() {
        if p.headers != q.headers {
            let h = p.headers.iter().zip(&q.headers).find(|(x, y)| x != y);
            return format!("part {i} headers: {h:?}");
        }
        if (
            p.encoding,
            p.is_encoding_problem,
            p.offset_body,
            p.offset_end,
        ) != (
            q.encoding,
            q.is_encoding_problem,
            q.offset_body,
            q.offset_end,
        ) {
            return format!(
                "part {i}: {:?} vs {:?}",
                (
                    p.encoding,
                    p.is_encoding_problem,
                    p.offset_body,
                    p.offset_end
                ),
                (
                    q.encoding,
                    q.is_encoding_problem,
                    q.offset_body,
                    q.offset_end
                )
            );
        }
        if p.body != q.body {
            let (x, y) = (format!("{:?}", p.body), format!("{:?}", q.body));
            let at = x
                .bytes()
                .zip(y.bytes())
                .position(|(c, d)| c != d)
                .unwrap_or(x.len().min(y.len()));
            let lo = at.saturating_sub(40);
            return format!(
                "part {i} body at {at}: {:?} vs {:?}",
                x.get(lo..(at + 40).min(x.len())).unwrap_or(""),
                y.get(lo..(at + 40).min(y.len())).unwrap_or("")
            );
        }
    }
    format!(
        "lists: {:?} vs {:?}",
        (&a.text_body, &a.html_body, &a.attachments),
        (&b.text_body, &b.html_body, &b.attachments)
    )
}

/// Hostile MIME: corpus messages with bytes changed, dropped and repeated
/// where MIME is parsed (boundaries, header blocks, encoded bodies). The
/// parse never panics, and gives mail-parser's message.
#[test]
fn mutated_messages_parse_as_mail_parser_parses_them() {
    let root = testdata();
    let files = files(&root, &["mime-samples", "corpus-dev/spam"]);
    if files.len() < 1000 {
        eprintln!("SKIPPED: MIME samples not found under {}", root.display());
        return;
    }
    let reference = mxguard_message::parse::mail_parser_reference();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rand = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    const PIECES: [&[u8]; 8] = [
        b"--",
        b"\r\n",
        b"\n",
        b"=",
        b"==",
        b"\r\n\r\n",
        b"-",
        b"=\r\n",
    ];
    let (mut cases, mut differ) = (0, Vec::new());
    // More with PARSE_FUZZ=N (N mutations of every file instead of 4 of
    // every third).
    let deep: Option<usize> = std::env::var("PARSE_FUZZ")
        .ok()
        .and_then(|n| n.parse().ok());
    for f in files.iter().step_by(if deep.is_some() { 1 } else { 3 }) {
        let raw = std::fs::read(f).unwrap();
        for _ in 0..deep.unwrap_or(4) {
            let mut m = raw.clone();
            for _ in 0..1 + rand(4) {
                if m.is_empty() {
                    break;
                }
                let at = rand(m.len());
                match rand(4) {
                    0 => {
                        let end = (at + 1 + rand(16)).min(m.len());
                        m.drain(at..end);
                    }
                    1 => {
                        let p = PIECES[rand(PIECES.len())];
                        m.splice(at..at, p.iter().copied());
                    }
                    2 => m[at] = rand(256) as u8,
                    _ => {
                        let end = (at + 1 + rand(64)).min(m.len());
                        let copy = m[at..end].to_vec();
                        m.splice(at..at, copy);
                    }
                }
            }
            cases += 1;
            let (ours, theirs) = (mxguard_message::parse(&m), reference.parse(&m));
            if ours != theirs {
                if std::env::var_os("PARSE_DUMP").is_some() {
                    std::fs::write(format!("/tmp/parse-case-{cases}.eml"), &m).unwrap();
                }
                differ.push(format!(
                    "{} (case {cases}): {}",
                    f.display(),
                    explain(&ours, &theirs)
                ));
            }
        }
    }
    eprintln!("{cases} mutated messages, {} differ", differ.len());
    assert!(differ.is_empty(), "differ: {differ:#?}");
}

/// Real mail never reaches the parse's limits (so they change nothing for
/// it): corpus-dev, phishing-dev and the MIME samples, parsed and dropped
/// on a thread with the milter's 2 MiB stack.
#[test]
fn real_mail_is_within_the_limits() {
    let root = testdata();
    let files = files(&root, &["corpus-dev", "phishing-dev", "mime-samples"]);
    if files.len() < 4000 {
        eprintln!("SKIPPED: test data not found under {}", root.display());
        return;
    }
    let reached = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let limits = mxguard_message::parse::Limits::DEFAULT;
            let mut reached = Vec::new();
            for f in &files {
                let raw = std::fs::read(f).unwrap();
                let p = mxguard_message::parse::parse_bounded(&raw, &limits);
                if p.truncated.any() {
                    reached.push(format!("{}: {:?}", f.display(), p.truncated));
                }
            }
            reached
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(reached.is_empty(), "{reached:#?}");
}
