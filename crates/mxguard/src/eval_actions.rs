//! `mxguard eval --actions`: what the whole scan would do with labelled
//! mail. The classifier is trained on the training part (the other folds,
//! or `--train-*`), then every test message goes through the real scan
//! pipeline built from the config (no resolver: the checks that wait on the
//! network are left out), and the actions are counted per class. The
//! symbols that fire on ham at `add header` or above are listed, since
//! those are the false positives to explain.

use mxguard_core::config::LoadedConfig;
use mxguard_core::{Action, Envelope, Verdict};
use mxguard_learn::ModelHandle;
use mxguard_learn::eval::{self, Labeled, Settings};
use mxguard_scan::{Pipeline, Services};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// A labelled message: its features for training, its bytes for scanning.
pub struct Item {
    pub labeled: Labeled,
    pub raw: Vec<u8>,
}

/// Reads every message under `spam` and `ham` on `threads` threads, sorted
/// as `mxguard_learn::eval::load` sorts (ham first, then by origin), so
/// the folds are the ones `mxguard eval` uses.
pub fn load(spam: &[PathBuf], ham: &[PathBuf], threads: usize) -> Result<Vec<Item>, String> {
    eval::load_with(
        spam,
        ham,
        threads,
        |labeled, raw| Item { labeled, raw },
        |item| &item.labeled,
    )
}

/// One scanned test message.
struct Scanned {
    origin: String,
    spam: bool,
    verdict: Verdict,
}

/// Trains on `train`, scans `test` through the pipeline on `threads` threads.
fn run_split(
    loaded: &LoadedConfig,
    train: &[&Labeled],
    test: &[&Item],
    settings: &Settings,
    threads: usize,
) -> Result<Vec<Scanned>, String> {
    let handle = ModelHandle::empty();
    handle.set(Arc::new(eval::train(train, settings)), 1);
    let services = Services {
        classifier: Some(handle),
        ..Services::default()
    };
    let (pipeline, _warnings) =
        Pipeline::new(loaded, &services).map_err(|e| crate::settings::format_errors(&e))?;
    let envelope = Envelope::default();
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, Scanned)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.clamp(1, 64))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = test.get(i) else { break };
                        let verdict = pipeline.scan_blocking(&envelope, &item.raw);
                        out.push((
                            i,
                            Scanned {
                                origin: item.labeled.origin.clone(),
                                spam: item.labeled.spam,
                                verdict,
                            },
                        ));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// What `--actions` was asked to do.
pub struct Request<'a> {
    pub loaded: &'a LoadedConfig,
    pub settings: Settings,
    pub threads: usize,
    pub folds: usize,
    /// Cross-validation over these, or a fixed split below.
    pub spam: &'a [PathBuf],
    pub ham: &'a [PathBuf],
    pub train_spam: &'a [PathBuf],
    pub train_ham: &'a [PathBuf],
    pub test_spam: &'a [PathBuf],
    pub test_ham: &'a [PathBuf],
    /// Every verdict, one line each (`path<TAB>label<TAB>action<TAB>score<TAB>SYMBOL=score,…`).
    pub verdicts: Option<&'a PathBuf>,
    /// How many symbols to list for ham at add_header or above.
    pub top: usize,
}

