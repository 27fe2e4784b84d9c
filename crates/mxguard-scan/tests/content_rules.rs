//! The content rules (MIME and attachments, HTML, URL shape, brand
//! impersonation, lure language) through the whole pipeline with the
//! default config: what a user's scan shows for crafted phishing messages,
//! and how rarely each weighty rule fires on the real ham of corpus-dev (read from MXGUARD_TESTDATA; skipped, saying so,
//! when absent).

use mxguard_core::Envelope;
use mxguard_core::config::Config;
use mxguard_scan::Pipeline;
use mxguard_scan::checks::{
    BuildReport, Check, borrowed_hosting::BorrowedHosting, hash_busters::HashBusters,
    html_rules::HtmlRules, impersonation::Impersonation, lures::Lures, mime_types::MimeTypes,
    risky_offers::RiskyOffers, url_shape::UrlShape,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn content_symbols() -> Vec<(String, f64)> {
    let mut report = BuildReport::default();
    let checks: Vec<Box<dyn Check>> = vec![
        Box::new(MimeTypes::new(&Default::default())),
        Box::new(HtmlRules::new(&Default::default())),
        Box::new(UrlShape::new(&Config::default(), &mut report)),
        Box::new(Impersonation::new(&Default::default())),
        Box::new(Lures),
        Box::new(BorrowedHosting),
        Box::new(HashBusters),
        Box::new(RiskyOffers),
    ];
    checks
        .iter()
        .flat_map(|c| c.symbols())
        .map(|s| (s.name, s.weight))
        .collect()
}

fn b64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = ((c[0] as u32) << 16)
            | ((*c.get(1).unwrap_or(&0) as u32) << 8)
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// A stored zip with one entry, central directory and all.
fn zip_with(name: &str) -> Vec<u8> {
    let mut z = b"PK\x03\x04".to_vec();
    z.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend([0u8; 8]);
    z.extend((name.len() as u16).to_le_bytes());
    z.extend([0, 0]);
    z.extend(name.as_bytes());
    let cd = z.len() as u32;
    z.extend(b"PK\x01\x02");
    z.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    z.extend([0u8; 8]);
    z.extend((name.len() as u16).to_le_bytes());
    z.extend([0u8; 12]);
    z.extend(0u32.to_le_bytes());
    z.extend(name.as_bytes());
    let cd_len = z.len() as u32 - cd;
    z.extend(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    z.extend(cd_len.to_le_bytes());
    z.extend(cd.to_le_bytes());
    z.extend([0, 0]);
    z
}

#[test]
fn a_crafted_phishing_message_shows_each_family() {
    let html = "<html><body><p>Your mailbox is full. Sign in to keep your messages.</p>\
        <a href=\"&#104;ttps://login.example.com/\">Sign in</a> \
        <a href=\"https://login.micros0ft.example.top/\">Verify</a> \
        <a href=\"https://ipfs.io/ipfs/QmX/login.html\">Mailbox</a> \
        <form action=\"https://collect.example.com/p.php\" method=post>\
        <input name=email><input type=password name=pw></form></body></html>";
    let raw = format!(
        "From: IT <it@example.com>\r\nTo: u@example.org\r\nSubject: Mailbox full\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/html\r\n\r\n{html}\r\n\
         --b\r\nContent-Type: application/zip; name=\"docs.zip\"\r\n\
         Content-Disposition: attachment; filename=\"docs.zip\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        b64(&zip_with("Invoice.pdf.exe"))
    );
    let (p, _) = Pipeline::from_config(Default::default()).unwrap();
    let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
    assert_eq!(p.check_failures(), 0);
    for want in [
        "MIME_BAD_EXTENSION",
        "MIME_DOUBLE_BAD_EXTENSION",
        "R_SUSPICIOUS_URL",
        "HTML_FORM",
        "HTML_FORM_PASSWORD",
        "HAS_IPFS_GATEWAY_URL",
        "URL_SUSPICIOUS_TLD",
    ] {
        assert!(
            v.symbols.contains_key(want),
            "{want} missing: {:?}",
            v.symbols.keys()
        );
    }
    assert!(v.score >= 15.0, "{}", v.score);
}

#[test]
fn a_crafted_brand_lure_shows_the_phishing_rules() {
    // A display name broken by a comma, a brand on another domain, a
    // brand written with a capital I for l, an account lure linking away.
    let raw = "From: \"PayPal\", Service <no-reply@secure-notice.example.com>\r\n\
         To: u@example.org\r\nSubject: Your PayPaI account is limited\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n\
         <p>Your account has been limited. Verify your account information \
         <a href=\"https://restore.example.net/login\">here</a>.</p>\r\n";
    let (p, _) = Pipeline::from_config(Default::default()).unwrap();
    let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
    for want in [
        "MULTIPLE_FROM",
        "FROM_NAME_BRAND_MISMATCH",
        "BRAND_NAME_DISGUISED",
        "LURE_ACCOUNT",
    ] {
        assert!(
            v.symbols.contains_key(want),
            "{want} missing: {:?}",
            v.symbols.keys()
        );
    }
    assert!(v.score >= 6.0, "{}", v.score);
}

#[test]
fn a_crafted_offer_on_borrowed_hosting_shows_the_new_families() {
    // A casino offer from a pseudo-TLD sender, with a per-copy token in
    // the subject, its picture on an image-sharing site and its landing
    // page on a serverless endpoint.
    let raw = "From: Casino Rewards <lina_45139@offers4u.sa.com>\r\n\
         To: u@example.org\r\nSubject: Your bonus is waiting - J50Zq44KA22HpGX\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@offers4u.sa.com>\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n\
         <p><img src=\"https://i.imgur.com/AbCd123.png\"> CASINO welcome bonus: \
         200 free spins, no deposit needed. \
         <a href=\"https://b-a4qxna7jwq-rj.a.run.app/play\">Play</a></p>\r\n";
    let (p, _) = Pipeline::from_config(Default::default()).unwrap();
    let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
    for want in [
        "HTML_IMAGE_SHARING",
        "URL_SERVERLESS_APP",
        "FROM_SUSPICIOUS_TLD",
        "SUBJ_RANDOM_TOKEN",
        "GAMBLING_OFFER",
    ] {
        assert!(
            v.symbols.contains_key(want),
            "{want} missing: {:?}",
            v.symbols.keys()
        );
    }
    assert!(v.score >= 6.0, "{}", v.score);
    // Each check can be left out by its section.
    let config = mxguard_core::config::load_str(
        "[borrowed_hosting]\nenabled = false\n[hash_busters]\nenabled = false\n\
         [risky_offers]\nenabled = false\n",
        "t.toml",
        &mxguard_scan::sections(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let (p, _) = Pipeline::from_config(config).unwrap();
    let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
    for gone in [
        "HTML_IMAGE_SHARING",
        "URL_SERVERLESS_APP",
        "SUBJ_RANDOM_TOKEN",
        "GAMBLING_OFFER",
    ] {
        assert!(!v.symbols.contains_key(gone), "{gone} with its check off");
    }
    assert!(v.symbols.contains_key("FROM_SUSPICIOUS_TLD"));
}

#[test]
fn a_crafted_kit_lure_shows_the_greeting_and_header_families() {
    // A brand lure as a bulk kit sends it: a generated X-Mailer and
    // sender, a Message-ID with an oversized label, pictographs and a case
    // number in the display name, a template Reply-To, the reader greeted
    // by address in the HTML behind a placeholder plain version, and the
    // brand's logo from a stranger's uploads.
    let label = "Qw3rTy".repeat(12);
    let html = format!(
        "<p><img src=\"https://blog.example.net/wp-content/uploads/2020-Partners-Ledger.png\"></p>\
         <p>Hello jane@example.org,</p><p>{}</p>\
         <p><a href=\"https://update.example.net/firmware\">Update now</a></p>",
        "Your device needs a security update before it can be used again. ".repeat(12)
    );
    let raw = format!(
        "From: =?UTF-8?B?8J+boSBMZWRnZXIgWzk3NjAzMTExMzUwNDgyNzI1XQ==?= <ohHuKeI@sender.example.com>\r\n\
         Reply-To: no-reply@example.com\r\nTo: <jane@example.org>\r\nSubject: Security notice\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <a.b@{label}.example.edu>\r\n\
         X-Mailer: pyIaL\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=B\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThis is a plain-text message body\r\n\
         --B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--B--\r\n"
    );
    let (p, _) = Pipeline::from_config(Default::default()).unwrap();
    let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
    let want = [
        "XMAILER_RANDOM",
        "MID_RHS_LONG_LABEL",
        "FROM_NAME_EMOJI",
        "FROM_NAME_LONG_NUMBER",
        "FROM_LOCAL_RANDOM",
        "REPLYTO_RESERVED_DOMAIN",
        "MIME_MA_TEXT_PLACEHOLDER",
        "ADDRESS_AS_NAME",
        "FROM_NAME_BRAND_MISMATCH",
        "BRAND_LOGO_HOTLINKED",
    ];
    for name in want {
        assert!(
            v.symbols.contains_key(name),
            "{name} missing: {:?}",
            v.symbols.keys()
        );
    }
    assert!(v.score >= 6.0, "{}", v.score);
    // Each check can be left out by its section.
    let config = mxguard_core::config::load_str(
        "[address_greeting]\nenabled = false\n[kit_headers]\nenabled = false\n\
         [brand_logo]\nenabled = false\n[placeholder_text]\nenabled = false\n\
         [reply_diversion]\nenabled = false\n",
        "t.toml",
        &mxguard_scan::sections(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let (p, _) = Pipeline::from_config(config).unwrap();
    let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
    for name in want.iter().filter(|n| **n != "FROM_NAME_BRAND_MISMATCH") {
        assert!(!v.symbols.contains_key(*name), "{name} with its check off");
    }
    assert!(v.symbols.contains_key("FROM_NAME_BRAND_MISMATCH"));
}

#[test]
fn diverted_replies_and_millions_through_the_pipeline() {
    let raw = "From: Miss Stella Rose <stella22@gmail.com>\r\nReply-To: claims22@outlook.com\r\n\
         To: undisclosed-recipients:;\r\nSubject: Dear friend\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <CA1@mail.gmail.com>\r\n\r\n\
         I have deposited the US$5,000,000.00 with the security company.\r\n";
    let (p, _) = Pipeline::from_config(Default::default()).unwrap();
    let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
    for name in ["FREEMAIL_REPLYTO", "FREEMAIL_REPLYTO_MILLIONS"] {
        assert!(
            v.symbols.contains_key(name),
            "{name} missing: {:?}",
            v.symbols.keys()
        );
    }
}

#[test]
fn weighty_rules_stay_rare_on_corpus_dev_ham() {
    let base = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    let dir = base.join("corpus-dev/ham");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!(
            "skipping: {} not found (set MXGUARD_TESTDATA)",
            dir.display()
        );
        return;
    };
    let weighty: BTreeMap<String, f64> = content_symbols()
        .into_iter()
        .filter(|(_, w)| *w >= 2.0)
        .collect();
    let (p, _) = Pipeline::from_config(Default::default()).unwrap();
    let mut hits: BTreeMap<&str, usize> = BTreeMap::new();
    let mut n = 0usize;
    for e in entries.flatten() {
        let Ok(raw) = std::fs::read(e.path()) else {
            continue;
        };
        n += 1;
        let v = p.scan_blocking(&Envelope::default(), &raw);
        for name in weighty.keys() {
            if v.symbols.contains_key(name) {
                *hits.entry(name.as_str()).or_default() += 1;
            }
        }
    }
    assert!(n > 1000, "corpus-dev ham has {n} messages");
    assert_eq!(p.check_failures(), 0);
    // Each rule worth 2 or more may fire on at most 0.3% of ham: alone it
    // cannot reach add_header, but with a doubtful classifier it must not
    // tip ham over.
    for (name, count) in &hits {
        assert!(
            *count * 1000 <= n * 3,
            "{name} fired on {count} of {n} ham messages: {hits:?}"
        );
    }
}
