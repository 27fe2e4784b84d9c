//! `mxguard learn`, `mxguard eval` and the classifier part of `mxguard
//! stats`: thin wrappers over `mxguard_learn`.

use crate::settings::{Globals, display};
use clap::Args;
use mxguard_learn::eval::{self, Evaluation, Labeled, Settings};
use mxguard_learn::persist::{self, Class, LearnReport, Learner, Sample};
use mxguard_scan::checks::bayes::ClassifierConfig;
use mxguard_store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct LearnArgs {
    /// Messages to learn as spam: files, directories (Maildir included), mbox files.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    spam: Vec<PathBuf>,
    /// Messages to learn as ham.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    ham: Vec<PathBuf>,
    /// Messages to forget, whatever they were learned as.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    unlearn: Vec<PathBuf>,
    /// Worker threads for reading and tokenising (default: all cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Print throughput to stderr when done.
    #[arg(long)]
    stats: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Spam for cross-validation.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    spam: Vec<PathBuf>,
    /// Ham for cross-validation.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    ham: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seeds the fold assignment and the training order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fixed split instead of cross-validation.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    train_spam: Vec<PathBuf>,
    #[arg(long, value_name = "DIR", num_args = 1..)]
    train_ham: Vec<PathBuf>,
    #[arg(long, value_name = "DIR", num_args = 1..)]
    test_spam: Vec<PathBuf>,
    #[arg(long, value_name = "DIR", num_args = 1..)]
    test_ham: Vec<PathBuf>,
    /// Spam probability threshold for the FP/FN columns (default: `[classifier] spam_threshold`).
    #[arg(long)]
    threshold: Option<f64>,
    /// Print each message's fold (`fold<TAB>label<TAB>path`) and exit, so
    /// other filters can be trained and tested on the same folds.
    #[arg(long)]
    print_folds: bool,
    /// Write every out-of-fold score (`path<TAB>label<TAB>probability`) to FILE.
    #[arg(long, value_name = "FILE")]
    scores: Option<PathBuf>,
    /// Worker threads for reading and tokenising (default: all cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Scan each test message through the whole scan pipeline (the config's
    /// checks, network checks off) with the classifier trained on the
    /// training part, and report the actions per class. With a fixed split,
    /// --test-spam or --test-ham alone will do.
    #[arg(long)]
    actions: bool,
    /// With --actions: write every verdict to FILE
    /// (`path<TAB>label<TAB>action<TAB>score<TAB>SYMBOL=score,…`).
    #[arg(long, value_name = "FILE", requires = "actions")]
    verdicts: Option<PathBuf>,
    /// With --actions: how many symbols to list for ham at add header or above.
    #[arg(long, default_value_t = 15, requires = "actions")]
    top: usize,
}

