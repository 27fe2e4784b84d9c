//! Signing throughput: signs every message under a directory (recursively)
//! with a fresh RSA-2048 key, an Ed25519 key, both at once, and seals with
//! ARC over the RSA signature, on one thread, and prints messages per
//! second for each (one thread busy: messages per CPU-second).
//!
//!   cargo run --release -p mxguard-auth --example sign_bench -- DIR [ROUNDS]
//!
//! Run by bench/sign.sh; on a quiet machine only.

use mxguard_auth::config::{ArcConfig, DkimSigningConfig, DomainKeys, KeySpec};
use mxguard_auth::keygen::{self, Request};
use mxguard_auth::keys::KeyKind;
use mxguard_auth::seal::ArcChain;
use mxguard_auth::sign::Outbound;
use mxguard_core::{Action, Envelope};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.is_file() {
            out.push(p);
        }
    }
}

/// CRLF line ends, as the milter hands messages over.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: sign_bench DIR [ROUNDS]"));
    let rounds: usize = args.next().map_or(1, |r| r.parse().expect("ROUNDS"));
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    paths.sort();
    let messages: Vec<Vec<u8>> = paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|m| crlf(&m))
        .collect();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    println!(
        "{} messages, {} bytes, {rounds} round(s)",
        messages.len(),
        bytes
    );

    let keydir = std::env::temp_dir().join(format!("mxguard-sign-bench-{}", std::process::id()));
    std::fs::create_dir_all(&keydir).unwrap();
    let mut specs = Vec::new();
    for (kind, sel) in [(KeyKind::Rsa, "rsa"), (KeyKind::Ed25519, "ed")] {
        let g = keygen::generate(&Request {
            domain: "example.com".into(),
            selector: sel.into(),
            kind,
            bits: 2048,
            out_dir: keydir.clone(),
            force: true,
        })
        .unwrap();
        specs.push(KeySpec {
            selector: sel.into(),
            path: g.path.display().to_string(),
        });
    }
    let envelope = Envelope {
        ip: Some("127.0.0.1".parse().unwrap()),
        mail_from: Some("bench@example.com".into()),
        rcpts: vec!["rcpt@example.org".into()],
        ..Envelope::default()
    };
    let runs: [(&str, Vec<KeySpec>, bool); 4] = [
        ("dkim rsa-2048", vec![specs[0].clone()], false),
        ("dkim ed25519", vec![specs[1].clone()], false),
        ("dkim rsa-2048 + ed25519", specs.clone(), false),
        ("dkim rsa-2048 + arc seal", vec![specs[0].clone()], true),
    ];
    for (name, keys, arc) in runs {
        let mut d = DkimSigningConfig {
            enabled: true,
            // Whatever the corpus' From says, sign as example.com.
            use_domain: mxguard_auth::config::UseDomain::Envelope,
            allow_hdrfrom_mismatch: true,
            allow_hdrfrom_multiple: true,
            ..Default::default()
        };
        d.domain.insert(
            "example.com".into(),
            DomainKeys {
                keys: keys.clone(),
                ..Default::default()
            },
        );
        let mut a = ArcConfig {
            enabled: arc,
            use_domain: mxguard_auth::config::UseDomain::Envelope,
            ..Default::default()
        };
        a.domain.insert(
            "example.com".into(),
            DomainKeys {
                keys: vec![keys[0].clone()],
                ..Default::default()
            },
        );
        let outbound = Outbound::new(&d, &a).unwrap().unwrap();
        let (mut signed, mut skipped) = (0usize, 0usize);
        let start = Instant::now();
        for _ in 0..rounds {
            for m in &messages {
                let s = outbound.sign(
                    Action::NoAction,
                    &envelope,
                    m,
                    || "mx.example.com; spf=pass smtp.mailfrom=bench@example.com".into(),
                    ArcChain::Pass,
                );
                if s.headers.is_empty() {
                    skipped += 1;
                } else {
                    signed += 1;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name:28} {:>9.0} messages/s  ({signed} signed, {skipped} not signed, {secs:.2} s)",
            (signed + skipped) as f64 / secs
        );
    }
    let _ = std::fs::remove_dir_all(&keydir);
}
