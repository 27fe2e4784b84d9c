//! The measurement behind the model choice: 5-fold CV on corpus-dev of
//! several classifiers and feature sets. Run:
//!
//! ```text
//! cargo run --release -p mxguard-learn --example compare -- [DATA_DIR] [which…]
//! ```
//!
//! DATA_DIR defaults to `$MXGUARD_TESTDATA/corpus-dev`. It prints 1-AUC (%) and
//! FN at FP ≤ 0.1% for each variant over the pooled out-of-fold scores.

use mxguard_learn::Features;
use mxguard_learn::corpus::{files, strip_mbox_line};
use mxguard_learn::metrics::{Scored, SplitMix64, assign_folds};
use mxguard_learn::model::sigmoid;
use mxguard_learn::tokenize::{Options, extract_opts};
use mxguard_message::text::text_parts;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

static PATHS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

fn load(dir: &Path) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut paths = Vec::new();
    for (sub, spam) in [("ham", false), ("spam", true)] {
        for f in files(&[dir.join(sub)]).unwrap() {
            let raw = std::fs::read(&f).unwrap();
            out.push((strip_mbox_line(&raw).to_vec(), spam));
            paths.push(f.display().to_string());
        }
    }
    let _ = PATHS.set(paths);
    out
}

fn featurize(msgs: &[(Vec<u8>, bool)], opts: Options) -> Vec<Features> {
    let chunks: Vec<&[(Vec<u8>, bool)]> = msgs.chunks(msgs.len().div_ceil(2)).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|(raw, _)| {
                            let m = mxguard_message::parse(raw).unwrap_or_default();
                            let t = text_parts(&m);
                            extract_opts(&m, &t, opts)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

trait Clf {
    fn train(&mut self, data: &[(&Features, bool)]);
    fn score(&self, f: &Features) -> f64;
}

/// SpamAssassin-style Bayes: Robinson's f(w) and Fisher's chi-square
/// combining over the 150 most significant tokens.
struct RobinsonFisher {
    counts: HashMap<u32, (u32, u32)>,
    ns: f64,
    nh: f64,
}

fn chi2q(x: f64, v: usize) -> f64 {
    let m = x / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

impl Clf for RobinsonFisher {
    fn train(&mut self, data: &[(&Features, bool)]) {
        for (f, spam) in data {
            for &h in &f.0 {
                let e = self.counts.entry(h).or_default();
                if *spam {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
            if *spam {
                self.ns += 1.0
            } else {
                self.nh += 1.0
            }
        }
    }
    fn score(&self, f: &Features) -> f64 {
        let (s_const, x_const) = (0.16, 0.5);
        let mut ps: Vec<f64> =
            f.0.iter()
                .filter_map(|h| self.counts.get(h))
                .map(|&(s, h)| {
                    let (rs, rh) = (s as f64 / self.ns, h as f64 / self.nh);
                    let p = rs / (rs + rh);
                    let n = (s + h) as f64;
                    (s_const * x_const + n * p) / (s_const + n)
                })
                .filter(|p| (p - 0.5).abs() >= 0.1)
                .collect();
        ps.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
        ps.truncate(150);
        if ps.is_empty() {
            return 0.5;
        }
        let n = ps.len();
        let lh: f64 = ps.iter().map(|p| p.max(1e-200).ln()).sum();
        let ls: f64 = ps.iter().map(|p| (1.0 - p).max(1e-200).ln()).sum();
        let h = chi2q(-2.0 * lh, 2 * n);
        let s = chi2q(-2.0 * ls, 2 * n);
        (1.0 + h - s) / 2.0
    }
}

/// Naive Bayes (Bernoulli-ish: sum of smoothed log ratios of the features present).
struct Nb {
    counts: HashMap<u32, (u32, u32)>,
    ns: f64,
    nh: f64,
}

impl Clf for Nb {
    fn train(&mut self, data: &[(&Features, bool)]) {
        let mut rf = RobinsonFisher {
            counts: std::mem::take(&mut self.counts),
            ns: self.ns,
            nh: self.nh,
        };
        rf.train(data);
        self.counts = rf.counts;
        self.ns = rf.ns;
        self.nh = rf.nh;
    }
    fn score(&self, f: &Features) -> f64 {
        let a = 0.5;
        let mut z = (self.ns / self.nh).ln();
        for h in &f.0 {
            if let Some(&(s, hm)) = self.counts.get(h) {
                z += ((s as f64 + a) / (self.ns + 2.0 * a)).ln()
                    - ((hm as f64 + a) / (self.nh + 2.0 * a)).ln();
            }
        }
        sigmoid(z / (f.0.len().max(1) as f64).sqrt())
    }
}

/// Plain SGD logistic regression, several shuffled epochs.
struct Lr {
    w: Vec<f32>,
    bias: f32,
    rate: f32,
    epochs: usize,
    seed: u64,
}

impl Lr {
    fn margin(&self, f: &Features) -> f32 {
        let mask = (self.w.len() - 1) as u32;
        let x = 1.0 / (f.0.len().max(1) as f32).sqrt();
        self.bias
            + f.0
                .iter()
                .map(|&h| self.w[(h & mask) as usize])
                .sum::<f32>()
                * x
    }
}

impl Clf for Lr {
    fn train(&mut self, data: &[(&Features, bool)]) {
        let mut idx: Vec<usize> = (0..data.len()).collect();
        let mut rng = SplitMix64(self.seed);
        let mask = (self.w.len() - 1) as u32;
        for _ in 0..self.epochs {
            rng.shuffle(&mut idx);
            for &i in &idx {
                let (f, spam) = data[i];
                let y = if spam { 1.0 } else { 0.0 };
                let p = sigmoid(self.margin(f) as f64) as f32;
                let x = 1.0 / (f.0.len().max(1) as f32).sqrt();
                for &h in &f.0 {
                    self.w[(h & mask) as usize] += self.rate * (y - p) * x;
                }
                self.bias += 0.01 * (y - p);
            }
        }
    }
    fn score(&self, f: &Features) -> f64 {
        self.margin(f) as f64
    }
}

/// Logistic regression with per-feature AdaGrad rates (rare features learn fast).
struct Ada {
    w: Vec<f32>,
    g: Vec<f32>,
    bias: f32,
    rate: f32,
    epochs: usize,
    fam_boost: f32,
}

/// AdaGrad LR learned online, one pass, each message repeated until its
/// margin reaches `target` (at most `reps` steps): train-until-no-error.
struct Tone {
    a: Ada,
    target: f32,
    reps: usize,
}

impl Clf for Tone {
    fn train(&mut self, data: &[(&Features, bool)]) {
        let mut idx: Vec<usize> = (0..data.len()).collect();
        SplitMix64(
            std::env::var("SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(7),
        )
        .shuffle(&mut idx);
        let mask = (self.a.w.len() - 1) as u32;
        for &i in &idx {
            let (f, spam) = data[i];
            let y = if spam { 1.0 } else { 0.0 };
            for r in 0..self.reps {
                let m = self.a.margin(f);
                if r > 0 && (if spam { m } else { -m }) >= self.target {
                    break;
                }
                let p = 1.0 / (1.0 + (-m).exp());
                let x = 1.0 / (f.0.len().max(1) as f32).sqrt();
                let g = (y - p) * x;
                for &h in &f.0 {
                    let k = (h & mask) as usize;
                    self.a.g[k] += g * g;
                    self.a.w[k] += self.a.rate * g / (self.a.g[k].sqrt() + 1e-3);
                }
                self.a.bias += 0.01 * (y - p);
            }
        }
    }
    fn score(&self, f: &Features) -> f64 {
        self.a.margin(f) as f64
    }
}

impl Ada {
    fn margin(&self, f: &Features) -> f32 {
        let x = 1.0 / (f.0.len().max(1) as f32).sqrt();
        let mask = (self.w.len() - 1) as u32;
        self.bias
            + f.0
                .iter()
                .map(|&h| self.w[(h & mask) as usize])
                .sum::<f32>()
                * x
    }
}

impl Clf for Ada {
    fn train(&mut self, data: &[(&Features, bool)]) {
        let mut idx: Vec<usize> = (0..data.len()).collect();
        let mut rng = SplitMix64(7);
        let mask = (self.w.len() - 1) as u32;
        let _ = self.fam_boost;
        for _ in 0..self.epochs {
            rng.shuffle(&mut idx);
            for &i in &idx {
                let (f, spam) = data[i];
                let y = if spam { 1.0 } else { 0.0 };
                let p = 1.0 / (1.0 + (-self.margin(f)).exp());
                let x = 1.0 / (f.0.len().max(1) as f32).sqrt();
                let g = (y - p) * x;
                for &h in &f.0 {
                    let k = (h & mask) as usize;
                    self.g[k] += g * g;
                    self.w[k] += self.rate * g / (self.g[k].sqrt() + 1e-3);
                }
                self.bias += 0.01 * (y - p);
            }
        }
    }
    fn score(&self, f: &Features) -> f64 {
        self.margin(f) as f64
    }
}

/// Several online AdaGrad models learned in different orders, averaged.
struct Bag(Vec<Tone>);

impl Clf for Bag {
    fn train(&mut self, data: &[(&Features, bool)]) {
        for (i, t) in self.0.iter_mut().enumerate() {
            let mut d = data.to_vec();
            SplitMix64(1000 + i as u64).shuffle(&mut d);
            t.train(&d);
        }
    }
    fn score(&self, f: &Features) -> f64 {
        self.0.iter().map(|t| t.score(f)).sum::<f64>() / self.0.len() as f64
    }
}

/// Explains one message: trains on every other message, prints the
/// features with the largest contributions.
fn explain_one(msgs: &[(Vec<u8>, bool)], feats: &[Features], labels: &[bool], target: &str) {
    let paths = PATHS.get().unwrap();
    let Some(ti) = paths.iter().position(|p| p.ends_with(target)) else {
        return;
    };
    let train: Vec<(&Features, bool)> = (0..feats.len())
        .filter(|&i| i != ti)
        .map(|i| (&feats[i], labels[i]))
        .collect();
    let mut a = Ada {
        w: vec![0.0; 1 << 22],
        g: vec![0.0; 1 << 22],
        bias: 0.0,
        rate: 0.2,
        epochs: 20,
        fam_boost: 1.0,
    };
    a.train(&train);
    let m = mxguard_message::parse(&msgs[ti].0).unwrap_or_default();
    let mut named = mxguard_learn::tokenize::explain_hashes(&m);
    let mask = (a.w.len() - 1) as u32;
    named.sort_by(|x, y| {
        a.w[(y.0 & mask) as usize]
            .abs()
            .total_cmp(&a.w[(x.0 & mask) as usize].abs())
    });
    println!(
        "{target}: margin {:.3} bias {:.3}",
        a.margin(&feats[ti]),
        a.bias
    );
    for (h, n) in named.iter().take(40) {
        println!("   {:8.3} {n}", a.w[(h & mask) as usize]);
    }
}

fn cv(name: &str, feats: &[Features], labels: &[bool], mk: &dyn Fn() -> Box<dyn Clf>) {
    let t = Instant::now();
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let folds = assign_folds(labels, 5, seed);
    let mut all = Scored::default();
    let mut per = Vec::new();
    let mut worst = Vec::new();
    for k in 0..5 {
        let train: Vec<(&Features, bool)> = (0..feats.len())
            .filter(|&i| folds[i] != k)
            .map(|i| (&feats[i], labels[i]))
            .collect();
        let mut c = mk();
        c.train(&train);
        let mut s = Scored::default();
        for i in (0..feats.len()).filter(|&i| folds[i] == k) {
            let sc = c.score(&feats[i]);
            s.push(sc, labels[i]);
            worst.push((sc, labels[i], i));
        }
        per.push(s.metrics(0.5).one_minus_auc_pct);
        all.extend(&s);
    }
    let m = all.metrics(f64::INFINITY);
    println!(
        "{name:<44} 1-AUC {:6.3}%  FN@FP0.1% {:6.2}%  folds [{}]  {:.1}s",
        m.one_minus_auc_pct,
        m.fn_at_fp01_pct,
        per.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(" "),
        t.elapsed().as_secs_f64()
    );
    if std::env::var_os("WORST").is_some() {
        worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        let paths = PATHS.get().unwrap();
        let spam: Vec<f64> = worst.iter().filter(|w| w.1).map(|w| w.0).collect();
        for w in worst.iter().filter(|w| !w.1).take(12) {
            let below = spam.iter().filter(|&&s| s <= w.0).count();
            println!(
                "   high ham  {:8.3} spam below {:5.2}% {}",
                w.0,
                100.0 * below as f64 / spam.len() as f64,
                paths[w.2]
            );
        }
        for w in worst.iter().rev().filter(|w| w.1).take(8) {
            println!("   low spam  {:8.3} {}", w.0, paths[w.2]);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("MXGUARD_TESTDATA").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata").into()
        }))
        .join("corpus-dev")
    });
    let which: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let sets_asked: Vec<&str> = which
        .iter()
        .copied()
        .filter(|w| !w.starts_with(':'))
        .collect();
    let want = |s: &str| sets_asked.is_empty() || sets_asked.contains(&s);
    let msgs = load(&dir);
    let labels: Vec<bool> = msgs.iter().map(|m| m.1).collect();
    let words_only = Options {
        body_pairs: false,
        headers: false,
        received: false,
        mime: false,
        urls: false,
        html_tags: false,
        shape: false,
        char_ngrams: 0,
        header_values: false,
    };
    let product = Options::default();
    let sets: Vec<(&str, Options)> = vec![
        ("words", words_only),
        (
            "words+bigrams",
            Options {
                body_pairs: true,
                ..words_only
            },
        ),
        ("product", product),
        (
            "product+bigrams",
            Options {
                body_pairs: true,
                ..product
            },
        ),
        (
            "product+html-tags",
            Options {
                html_tags: true,
                ..product
            },
        ),
        (
            "product+char4",
            Options {
                char_ngrams: 4,
                ..product
            },
        ),
        (
            "product-received",
            Options {
                received: false,
                ..product
            },
        ),
        (
            "product-headers",
            Options {
                headers: false,
                ..product
            },
        ),
        (
            "product-urls",
            Options {
                urls: false,
                ..product
            },
        ),
        (
            "product-mime",
            Options {
                mime: false,
                ..product
            },
        ),
        (
            "product-shape",
            Options {
                shape: false,
                ..product
            },
        ),
        (
            "product-header-values",
            Options {
                header_values: false,
                ..product
            },
        ),
    ];
    if let Ok(t) = std::env::var("EXPLAIN") {
        let feats = featurize(&msgs, Options::default());
        for one in t.split(',') {
            explain_one(&msgs, &feats, &labels, one);
        }
        return;
    }
    for (set, opts) in sets {
        if !want(set) {
            continue;
        }
        let t = Instant::now();
        let feats = featurize(&msgs, opts);
        let avg = feats.iter().map(|f| f.len()).sum::<usize>() as f64 / feats.len() as f64;
        println!(
            "-- {set}: {avg:.0} features/message, extracted in {:.2}s",
            t.elapsed().as_secs_f64()
        );
        let wm = |s: &str| which.iter().all(|w| !w.starts_with(':')) || which.contains(&s);
        if wm(":sa") {
            cv(
                &format!("{set} robinson-fisher (SA-style)"),
                &feats,
                &labels,
                &|| {
                    Box::new(RobinsonFisher {
                        counts: HashMap::new(),
                        ns: 0.0,
                        nh: 0.0,
                    })
                },
            );
        }
        if wm(":nb") {
            cv(&format!("{set} naive-bayes"), &feats, &labels, &|| {
                Box::new(Nb {
                    counts: HashMap::new(),
                    ns: 0.0,
                    nh: 0.0,
                })
            });
        }
        if wm(":lr") {
            cv(
                &format!("{set} batch lr sgd 20 epochs"),
                &feats,
                &labels,
                &|| {
                    Box::new(Lr {
                        w: vec![0.0; 1 << 20],
                        bias: 0.0,
                        rate: 0.5,
                        epochs: 20,
                        seed: 7,
                    })
                },
            );
        }
        if wm(":ada") {
            cv(
                &format!("{set} batch lr adagrad 20 epochs"),
                &feats,
                &labels,
                &|| {
                    Box::new(Ada {
                        w: vec![0.0; 1 << 20],
                        g: vec![0.0; 1 << 20],
                        bias: 0.0,
                        rate: 0.2,
                        epochs: 20,
                        fam_boost: 1.0,
                    })
                },
            );
        }
        if wm(":bag") {
            for n in [3usize, 5] {
                cv(
                    &format!("{set} online lr adagrad x{n} orders averaged"),
                    &feats,
                    &labels,
                    &|| {
                        Box::new(Bag((0..n)
                            .map(|_| Tone {
                                a: Ada {
                                    w: vec![0.0; 1 << 20],
                                    g: vec![0.0; 1 << 20],
                                    bias: 0.0,
                                    rate: 1.0,
                                    epochs: 1,
                                    fam_boost: 1.0,
                                },
                                target: 0.0,
                                reps: 1,
                            })
                            .collect()))
                    },
                );
            }
        }
        let bits: u32 = std::env::var("BITS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20);
        for rate in [0.5f32, 1.0, 2.0] {
            if wm(":online") || (rate == 1.0 && wm(":product")) {
                cv(
                    &format!("{set} online lr adagrad rate {rate}"),
                    &feats,
                    &labels,
                    &|| {
                        Box::new(Tone {
                            a: Ada {
                                w: vec![0.0; 1 << bits],
                                g: vec![0.0; 1 << bits],
                                bias: 0.0,
                                rate,
                                epochs: 1,
                                fam_boost: 1.0,
                            },
                            target: 0.0,
                            reps: 1,
                        })
                    },
                );
            }
        }
    }
}