fn jobs(j: Option<usize>) -> usize {
    j.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Messages are read, parsed and tokenised on worker threads, in batches,
/// then learned in one store transaction per batch.
const BATCH: usize = 4096;

pub fn learn(globals: &Globals, args: LearnArgs) -> Result<ExitCode, String> {
    if args.spam.is_empty() && args.ham.is_empty() && args.unlearn.is_empty() {
        return Err("nothing to learn: give --spam PATH…, --ham PATH… or --unlearn PATH…".into());
    }
    // While serve runs it holds the store: learn through it.
    if let Some(socket) = crate::web::control_socket(globals)?
        && crate::web::ask(&socket, "GET", "/ping", &[], b"")?.is_some()
    {
        return learn_via_serve(&socket, &args);
    }
    let loaded = globals.load_config()?;
    let store: Arc<dyn Store> = crate::store_cmd::open(&loaded.config.store)?;
    let learner = Learner::new(
        store,
        loaded.config.section::<ClassifierConfig>().table_bits,
    );
    let rt = runtime()?;
    let threads = jobs(args.jobs);
    let started = Instant::now();
    let mut failures = 0usize;
    let mut total = 0usize;
    for (paths, class) in [
        (&args.spam, Some(Class::Spam)),
        (&args.ham, Some(Class::Ham)),
        (&args.unlearn, None),
    ] {
        if paths.is_empty() {
            continue;
        }
        let files = mxguard_learn::corpus::files(paths)?;
        let mut report = LearnReport::default();
        for chunk in files.chunks(BATCH) {
            let (samples, errors) = featurize(chunk, threads);
            for e in &errors {
                eprintln!("mxguard: {e}");
            }
            failures += errors.len();
            total += samples.len();
            let r = rt
                .block_on(async {
                    match class {
                        Some(c) => learner.learn(&samples, c).await,
                        None => learner.unlearn(&samples).await,
                    }
                })
                .map_err(|e| e.to_string())?;
            report.learned += r.learned;
            report.relearned += r.relearned;
            report.unchanged += r.unchanged;
            report.unlearned += r.unlearned;
            report.not_found += r.not_found;
        }
        print_report(class, &report);
    }
    if args.stats {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "learned {total} messages in {secs:.3} s with {threads} thread(s): {:.0} messages/s",
            total as f64 / secs.max(1e-9)
        );
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `mxguard learn` through a running serve: each message is posted to
/// `/learnspam`, `/learnham` or `/unlearn` on the control socket.
fn learn_via_serve(socket: &std::path::Path, args: &LearnArgs) -> Result<ExitCode, String> {
    let mut failures = 0usize;
    for (paths, route, class) in [
        (&args.spam, "/learnspam", Some(Class::Spam)),
        (&args.ham, "/learnham", Some(Class::Ham)),
        (&args.unlearn, "/unlearn", None),
    ] {
        if paths.is_empty() {
            continue;
        }
        let mut report = LearnReport::default();
        let mut fatal = None;
        for path in mxguard_learn::corpus::files(paths)? {
            let r = mxguard_learn::corpus::read_messages(&path, &mut |origin, raw| {
                if fatal.is_some() {
                    return;
                }
                let answer = match crate::web::ask(socket, "POST", route, &[], &raw) {
                    Ok(Some(a)) => a,
                    Ok(None) => {
                        fatal = Some("mxguard serve stopped while learning".to_string());
                        return;
                    }
                    Err(e) => {
                        fatal = Some(e);
                        return;
                    }
                };
                match answer.json() {
                    Ok(v) => {
                        let n = |k: &str| v[k].as_u64().unwrap_or(0) as usize;
                        report.learned += n("learned");
                        report.relearned += n("relearned");
                        report.unchanged += n("unchanged");
                        report.unlearned += n("unlearned");
                        report.not_found += n("not_found");
                    }
                    Err(e) => {
                        eprintln!("mxguard: {origin}: {e}");
                        failures += 1;
                    }
                }
            });
            if let Err(e) = r {
                eprintln!("mxguard: {e}");
                failures += 1;
            }
            if let Some(e) = fatal.take() {
                return Err(e);
            }
        }
        print_report(class, &report);
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_report(class: Option<Class>, report: &LearnReport) {
    match class {
        Some(c) => println!(
            "{}: {} learned, {} moved from {}, {} already learned",
            c.name(),
            report.learned,
            report.relearned,
            if c.is_spam() { "ham" } else { "spam" },
            report.unchanged
        ),
        None => println!(
            "unlearn: {} forgotten, {} were not learned",
            report.unlearned, report.not_found
        ),
    }
}

/// Reads and tokenises files on `threads` threads, keeping their order.
fn featurize(files: &[PathBuf], threads: usize) -> (Vec<Sample>, Vec<String>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parts: Vec<(usize, Vec<Sample>, Vec<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.min(files.len()).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        let mut samples = Vec::new();
                        let mut errors = Vec::new();
                        let r = mxguard_learn::corpus::read_messages(path, &mut |origin, raw| {
                            match Sample::from_raw(&raw) {
                                Some(s) => samples.push(s),
                                None => {
                                    errors.push(format!("{origin}: not a mail message, skipped"))
                                }
                            }
                        });
                        if let Err(e) = r {
                            errors.push(e);
                        }
                        out.push((i, samples, errors));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    parts.sort_by_key(|p| p.0);
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for (_, s, e) in parts {
        samples.extend(s);
        errors.extend(e);
    }
    (samples, errors)
}

pub fn eval(globals: &Globals, args: EvalArgs) -> Result<ExitCode, String> {
    let loaded = globals.load_config()?;
    let threads = jobs(args.jobs);
    let settings = Settings {
        bits: loaded.config.section::<ClassifierConfig>().table_bits,
        seed: args.seed,
        threshold: args
            .threshold
            .unwrap_or(loaded.config.section::<ClassifierConfig>().spam_threshold),
    };
    if args.actions {
        crate::eval_actions::run(crate::eval_actions::Request {
            loaded: &loaded,
            settings,
            threads,
            folds: args.folds,
            spam: &args.spam,
            ham: &args.ham,
            train_spam: &args.train_spam,
            train_ham: &args.train_ham,
            test_spam: &args.test_spam,
            test_ham: &args.test_ham,
            verdicts: args.verdicts.as_ref(),
            top: args.top,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let fixed = !(args.train_spam.is_empty()
        && args.train_ham.is_empty()
        && args.test_spam.is_empty()
        && args.test_ham.is_empty());
    let t = Instant::now();
    let (evaluation, n) = if fixed {
        if args.train_spam.is_empty()
            || args.train_ham.is_empty()
            || args.test_spam.is_empty()
            || args.test_ham.is_empty()
        {
            return Err(
                "a fixed split needs --train-spam, --train-ham, --test-spam and --test-ham".into(),
            );
        }
        let train = eval::load(&args.train_spam, &args.train_ham, threads)?;
        let test = eval::load(&args.test_spam, &args.test_ham, threads)?;
        let n = train.len() + test.len();
        eprintln!(
            "read and tokenised {n} messages in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        (eval::fixed_split(&train, &test, &settings), n)
    } else {
        if args.spam.is_empty() || args.ham.is_empty() {
            return Err("cross-validation needs --spam DIR and --ham DIR (or a fixed split with --train-spam/--train-ham/--test-spam/--test-ham)".into());
        }
        let data = eval::load(&args.spam, &args.ham, threads)?;
        check_classes(&data)?;
        if args.print_folds {
            let folds = eval::folds(&data, args.folds, args.seed);
            for (d, f) in data.iter().zip(folds) {
                println!(
                    "{}\t{}\t{}",
                    f + 1,
                    if d.spam { "spam" } else { "ham" },
                    d.origin
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "read and tokenised {} messages in {:.2} s",
            data.len(),
            t.elapsed().as_secs_f64()
        );
        (
            eval::cross_validate(&data, args.folds, &settings),
            data.len(),
        )
    };
    print_evaluation(&evaluation, settings.threshold, n);
    if let Some(path) = args.scores {
        let mut s = String::new();
        for (origin, spam, p) in &evaluation.scores {
            s.push_str(&format!(
                "{origin}\t{}\t{p:.6}\n",
                if *spam { "spam" } else { "ham" }
            ));
        }
        std::fs::write(&path, s).map_err(|e| format!("cannot write {}: {e}", display(&path)))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn check_classes(data: &[Labeled]) -> Result<(), String> {
    let spam = data.iter().filter(|d| d.spam).count();
    if spam == 0 || spam == data.len() {
        return Err(format!(
            "found {spam} spam and {} ham messages: both classes are needed",
            data.len() - spam
        ));
    }
    Ok(())
}

fn print_evaluation(e: &Evaluation, threshold: f64, n: usize) {
    println!(
        "{:<6} {:>6} {:>11} {:>8} {:>9} {:>9} {:>12}",
        "fold",
        "train",
        "test h/s",
        "1-AUC%",
        format!("FP%@{threshold}"),
        format!("FN%@{threshold}"),
        "FN%@FP≤0.1%"
    );
    for r in e.folds.iter().chain(std::iter::once(&e.overall)) {
        let m = &r.metrics;
        println!(
            "{:<6} {:>6} {:>11} {:>8.3} {:>9.2} {:>9.2} {:>12.2}",
            r.fold.map_or("all".to_string(), |f| (f + 1).to_string()),
            r.train,
            format!("{}/{}", m.hams, m.spams),
            m.one_minus_auc_pct,
            m.fp_pct,
            m.fn_pct,
            m.fn_at_fp01_pct
        );
    }
    println!(
        "(\"all\" pools the out-of-fold scores.) trained {:.0} messages/s, classified {:.0} messages/s (tokenising excluded); {n} messages",
        e.folds
            .iter()
            .map(|r| r.train)
            .sum::<usize>()
            .max(e.overall.train) as f64
            / e.train_seconds.max(1e-9),
        e.scores.len() as f64 / e.classify_seconds.max(1e-9),
    );
}

/// The store `mxguard scan` opened, and the classifier's model handle.
pub type ScanStore = (
    Option<Arc<dyn Store>>,
    Option<Arc<mxguard_learn::ModelHandle>>,
);

/// For `mxguard scan`: the store, opened when `--record` needs it or when
/// it already exists (a plain scan never creates the data directory), and
/// the classifier's model loaded from it. A store held by `mxguard serve`
/// only costs the classifier, with a warning, unless `--record` needs it.
pub fn scan_store(
    loaded: &mxguard_core::config::LoadedConfig,
    record: bool,
) -> Result<ScanStore, String> {
    let c = &loaded.config;
    let dir = &c.store.data_dir;
    let classifier = c.section::<ClassifierConfig>().enabled
        && (c.store.url.is_some() || dir.join("mxguard.redb").exists());
    if !record && !classifier {
        return Ok((None, None));
    }
    let store: Arc<dyn Store> = match crate::store_cmd::open(&c.store) {
        Ok(s) => s,
        Err(e) if !record => {
            tracing::warn!("classifier not used: {e}");
            return Ok((None, None));
        }
        Err(e) => return Err(e),
    };
    if !c.section::<ClassifierConfig>().enabled {
        return Ok((Some(store), None));
    }
    let handle = mxguard_learn::ModelHandle::empty();
    if let Err(e) = runtime()?.block_on(persist::refresh(&handle, &*store)) {
        tracing::warn!("classifier not used: {e}");
    }
    Ok((Some(store), Some(handle)))
}

/// The classifier lines of `mxguard stats`.
pub fn print_status(globals: &Globals, store: &Arc<dyn Store>) -> Result<(), String> {
    let loaded = globals.load_config()?;
    let c = loaded.config.section::<ClassifierConfig>();
    let status = runtime()?
        .block_on(persist::status(&**store))
        .map_err(|e| e.to_string())?;
    println!();
    println!("classifier");
    println!("  learned spam                   {}", status.spam_learns);
    println!("  learned ham                    {}", status.ham_learns);
    let for_scanners = match &status.scan_note {
        None => format!("{} for scanners", status.scan_bytes),
        Some(why) => format!("scanners read it: {why}"),
    };
    println!(
        "  model size                     {} bytes in the store ({for_scanners}), {} weights of 2^{} slots (version {})",
        status.bytes, status.nonzero, status.bits, status.version
    );
    let state = if !c.enabled {
        "disabled ([classifier] enabled = false)".to_string()
    } else {
        status
            .silent_because(c.min_learns)
            .unwrap_or_else(|| "active".to_string())
    };
    println!("  state                          {state}");
    Ok(())
}
