//! Every message of corpus-dev, phishing-dev and the MIME samples through
//! every view of the message model, on a thread with the milter's 2 MiB
//! stack: no panic, every view within its bound, and each view consistent
//! (a URL's registrable domain ends its host, an attachment's size is its
//! bytes', a safe name has no path).

use mxguard_message::Mail;
use mxguard_message::mail::{MAX_ATTACHMENTS, MAX_HOPS, MAX_URLS};
use std::path::PathBuf;

mod common;

use common::{files, testdata};

#[test]
fn the_test_corpora_go_through_every_view() {
    let root = testdata();
    let files: Vec<PathBuf> = files(&root, &["corpus-dev", "phishing-dev", "mime-samples"]);
    if files.len() < 4000 {
        eprintln!(
            "SKIPPED: corpus-dev, phishing-dev and mime-samples not found under {} (set MXGUARD_TESTDATA); the views were not run on them",
            root.display()
        );
        return;
    }
    let totals = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let (mut parsed, mut urls, mut attachments, mut detected, mut hops) = (0, 0, 0, 0, 0);
            let (mut most_urls, mut most_hops) = (0, 0);
            for f in &files {
                let raw = std::fs::read(f).unwrap();
                let m = Mail::new(&raw, u64::MAX);
                parsed += usize::from(m.parsed);
                let _ = m.text_parts();
                assert!(m.urls().len() <= MAX_URLS, "{}", f.display());
                for u in m.urls() {
                    assert!(
                        !u.host.is_empty() && !u.domain.is_empty(),
                        "{}",
                        f.display()
                    );
                    assert!(u.host.ends_with(&u.domain), "{}: {u:?}", f.display());
                }
                urls += m.urls().len();
                most_urls = most_urls.max(m.urls().len());
                for a in m.attachments() {
                    assert_eq!(a.size, a.bytes.len());
                    assert!(a.name.is_none_or(|n| !n.contains(['/', '\\', '\0'])));
                    detected += usize::from(a.detected.media_type().is_some());
                    attachments += 1;
                }
                assert!(m.attachments().len() <= MAX_ATTACHMENTS);
                assert!(m.received().len() <= MAX_HOPS);
                hops += m.received().iter().filter(|h| !h.is_empty()).count();
                most_hops = most_hops.max(m.received().len());
                let _ = (m.header_values("From"), m.logical_header_lines().count());
            }
            (
                files.len(),
                parsed,
                urls,
                most_urls,
                attachments,
                detected,
                hops,
                most_hops,
            )
        })
        .unwrap()
        .join()
        .unwrap();
    let (n, parsed, urls, most_urls, attachments, detected, hops, most_hops) = totals;
    eprintln!(
        "{n} messages ({parsed} parsed): {urls} URLs (at most {most_urls} in one), {attachments} attachments ({detected} of a detected type), {hops} Received hops (at most {most_hops} fields in one)"
    );
    assert!(parsed * 100 >= n * 99, "{parsed} of {n} parsed");
    assert!(urls > n && hops > n, "the views find what real mail has");
}

/// [`mxguard_message::html::html_to_text`] gives mail-parser's text, byte
/// for byte, on every HTML part of the corpora (the classifier's tokens
/// and the lure checks read it).
#[test]
fn html_text_is_mail_parsers_on_the_corpora() {
    let root = testdata();
    let files: Vec<PathBuf> = files(&root, &["corpus-dev", "phishing-dev", "mime-samples"]);
    if files.len() < 4000 {
        eprintln!(
            "SKIPPED: corpus-dev, phishing-dev and mime-samples not found under {} (set MXGUARD_TESTDATA); HTML text not compared",
            root.display()
        );
        return;
    }
    let mut compared = 0;
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let m = Mail::new(&raw, u64::MAX);
        for part in &m.message.parts {
            if let mail_parser::PartType::Html(h) = &part.body {
                assert_eq!(
                    mxguard_message::html::html_to_text(h),
                    mail_parser::decoders::html::html_to_text(h),
                    "{}",
                    f.display()
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000, "only {compared} HTML parts compared");
}
