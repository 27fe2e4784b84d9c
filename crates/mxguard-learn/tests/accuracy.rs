//! Accuracy regression: 5-fold cross-validation on corpus-dev (seed 1),
//! the same run as `mxguard eval --spam … --ham … --folds 5 --seed 1`.

use mxguard_learn::eval::{self, Settings};
use std::path::PathBuf;

/// Measured when this test was written (docs/BENCHMARKS.md, issue 5):
/// 1-AUC 0.0593 %, FN at FP ≤ 0.1 % 14.76 % (pooled over the folds). The
/// run is deterministic; the bounds leave room for float rounding only.
const MAX_ONE_MINUS_AUC_PCT: f64 = 0.060;
const MAX_FN_AT_FP01_PCT: f64 = 14.8;

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
    let e = eval::cross_validate(&data, 5, &Settings::default());
    let m = e.overall.metrics;
    eprintln!("corpus-dev 5-fold CV: {m:?}");
    for f in &e.folds {
        eprintln!("  fold {:?}: {:?}", f.fold, f.metrics);
    }
    assert!(
        m.one_minus_auc_pct <= MAX_ONE_MINUS_AUC_PCT,
        "1-AUC regressed: {:.4}% > {MAX_ONE_MINUS_AUC_PCT}%",
        m.one_minus_auc_pct
    );
    assert!(
        m.fn_at_fp01_pct <= MAX_FN_AT_FP01_PCT,
        "FN at FP <= 0.1% regressed: {:.2}% > {MAX_FN_AT_FP01_PCT}%",
        m.fn_at_fp01_pct
    );
}
