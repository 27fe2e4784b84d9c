//! Classify and learn throughput on one core, messages held in memory:
//!
//! ```text
//! cargo run --release -p mxguard-learn --example throughput -- [DATA_DIR]
//! ```
//!
//! Reports messages/second for: MIME parsing alone (the scanner does it
//! anyway), feature extraction from a parsed message, scoring, classify =
//! extraction + scoring (what the BAYES check adds to a scan), classify
//! including the parse, and learning (extraction + model update, in memory).

use mxguard_learn::corpus::{files, strip_mbox_line};
use mxguard_learn::{Model, extract};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("MXGUARD_TESTDATA").unwrap_or_else(|_| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata").into()
            }))
            .join("corpus-dev")
        });
    let mut msgs: Vec<(Vec<u8>, bool)> = Vec::new();
    for (sub, spam) in [("ham", false), ("spam", true)] {
        for f in files(&[dir.join(sub)]).expect("corpus") {
            let raw = std::fs::read(&f).expect("read");
            msgs.push((strip_mbox_line(&raw).to_vec(), spam));
        }
    }
    let n = msgs.len();
    let bytes: usize = msgs.iter().map(|m| m.0.len()).sum();
    println!("{n} messages, {:.1} MB, one thread", bytes as f64 / 1e6);
    let rounds = 3;
    let rate = |what: &str, secs: f64| {
        println!(
            "{what:<40} {:>9.0} messages/s  ({:.1} µs each)",
            (n * rounds) as f64 / secs,
            secs * 1e6 / (n * rounds) as f64
        );
    };

    let reference = mxguard_learn::parse::mail_parser_reference();
    let t = Instant::now();
    for _ in 0..rounds {
        for (raw, _) in &msgs {
            black_box(reference.parse(raw));
        }
    }
    rate(
        "parse, mail-parser decoding the bodies",
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    for _ in 0..rounds {
        for (raw, _) in &msgs {
            black_box(mxguard_learn::parse(raw));
        }
    }
    rate("parse (mxguard_learn::parse)", t.elapsed().as_secs_f64());

    let parsed: Vec<_> = msgs
        .iter()
        .map(|(raw, _)| mxguard_learn::parse(raw).unwrap_or_default())
        .collect();
    let t = Instant::now();
    for _ in 0..rounds {
        for m in &parsed {
            black_box(extract(m));
        }
    }
    rate(
        "extract features (parsed message)",
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    for _ in 0..rounds {
        for m in &parsed {
            black_box(mxguard_learn::tokenize::text_parts(m));
        }
    }
    rate(
        "  of which: decoded text (HTML to text)",
        t.elapsed().as_secs_f64(),
    );
    let texts: Vec<_> = parsed
        .iter()
        .map(mxguard_learn::tokenize::text_parts)
        .collect();
    let t = Instant::now();
    for _ in 0..rounds {
        for (m, tx) in parsed.iter().zip(&texts) {
            black_box(mxguard_learn::extract_with_text(m, tx, None));
        }
    }
    rate(
        "  extract given decoded text (scan check)",
        t.elapsed().as_secs_f64(),
    );

    // A trained model, as a scanner holds it.
    let mut model = Model::default();
    let feats: Vec<_> = parsed.iter().map(extract).collect();
    for (f, (_, spam)) in feats.iter().zip(&msgs) {
        model.learn(f, *spam);
    }
    let scan_model = model.for_scanning();
    let t = Instant::now();
    for _ in 0..rounds {
        for f in &feats {
            black_box(scan_model.probability(f));
        }
    }
    rate("score (features given)", t.elapsed().as_secs_f64());

    let t = Instant::now();
    for _ in 0..rounds {
        for m in &parsed {
            black_box(scan_model.probability(&extract(m)));
        }
    }
    rate("classify = extract + score", t.elapsed().as_secs_f64());

    let t = Instant::now();
    for _ in 0..rounds {
        for (raw, _) in &msgs {
            let m = mxguard_learn::parse(raw).unwrap_or_default();
            black_box(scan_model.probability(&extract(&m)));
        }
    }
    rate("classify including the parse", t.elapsed().as_secs_f64());

    let t = Instant::now();
    for _ in 0..rounds {
        let mut m = Model::default();
        for (raw, spam) in &msgs {
            let p = mxguard_learn::parse(raw).unwrap_or_default();
            m.learn(&extract(&p), *spam);
        }
        black_box(m);
    }
    rate(
        "learn = parse + extract + update",
        t.elapsed().as_secs_f64(),
    );
}
