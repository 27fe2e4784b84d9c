//! Classify and learn throughput on one core, messages held in memory:
//!
//! ```text
//! cargo run --release -p mxguard-learn --example throughput -- [DATA_DIR]
//! ```
//!
//! Reports messages/second for: the MIME parse (mail-parser decoding the
//! bodies itself, and [`mxguard_message::parse`], which the scanner does once
//! for every check), feature extraction from a parsed message, scoring,
//! classify = extraction + scoring (what the BAYES check adds to a scan),
//! classify including the parse (from raw bytes to a probability), and
//! learning (parse + extraction + model update, in memory).
//!
//! Each figure is the median of `PASSES` passes over the corpus (the
//! fastest in brackets): the machines this runs on are shared, and single
//! passes swing by a third.

use mxguard_learn::corpus::{files, strip_mbox_line};
use mxguard_learn::{Model, extract};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

const PASSES: usize = 7;

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
    println!(
        "{n} messages, {:.1} MB, one thread; median of {PASSES} passes (fastest)",
        bytes as f64 / 1e6
    );
    // Runs `pass` PASSES times and prints the median and best rates.
    let measure = |what: &str, pass: &mut dyn FnMut()| {
        let mut secs: Vec<f64> = (0..PASSES)
            .map(|_| {
                let t = Instant::now();
                pass();
                t.elapsed().as_secs_f64()
            })
            .collect();
        secs.sort_by(f64::total_cmp);
        let (median, best) = (secs[PASSES / 2], secs[0]);
        println!(
            "{what:<42} {:>7.0} messages/s ({:>6.0})  {:>5.1} µs each",
            n as f64 / median,
            n as f64 / best,
            median * 1e6 / n as f64
        );
    };

    let reference = mxguard_message::parse::mail_parser_reference();
    measure("parse, mail-parser decoding the bodies", &mut || {
        for (raw, _) in &msgs {
            black_box(reference.parse(raw));
        }
    });
    measure("parse (mxguard_message::parse)", &mut || {
        for (raw, _) in &msgs {
            black_box(mxguard_message::parse(raw));
        }
    });

    let parsed: Vec<_> = msgs
        .iter()
        .map(|(raw, _)| mxguard_message::parse(raw).unwrap_or_default())
        .collect();
    measure("extract features (parsed message)", &mut || {
        for m in &parsed {
            black_box(extract(m));
        }
    });
    measure("  of which: decoded text (HTML to text)", &mut || {
        for m in &parsed {
            black_box(mxguard_message::text::text_parts(m));
        }
    });
    let texts: Vec<_> = parsed
        .iter()
        .map(mxguard_message::text::text_parts)
        .collect();
    measure("  extract given decoded text (scan check)", &mut || {
        for (m, tx) in parsed.iter().zip(&texts) {
            black_box(mxguard_learn::extract_with_text(m, tx, None));
        }
    });

    // A trained model, as a scanner holds it.
    let mut model = Model::default();
    let feats: Vec<_> = parsed.iter().map(extract).collect();
    for (f, (_, spam)) in feats.iter().zip(&msgs) {
        model.learn(f, *spam);
    }
    let scan_model = model.for_scanning();
    measure("score (features given)", &mut || {
        for f in &feats {
            black_box(scan_model.probability(f));
        }
    });
    measure("classify = extract + score", &mut || {
        for m in &parsed {
            black_box(scan_model.probability(&extract(m)));
        }
    });
    measure("classify including the parse", &mut || {
        for (raw, _) in &msgs {
            let m = mxguard_message::parse(raw).unwrap_or_default();
            black_box(scan_model.probability(&extract(&m)));
        }
    });
    measure("learn = parse + extract + update", &mut || {
        let mut m = Model::default();
        for (raw, spam) in &msgs {
            let p = mxguard_message::parse(raw).unwrap_or_default();
            m.learn(&extract(&p), *spam);
        }
        black_box(m);
    });
}
