//! The features of a message are the same whether the extractor parses
//! the Received fields itself or is handed the message model's parse of
//! them (`Mail::received`, what a scan does): on every message of
//! corpus-dev and phishing-dev, and with more fields than the model keeps.

use mxguard_message::Mail;

fn same(raw: &[u8], what: &str) {
    let mail = Mail::new(raw, u64::MAX);
    let text = mail.text_parts();
    let own = mxguard_learn::extract_with_text(&mail.message, &text, Some("a@example.com"));
    let shared = mxguard_learn::extract_with_hops(
        &mail.message,
        &text,
        Some("a@example.com"),
        mail.received(),
    );
    assert_eq!(own, shared, "{what}");
}

#[test]
fn handed_received_fields_give_the_same_features_on_the_corpora() {
    let data = std::env::var("MXGUARD_TESTDATA").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata").into()
    });
    let mut compared = 0;
    for dir in ["corpus-dev/ham", "corpus-dev/spam", "phishing-dev/spam"] {
        let Ok(entries) = std::fs::read_dir(std::path::Path::new(&data).join(dir)) else {
            eprintln!("skipped: {data}/{dir} not found (set MXGUARD_TESTDATA)");
            continue;
        };
        for e in entries.flatten() {
            let Ok(raw) = std::fs::read(e.path()) else {
                continue;
            };
            same(&raw, &e.path().display().to_string());
            compared += 1;
        }
    }
    eprintln!("compared {compared} messages");
}

#[test]
fn fields_past_the_models_bound_are_parsed_by_the_extractor() {
    // More Received fields than `mxguard_message::mail::MAX_HOPS`, most of
    // them not understood (empty hops do not count towards the
    // extractor's 20), the relay that handed the message over last.
    let mut raw = String::new();
    for _ in 0..mxguard_message::mail::MAX_HOPS + 10 {
        raw.push_str("Received: ???\r\n");
    }
    raw.push_str(
        "Received: from relay.example.net (relay.example.net [198.51.100.7]) by mx.example.org\r\n",
    );
    raw.push_str("From: a@example.com\r\nSubject: hops\r\n\r\nbody\r\n");
    same(raw.as_bytes(), "many hops");
    let mail = Mail::new(raw.as_bytes(), u64::MAX);
    assert_eq!(mail.received().len(), mxguard_message::mail::MAX_HOPS);
    let names = mxguard_learn::explain(&mail.message);
    assert!(
        names.iter().any(|n| n.contains("example.net")),
        "the hop past the bound gives features: {names:?}"
    );
}
