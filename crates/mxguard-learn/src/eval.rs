//! Evaluation: k-fold cross-validation and fixed train/test splits, with
//! the same model and training procedure as `mxguard learn` (online, one
//! pass, each member in its own seeded shuffled order).

use crate::metrics::{Metrics, Scored, SplitMix64, assign_folds};
use crate::{Features, Model};
use std::path::PathBuf;
use std::time::Instant;

/// One labelled message, reduced to its features.
#[derive(Debug, Clone)]
pub struct Labeled {
    /// Where it came from (a path, or `path#n` inside an mbox).
    pub origin: String,
    pub spam: bool,
    pub features: Features,
}

/// Reads and featurises every message under `spam` and `ham` (files,
/// directories, mbox), on `threads` threads. The result is sorted by class
/// (ham first) and origin, so fold assignment does not depend on the order
/// the paths were given in.
pub fn load(spam: &[PathBuf], ham: &[PathBuf], threads: usize) -> Result<Vec<Labeled>, String> {
    load_with(spam, ham, threads, |labeled, _raw| labeled, |l| l)
}

/// [`load`], each message kept as what `keep` makes of it and its bytes
/// (`mxguard eval --actions` keeps the bytes to scan them); `labeled`
/// gives back the [`Labeled`] the order is taken from.
pub fn load_with<T: Send>(
    spam: &[PathBuf],
    ham: &[PathBuf],
    threads: usize,
    keep: impl Fn(Labeled, Vec<u8>) -> T + Sync,
    labeled: impl Fn(&T) -> &Labeled,
) -> Result<Vec<T>, String> {
    let mut jobs: Vec<(PathBuf, bool)> = Vec::new();
    for (paths, is_spam) in [(ham, false), (spam, true)] {
        for f in crate::corpus::files(paths)? {
            jobs.push((f, is_spam));
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = threads.clamp(1, 64);
    let results: Vec<Result<Vec<T>, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((path, is_spam)) = jobs.get(i) else {
                            break;
                        };
                        crate::corpus::read_messages(path, &mut |origin, raw| {
                            let m = mxguard_message::parse(&raw).unwrap_or_default();
                            let features = crate::extract(&m);
                            drop(m);
                            let item = Labeled {
                                origin,
                                spam: *is_spam,
                                features,
                            };
                            out.push(keep(item, raw));
                        })?;
                    }
                    Ok(out)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a reader thread panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by(|a, b| {
        let (a, b) = (labeled(a), labeled(b));
        a.spam.cmp(&b.spam).then_with(|| a.origin.cmp(&b.origin))
    });
    Ok(all)
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub bits: u8,
    /// Seeds the fold assignment and the training order.
    pub seed: u64,
    /// The probability at or above which a message counts as spam.
    pub threshold: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bits: crate::model::DEFAULT_BITS,
            seed: 1,
            threshold: 0.9,
        }
    }
}

/// The figures of one fold, or of all folds pooled.
#[derive(Debug, Clone)]
pub struct Report {
    /// `None` for the pooled figures.
    pub fold: Option<usize>,
    pub train: usize,
    pub metrics: Metrics,
}

/// Per-fold reports, the pooled report, and timing.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub folds: Vec<Report>,
    pub overall: Report,
    pub train_seconds: f64,
    pub classify_seconds: f64,
    /// Out-of-fold (origin, spam, probability) of every message.
    pub scores: Vec<(String, bool, f64)>,
}

/// Trains a model on `train`, one online pass, each member in its own
/// seeded shuffled order (member `k` seeded with `seed + 1000·k`, as
/// `examples/tune.rs` does).
pub fn train(train: &[&Labeled], settings: &Settings) -> Model {
    let samples: Vec<(&Features, bool)> = train.iter().map(|d| (&d.features, d.spam)).collect();
    Model::learned_from(settings.bits, &samples, |k| {
        let mut order: Vec<usize> = (0..samples.len()).collect();
        SplitMix64(settings.seed.wrapping_add(1000 * k as u64) ^ 0x5EED).shuffle(&mut order);
        order
    })
}

