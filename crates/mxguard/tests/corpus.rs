//! Every message of the shared corpora scans without a panic or an error.

mod common;

use mxguard_core::Envelope;

use mxguard_scan::Pipeline;
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

/// The messages of mime-samples: `*.eml`, and CPython's `msg_*.txt`.
fn is_sample_message(p: &Path) -> bool {
    let name = p.file_name().unwrap().to_string_lossy();
    name.ends_with(".eml") || (name.starts_with("msg_") && name.ends_with(".txt"))
}

#[test]
fn corpus_dev_phishing_dev_and_mime_samples_scan_cleanly() {
    let Some(data) = common::testdata() else {
        return;
    };
    let corpus = data.join("corpus-dev");
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let expected_corpus = manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    let mut corpus_files = Vec::new();
    files_under(&corpus.join("ham"), &|_| true, &mut corpus_files);
    files_under(&corpus.join("spam"), &|_| true, &mut corpus_files);
    assert_eq!(
        corpus_files.len(),
        expected_corpus,
        "corpus-dev file count vs MANIFEST.tsv"
    );
    assert_eq!(expected_corpus, 4578);

    let mut samples = Vec::new();
    files_under(&data.join("mime-samples"), &is_sample_message, &mut samples);
    assert_eq!(samples.len(), 100, "53 .eml + 47 msg_*.txt");

    let phishing = data.join("phishing-dev");
    let mut phishing_files = Vec::new();
    files_under(&phishing.join("spam"), &|_| true, &mut phishing_files);
    let expected_phishing = std::fs::read_to_string(phishing.join("MANIFEST.tsv"))
        .expect("phishing-dev/MANIFEST.tsv")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(
        phishing_files.len(),
        expected_phishing,
        "phishing-dev vs MANIFEST.tsv"
    );
    assert!(expected_phishing >= 600);

    let (pipeline, warnings) = Pipeline::from_config(Default::default()).unwrap();
    assert!(warnings.is_empty());
    let env = Envelope::default();
    let mut parsed = 0usize;
    let mut scanned = 0usize;
    for f in corpus_files.iter().chain(&samples).chain(&phishing_files) {
        let raw = std::fs::read(f).unwrap();
        let v = pipeline.scan_blocking(&env, &raw);
        scanned += 1;
        assert!(v.score.is_finite(), "{}", f.display());
        assert!(!v.is_skipped, "{} was skipped", f.display());
        if mxguard_scan::Task::new(&env, &raw, u64::MAX).parsed {
            parsed += 1;
        } else {
            eprintln!("not parsed as a message: {}", f.display());
        }
    }
    assert_eq!(
        pipeline.check_failures(),
        0,
        "a check panicked on some message"
    );
    assert_eq!(scanned, expected_corpus + 100 + expected_phishing);
    assert_eq!(parsed, scanned, "every message was parsed");
}

#[test]
fn cli_scans_the_corpus_as_json_lines() {
    let Some(data) = common::testdata() else {
        return;
    };
    let corpus = data.join("corpus-dev");
    let out = common::mxguard(
        &[
            "scan",
            "--json",
            "-j",
            "2",
            corpus.join("spam").to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let stdout = common::text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1789);
    let mut previous = String::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
        let file = v["file"].as_str().expect("file field").to_string();
        assert!(file > previous, "results come in input order");
        previous = file;
        for key in ["action", "score", "required_score", "symbols"] {
            assert!(v.get(key).is_some(), "missing {key} in {l}");
        }
    }
}
