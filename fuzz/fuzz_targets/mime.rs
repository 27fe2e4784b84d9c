//! The MIME parse and every check behind it: one message (the fuzz input)
//! through the scan pipeline of a config with header/body/rawbody/filename
//! rules and a trained classifier (which extracts the learner's features),
//! then the message model's views (URLs, attachments, Received hops).
//! Any panic (even one the pipeline would catch), abort, stack overflow or
//! memory blow-up is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxguard_core::Envelope;
use mxguard_scan::{Pipeline, Services};
use std::sync::{Arc, OnceLock};

const CONFIG: &str = r#"
[classifier]
min_learns = 1

[[rules]]
name = "FUZZ_SUBJECT"
target = "subject"
pattern = "/win|prize/i"

[[rules]]
name = "FUZZ_HEADER"
target = "header"
header = "X-Mailer"
pattern = "mailer"

[[rules]]
name = "FUZZ_RAW_HEADER"
target = "header"
header = "From"
raw = true
pattern = "=\\?"

[[rules]]
name = "FUZZ_BODY"
target = "body"
pattern = "/click here/i"

[[rules]]
name = "FUZZ_RAWBODY"
target = "rawbody"
pattern = "base64"

[[rules]]
name = "FUZZ_FILENAME"
target = "filename"
pattern = "\\.exe$"

[[rules]]
name = "FUZZ_CT"
target = "content_type"
pattern = "^application/"
"#;

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let config = mxguard_core::config::load_str(CONFIG, "fuzz.toml", &mxguard_scan::sections())
            .expect("fuzz config");
        let mut model = mxguard_learn::Model::new(16);
        for (raw, spam) in [
            (
                &b"Subject: win a prize\r\n\r\nclick here http://win.example/\r\n"[..],
                true,
            ),
            (
                &b"Subject: meeting notes\r\n\r\nsee you tomorrow\r\n"[..],
                false,
            ),
        ] {
            let m = mxguard_message::parse(raw).expect("seed message");
            model.learn(&mxguard_learn::extract(&m), spam);
        }
        let handle = mxguard_learn::ModelHandle::empty();
        handle.set(Arc::new(model), 1);
        let services = Services {
            classifier: Some(handle),
            ..Services::default()
        };
        let loaded = mxguard_core::config::LoadedConfig {
            config,
            ..Default::default()
        };
        let (pipeline, _) = Pipeline::new(&loaded, &services).expect("fuzz pipeline");
        pipeline
    })
}

fuzz_target!(|data: &[u8]| {
    let envelope = Envelope {
        ip: Some("192.0.2.1".parse().unwrap()),
        helo: Some("mx.example".into()),
        mail_from: Some("<a@example.org>".into()),
        rcpts: vec!["<b@example.net>".into()],
        ..Default::default()
    };
    // The classifier check extracts the learner's features on the way.
    let verdict = pipeline().scan_blocking(&envelope, data);
    assert!(!verdict.score.is_nan());
    // The message model's views no check computes yet.
    let mail = mxguard_message::Mail::new(data, u64::MAX);
    assert!(mail.urls().len() <= mxguard_message::mail::MAX_URLS);
    for a in mail.attachments() {
        assert_eq!(a.size, a.bytes.len());
    }
    assert!(mail.received().len() <= mxguard_message::mail::MAX_HOPS);
});
