//! Evaluation metrics and reproducible fold assignment.
//!
//! Conventions (the same in `bench/bayes-peers.sh`, so figures compare):
//! a score is "spam probability"; a message is classified spam when its
//! score is **≥** the threshold. 1-AUC counts tied (ham, spam) pairs as half
//! wrong. "FN at FP ≤ 0.1%" picks the lowest threshold whose false-positive
//! rate is at most 0.1% (`floor(0.001 × hams)` hams may score at or above
//! it) and reports the spam share below it.

/// Scores of one evaluation: (score, is_spam).
#[derive(Debug, Clone, Default)]
pub struct Scored(pub Vec<(f64, bool)>);

/// The figures the eval command prints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub hams: usize,
    pub spams: usize,
    /// 1 − area under the ROC curve, in percent.
    pub one_minus_auc_pct: f64,
    /// At the configured threshold, in percent.
    pub fp_pct: f64,
    pub fn_pct: f64,
    /// The FN rate (percent) at the threshold where FP ≤ 0.1%.
    pub fn_at_fp01_pct: f64,
}

impl Scored {
    pub fn push(&mut self, score: f64, spam: bool) {
        self.0.push((score, spam));
    }

    pub fn extend(&mut self, other: &Scored) {
        self.0.extend_from_slice(&other.0);
    }

    pub fn metrics(&self, threshold: f64) -> Metrics {
        let hams = self.0.iter().filter(|s| !s.1).count();
        let spams = self.0.len() - hams;
        let fp = self.0.iter().filter(|s| !s.1 && s.0 >= threshold).count();
        let fnn = self.0.iter().filter(|s| s.1 && s.0 < threshold).count();
        Metrics {
            hams,
            spams,
            one_minus_auc_pct: 100.0 * (1.0 - auc(&self.0)),
            fp_pct: pct(fp, hams),
            fn_pct: pct(fnn, spams),
            fn_at_fp01_pct: fn_at_fp(&self.0, 0.001),
        }
    }
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// Area under the ROC curve (Mann–Whitney U), ties counted half.
pub fn auc(scores: &[(f64, bool)]) -> f64 {
    let mut v: Vec<(f64, bool)> = scores.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut hams_below, mut wins) = (0f64, 0f64);
    let hams = v.iter().filter(|s| !s.1).count() as f64;
    let spams = v.len() as f64 - hams;
    if hams == 0.0 || spams == 0.0 {
        return 1.0;
    }
    let mut i = 0;
    while i < v.len() {
        // A block of equal scores.
        let mut j = i;
        let (mut h, mut s) = (0f64, 0f64);
        while j < v.len() && v[j].0 == v[i].0 {
            if v[j].1 {
                s += 1.0;
            } else {
                h += 1.0;
            }
            j += 1;
        }
        wins += s * (hams_below + h / 2.0);
        hams_below += h;
        i = j;
    }
    wins / (hams * spams)
}

/// FN rate (percent) at the lowest threshold with FP rate ≤ `max_fp`.
pub fn fn_at_fp(scores: &[(f64, bool)], max_fp: f64) -> f64 {
    let mut ham: Vec<f64> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    let spam: Vec<f64> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    if ham.is_empty() || spam.is_empty() {
        return 0.0;
    }
    ham.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fp * ham.len() as f64 + 1e-9).floor() as usize;
    // Spam is caught when strictly above the (allowed+1)-th highest ham
    // score; at most `allowed` hams lie above it.
    let t = ham[allowed.min(ham.len() - 1)];
    let missed = spam.iter().filter(|&&s| s <= t).count();
    100.0 * missed as f64 / spam.len() as f64
}

/// A small, fast, seedable PRNG (SplitMix64): fold assignment must be
/// reproducible across runs, platforms and the peer scripts.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Assigns each of `n` items to one of `k` folds, stratified by class:
/// the items of each class (in their given order, e.g. sorted by path) are
/// shuffled with `seed` and dealt round-robin. Returns the fold of each item.
pub fn assign_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(2);
    let mut folds = vec![0; labels.len()];
    let mut rng = SplitMix64(seed);
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        for (n, i) in idx.into_iter().enumerate() {
            folds[i] = n % k;
        }
    }
    folds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_ties() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(auc(&perfect), 1.0);
        let tied = [(0.5, false), (0.5, true)];
        assert_eq!(auc(&tied), 0.5);
        let one_wrong = [(0.1, false), (0.9, false), (0.8, true), (0.95, true)];
        assert_eq!(auc(&one_wrong), 0.75);
    }

    #[test]
    fn fn_at_low_fp() {
        // 1000 hams: one may be above the threshold.
        let mut v: Vec<(f64, bool)> = (0..1000).map(|i| (i as f64 / 2000.0, false)).collect();
        v.push((0.99, false));
        v.push((0.6, true));
        v.push((0.4, true));
        // 1001 hams → 1 allowed; threshold = 2nd highest ham = 0.4995.
        assert_eq!(fn_at_fp(&v, 0.001), 50.0);
        let m = Scored(v).metrics(0.5);
        assert_eq!(m.fp_pct, 100.0 / 1001.0);
        assert_eq!(m.fn_pct, 50.0);
    }

    #[test]
    fn folds_are_stratified_and_reproducible() {
        let labels: Vec<bool> = (0..103).map(|i| i % 3 == 0).collect();
        let a = assign_folds(&labels, 5, 7);
        assert_eq!(a, assign_folds(&labels, 5, 7));
        assert_ne!(a, assign_folds(&labels, 5, 8));
        for f in 0..5 {
            let spam = (0..103).filter(|&i| a[i] == f && labels[i]).count();
            assert!((6..=7).contains(&spam), "fold {f}: {spam}");
        }
    }
}
