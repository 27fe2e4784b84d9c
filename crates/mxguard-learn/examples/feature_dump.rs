//! Prints one line per message file: a hash of its feature vector, the
//! number of features, a hash of its `explain` names, and the path. Used to
//! check that a change to the extractor keeps the features bit-identical:
//!
//! ```text
//! cargo run --release -p mxguard-learn --example feature_dump -- DIR... > out.txt
//! ```
//!
//! Every file under each DIR (recursively, sorted, hidden ones included) is
//! read as one message (a leading mbox `From ` line stripped).

use mxguard_learn::corpus::strip_mbox_line;
use mxguard_learn::{explain, extract};
use std::path::{Path, PathBuf};

/// FNV-1a over the bytes: stable, dependency-free, good enough to compare.
fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut e: Vec<PathBuf> = std::fs::read_dir(p)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        e.sort();
        for x in e {
            walk(&x, out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn main() {
    let names = std::env::args().any(|a| a == "--names");
    let mut files = Vec::new();
    for a in std::env::args().skip(1).filter(|a| a != "--names") {
        walk(Path::new(&a), &mut files);
    }
    for f in files {
        let raw = std::fs::read(&f).expect("read");
        let m = mxguard_message::parse(strip_mbox_line(&raw)).unwrap_or_default();
        let feats = extract(&m);
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for x in &feats.0 {
            fnv(&mut h, &x.to_le_bytes());
        }
        let mut hn = 0xcbf2_9ce4_8422_2325u64;
        if names {
            for n in explain(&m) {
                fnv(&mut hn, n.as_bytes());
                fnv(&mut hn, b"\n");
            }
        }
        println!("{h:016x} {:5} {hn:016x} {}", feats.len(), f.display());
    }
}