/// The fold (0..k) of every item, stratified by class and seeded.
pub fn folds(data: &[Labeled], k: usize, seed: u64) -> Vec<usize> {
    let labels: Vec<bool> = data.iter().map(|d| d.spam).collect();
    assign_folds(&labels, k, seed)
}

/// k-fold cross-validation.
pub fn cross_validate(data: &[Labeled], k: usize, settings: &Settings) -> Evaluation {
    let assignment = folds(data, k, settings.seed);
    let mut reports = Vec::new();
    let mut pooled = Scored::default();
    let mut scores = Vec::with_capacity(data.len());
    let (mut train_s, mut classify_s) = (0.0, 0.0);
    for fold in 0..k.max(2) {
        let tr: Vec<&Labeled> = data
            .iter()
            .zip(&assignment)
            .filter(|(_, f)| **f != fold)
            .map(|(d, _)| d)
            .collect();
        let te: Vec<&Labeled> = data
            .iter()
            .zip(&assignment)
            .filter(|(_, f)| **f == fold)
            .map(|(d, _)| d)
            .collect();
        let t = Instant::now();
        let model = train(&tr, settings);
        train_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut s = Scored::default();
        for d in &te {
            let p = model.probability(&d.features);
            s.push(p, d.spam);
            scores.push((d.origin.clone(), d.spam, p));
        }
        classify_s += t.elapsed().as_secs_f64();
        reports.push(Report {
            fold: Some(fold),
            train: tr.len(),
            metrics: s.metrics(settings.threshold),
        });
        pooled.extend(&s);
    }
    Evaluation {
        folds: reports,
        overall: Report {
            fold: None,
            train: data.len(),
            metrics: pooled.metrics(settings.threshold),
        },
        train_seconds: train_s,
        classify_seconds: classify_s,
        scores,
    }
}

/// Trains on one set, tests on another.
pub fn fixed_split(train_set: &[Labeled], test_set: &[Labeled], settings: &Settings) -> Evaluation {
    let tr: Vec<&Labeled> = train_set.iter().collect();
    let t = Instant::now();
    let model = train(&tr, settings);
    let train_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut s = Scored::default();
    let mut scores = Vec::with_capacity(test_set.len());
    for d in test_set {
        let p = model.probability(&d.features);
        s.push(p, d.spam);
        scores.push((d.origin.clone(), d.spam, p));
    }
    let m = s.metrics(settings.threshold);
    Evaluation {
        folds: Vec::new(),
        overall: Report {
            fold: None,
            train: tr.len(),
            metrics: m,
        },
        train_seconds: train_s,
        classify_seconds: t.elapsed().as_secs_f64(),
        scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: u32, spam: bool) -> Labeled {
        // Spam shares feature 1, ham feature 2, plus noise.
        let mut f = vec![if spam { 1 } else { 2 }, 1000 + i, 5000 + i % 7];
        f.sort_unstable();
        Labeled {
            origin: format!("{i}"),
            spam,
            features: Features(f),
        }
    }

    #[test]
    fn separable_data_evaluates_perfectly() {
        let data: Vec<Labeled> = (0..100).map(|i| item(i, i % 3 == 0)).collect();
        let e = cross_validate(&data, 5, &Settings::default());
        assert_eq!(e.folds.len(), 5);
        assert_eq!(e.scores.len(), 100);
        assert_eq!(e.overall.metrics.one_minus_auc_pct, 0.0);
        assert_eq!(e.overall.metrics.hams + e.overall.metrics.spams, 100);
        let e2 = fixed_split(&data[..50], &data[50..], &Settings::default());
        assert_eq!(e2.overall.metrics.one_minus_auc_pct, 0.0);
    }
}
