//! `mxguard_learn::parse` (mail-parser's structure, mxguard's body
//! decoders) gives the same `Message` as mail-parser decoding the bodies
//! itself, on every message of corpus-dev and of the MIME samples
//! (RFC, malformed and odd messages from mail-parser's and CPython's test
//! suites).

use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/testdata"
            ))
        })
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn same_message_as_mail_parser() {
    let root = testdata();
    let mut files = Vec::new();
    for sub in ["corpus-dev", "mime-samples"] {
        walk(&root.join(sub), &mut files);
    }
    if files.len() < 4000 {
        eprintln!(
            "SKIPPED: corpus-dev and mime-samples not found under {} (set MXGUARD_TESTDATA); the parse comparison did not run",
            root.display()
        );
        return;
    }
    files.sort();
    let reference = mxguard_learn::parse::mail_parser_reference();
    let mut differ = Vec::new();
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let ours = mxguard_learn::parse(&raw);
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