pub fn run(req: Request<'_>) -> Result<(), String> {
    let t = Instant::now();
    let fixed = !(req.train_spam.is_empty()
        && req.train_ham.is_empty()
        && req.test_spam.is_empty()
        && req.test_ham.is_empty());
    let scanned = if fixed {
        if req.train_spam.is_empty() || req.train_ham.is_empty() {
            return Err("a fixed split needs --train-spam and --train-ham".into());
        }
        if req.test_spam.is_empty() && req.test_ham.is_empty() {
            return Err("a fixed split needs --test-spam or --test-ham (or both)".into());
        }
        let train = load(req.train_spam, req.train_ham, req.threads)?;
        let test = load(req.test_spam, req.test_ham, req.threads)?;
        eprintln!(
            "read and tokenised {} messages in {:.2} s",
            train.len() + test.len(),
            t.elapsed().as_secs_f64()
        );
        let tr: Vec<&Labeled> = train.iter().map(|i| &i.labeled).collect();
        let te: Vec<&Item> = test.iter().collect();
        run_split(req.loaded, &tr, &te, &req.settings, req.threads)?
    } else {
        if req.spam.is_empty() || req.ham.is_empty() {
            return Err("cross-validation needs --spam DIR and --ham DIR (or a fixed split with --train-spam/--train-ham and --test-spam/--test-ham)".into());
        }
        let data = load(req.spam, req.ham, req.threads)?;
        let spam = data.iter().filter(|d| d.labeled.spam).count();
        if spam == 0 || spam == data.len() {
            return Err(format!(
                "found {spam} spam and {} ham messages: both classes are needed",
                data.len() - spam
            ));
        }
        eprintln!(
            "read and tokenised {} messages in {:.2} s",
            data.len(),
            t.elapsed().as_secs_f64()
        );
        let labeled: Vec<Labeled> = data.iter().map(|i| i.labeled.clone()).collect();
        let assignment = eval::folds(&labeled, req.folds, req.settings.seed);
        let mut all = Vec::with_capacity(data.len());
        for fold in 0..req.folds.max(2) {
            let tr: Vec<&Labeled> = data
                .iter()
                .zip(&assignment)
                .filter(|(_, f)| **f != fold)
                .map(|(d, _)| &d.labeled)
                .collect();
            let te: Vec<&Item> = data
                .iter()
                .zip(&assignment)
                .filter(|(_, f)| **f == fold)
                .map(|(d, _)| d)
                .collect();
            all.extend(run_split(req.loaded, &tr, &te, &req.settings, req.threads)?);
        }
        all
    };
    print_table(&scanned, req.top);
    eprintln!(
        "{} messages scanned in {:.2} s (training included)",
        scanned.len(),
        t.elapsed().as_secs_f64()
    );
    if let Some(path) = req.verdicts {
        let mut s = String::new();
        for r in &scanned {
            let symbols: Vec<String> = r
                .verdict
                .symbols
                .values()
                .map(|s| format!("{}={}", s.name, s.score))
                .collect();
            s.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                r.origin,
                if r.spam { "spam" } else { "ham" },
                r.verdict.action.as_str(),
                r.verdict.score,
                symbols.join(",")
            ));
        }
        std::fs::write(path, s)
            .map_err(|e| format!("cannot write {}: {e}", crate::settings::display(path)))?;
    }
    Ok(())
}

/// The columns of the table, in ladder order.
const COLUMNS: [Action; 5] = [
    Action::NoAction,
    Action::Greylist,
    Action::AddHeader,
    Action::RewriteSubject,
    Action::Reject,
];

fn print_table(scanned: &[Scanned], top: usize) {
    println!(
        "{:<6} {:>6} {:>10} {:>9} {:>11} {:>16} {:>8} {:>7} {:>14}",
        "class",
        "n",
        "no action",
        "greylist",
        "add header",
        "rewrite subject",
        "reject",
        "other",
        "add header+"
    );
    for spam in [false, true] {
        let rows: Vec<&Scanned> = scanned.iter().filter(|r| r.spam == spam).collect();
        if rows.is_empty() {
            continue;
        }
        let n = rows.len();
        let pct = |k: usize| format!("{:.2}%", 100.0 * k as f64 / n as f64);
        let count = |a: Action| rows.iter().filter(|r| r.verdict.action == a).count();
        let other = n - COLUMNS.iter().map(|a| count(*a)).sum::<usize>();
        let flagged = rows
            .iter()
            .filter(|r| r.verdict.action >= Action::AddHeader)
            .count();
        println!(
            "{:<6} {:>6} {:>10} {:>9} {:>11} {:>16} {:>8} {:>7} {:>14}",
            if spam { "spam" } else { "ham" },
            n,
            pct(count(Action::NoAction)),
            pct(count(Action::Greylist)),
            pct(count(Action::AddHeader)),
            pct(count(Action::RewriteSubject)),
            pct(count(Action::Reject)),
            pct(other),
            format!("{} ({})", pct(flagged), flagged)
        );
    }
    let fp: Vec<&Scanned> = scanned
        .iter()
        .filter(|r| !r.spam && r.verdict.action >= Action::AddHeader)
        .collect();
    if top == 0 || fp.is_empty() {
        return;
    }
    let mut counts: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for r in &fp {
        for s in r.verdict.symbols.values() {
            let e = counts.entry(s.name.as_str()).or_default();
            e.0 += 1;
            e.1 += s.score;
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    println!(
        "symbols on the {} ham at add header or above (messages, mean score):",
        fp.len()
    );
    for (name, (n, total)) in v.into_iter().take(top) {
        println!("  {name:<28} {n:>5} {:>7.2}", total / n as f64);
    }
}
