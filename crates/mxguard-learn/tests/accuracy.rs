//! Accuracy regression: 5-fold cross-validation on corpus-dev, the same
//! runs as `mxguard eval --spam … --ham … --folds 5 --seed N`, N = 1…12.

use mxguard_learn::eval::{self, Settings};
use std::path::PathBuf;

/// Measured when this test was last tightened (docs/BENCHMARKS.md, issue
/// 5): per fold seed, pooled over the folds, (1-AUC %, FN % at FP ≤ 0.1 %).
/// The run is deterministic; the bounds leave room for float rounding only.
/// Twelve seeds, because one fold assignment alone swings the FN figure by
/// half (a few newsletters labelled ham decide it); their mean is the
/// figure the bar (≤ 3%) is held to.
const MEASURED: [(u64, f64, f64); 12] = [
    (1, 0.0156, 2.63),
    (2, 0.0144, 2.58),
    (3, 0.0173, 2.86),
    (4, 0.0320, 2.69),
    (5, 0.0145, 2.41),
    (6, 0.0168, 2.74),
    (7, 0.0174, 3.08),
    (8, 0.0174, 3.02),
    (9, 0.0158, 3.47),
    (10, 0.0166, 3.36),
    (11, 0.0147, 2.35),
    (12, 0.0173, 2.91),
];
/// The mean FN at FP ≤ 0.1% over the twelve seeds (2.8368% measured),
/// held tighter than the per-seed bounds allow together (2.852%).
const MEAN_FN: f64 = 2.837;
const ROUNDING: (f64, f64) = (0.0005, 0.01);

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/testdata"
            ))
        })
        .join("corpus-dev");
    if dir.join("ham").is_dir() && dir.join("spam").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: corpus-dev not found at {} (set MXGUARD_TESTDATA); the accuracy test did not run",
            dir.display()
        );
        None
    }
}

#[test]
fn cross_validation_on_corpus_dev_does_not_regress() {
    let Some(dir) = corpus() else { return };
    let data = eval::load(&[dir.join("spam")], &[dir.join("ham")], 2).unwrap();
    assert_eq!(data.len(), 4578);
    let mut fn_sum = 0.0;
    for (seed, auc, fnr) in MEASURED {
        let settings = Settings {
            seed,
            ..Settings::default()
        };
        let e = eval::cross_validate(&data, 5, &settings);
        let m = e.overall.metrics;
        eprintln!("corpus-dev 5-fold CV, seed {seed}: {m:?}");
        for f in &e.folds {
            eprintln!("  fold {:?}: {:?}", f.fold, f.metrics);
        }
        assert!(
            m.one_minus_auc_pct <= auc + ROUNDING.0,
            "seed {seed}: 1-AUC regressed: {:.4}% > {auc}%",
            m.one_minus_auc_pct
        );
        assert!(
            m.fn_at_fp01_pct <= fnr + ROUNDING.1,
            "seed {seed}: FN at FP <= 0.1% regressed: {:.2}% > {fnr}%",
            m.fn_at_fp01_pct
        );
        fn_sum += m.fn_at_fp01_pct;
    }
    let mean = fn_sum / MEASURED.len() as f64;
    eprintln!(
        "mean FN at FP <= 0.1% over {} seeds: {mean:.3}%",
        MEASURED.len()
    );
    assert!(
        mean <= MEAN_FN + 0.001,
        "mean FN at FP <= 0.1% regressed: {mean:.3}% > {MEAN_FN}%"
    );
}
