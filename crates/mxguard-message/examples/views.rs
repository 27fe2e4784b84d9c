//! What the message model's views cost on one core, messages held in
//! memory:
//!
//! ```text
//! cargo run --release -p mxguard-message --example views -- [DIR]
//! ```
//!
//! DIR defaults to corpus-dev in the test data. Each line is a fresh
//! `Mail` per message (views are kept once computed): the parse alone, then
//! the parse and one view, so a view's own cost is its line less the
//! parse's. The median of `PASSES` passes, the fastest in brackets.

use mxguard_message::Mail;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

const PASSES: usize = 7;

fn main() {
    let testdata = std::env::var_os("MXGUARD_TESTDATA").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/testdata"
            ))
        },
        PathBuf::from,
    );
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| testdata.join("corpus-dev"), PathBuf::from);
    let mut msgs = Vec::new();
    let mut dirs = vec![dir];
    while let Some(p) = dirs.pop() {
        if p.is_file() {
            msgs.push(std::fs::read(&p).expect("read"));
        } else if let Ok(entries) = std::fs::read_dir(&p) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
    }
    let n = msgs.len();
    println!("{n} messages, one thread; median of {PASSES} passes (fastest)");
    let measure = |what: &str, view: &dyn Fn(&Mail<'_>)| {
        let mut secs: Vec<f64> = (0..PASSES)
            .map(|_| {
                let t = Instant::now();
                for raw in &msgs {
                    let m = Mail::new(raw, u64::MAX);
                    view(&m);
                    black_box(&m);
                }
                t.elapsed().as_secs_f64()
            })
            .collect();
        secs.sort_by(f64::total_cmp);
        println!(
            "{what:<36} {:>7.0} messages/s ({:>6.0})  {:>5.1} µs each",
            n as f64 / secs[PASSES / 2],
            n as f64 / secs[0],
            secs[PASSES / 2] * 1e6 / n as f64
        );
    };
    measure("parse (Mail::new)", &|_| {});
    measure("parse + text parts", &|m| {
        black_box(m.text_parts());
    });
    measure("parse + URLs", &|m| {
        black_box(m.urls());
    });
    measure("parse + attachments", &|m| {
        black_box(m.attachments().count());
    });
    measure("parse + Received hops", &|m| {
        black_box(m.received());
    });
    measure("parse + every view", &|m| {
        black_box((
            m.text_parts(),
            m.urls(),
            m.attachments().count(),
            m.received(),
        ));
    });
}
