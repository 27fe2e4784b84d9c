//! `[classifier]`: the learning classifier (BAYES_SPAM / BAYES_HAM). Read by
//! the check, by autolearn and by the `learn` commands; it lives with the
//! check because `mxguard-learn` knows neither serde nor the config.

use mxguard_core::config::{ByteSize, Problems, Seconds, Section};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    pub enabled: bool,
    /// The classifier stays silent until it has learned this many messages
    /// of *each* class (`mxguard stats` says why it is silent).
    pub min_learns: u64,
    /// BAYES_SPAM when the spam probability is at least this (0..1); the
    /// symbol's weight is scaled by the probability's log-odds (see
    /// `full_probability`).
    pub spam_threshold: f64,
    /// BAYES_HAM when the spam probability is at most this (0..1), scaled
    /// the same way by the ham probability.
    pub ham_threshold: f64,
    /// The probability at which BAYES_SPAM (and, for ham, BAYES_HAM) counts
    /// its full weight; below it the weight is scaled by
    /// logit(p) / logit(full_probability), the classifier's own evidence
    /// scale, so 0.9 and 0.999 weigh very differently (a linear scale put
    /// them within a fifth of each other).
    pub full_probability: f64,
    /// How often a scanner checks the store for a newer model (one small
    /// read per interval, none per message).
    pub refresh_interval: Seconds,
    /// Learn from verdicts: messages scoring at least
    /// `autolearn_spam_threshold` as spam, at most `autolearn_ham_threshold`
    /// as ham. The classifier's own symbols are left out of that score.
    pub autolearn: bool,
    pub autolearn_spam_threshold: f64,
    pub autolearn_ham_threshold: f64,
    /// The most bytes of messages waiting to be autolearned (each is a copy
    /// of the message). Past it a message is not learned: it is counted and
    /// logged once per burst, and mail is never held up for it.
    pub autolearn_queue_bytes: ByteSize,
    /// log2 of the model's feature table size, 12 to 24 (default 20: a
    /// scanner holds 4 MiB of mean weights; a learner, `mxguard learn` or
    /// `serve` with autolearn, 36 MiB for its four members and rewrites up
    /// to 33 bytes per used slot in the store at each learn; each step up
    /// doubles these). Changing it starts a new, empty model.
    pub table_bits: u8,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            enabled: true,
            min_learns: 200,
            spam_threshold: 0.9,
            ham_threshold: 0.1,
            full_probability: 0.99,
            refresh_interval: Seconds(10),
            autolearn: false,
            autolearn_spam_threshold: 12.0,
            autolearn_ham_threshold: -0.5,
            autolearn_queue_bytes: ByteSize(32 * 1024 * 1024),
            table_bits: 20,
        }
    }
}

impl Section for ClassifierConfig {
    const KEY: &'static str = "classifier";

    fn validate(&self, problems: &mut Problems) {
        problems.extend_file_keys(ClassifierConfig::validate(self));
    }
}

impl ClassifierConfig {
    /// Errors as (key path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut err = |key: &str, message: String| {
            errors.push((format!("classifier.{key}"), message));
        };
        let mut finite = true;
        for (key, v, hint) in [
            (
                "spam_threshold",
                self.spam_threshold,
                "a probability like 0.9",
            ),
            (
                "ham_threshold",
                self.ham_threshold,
                "a probability like 0.1",
            ),
            (
                "full_probability",
                self.full_probability,
                "a probability like 0.99",
            ),
            (
                "autolearn_spam_threshold",
                self.autolearn_spam_threshold,
                "a score like 12.0, or autolearn = false to stop learning",
            ),
            (
                "autolearn_ham_threshold",
                self.autolearn_ham_threshold,
                "a score like -0.5, or autolearn = false to stop learning",
            ),
        ] {
            if !v.is_finite() {
                err(
                    key,
                    format!("{v} is not a finite number (nan and inf are refused); write {hint}"),
                );
                finite = false;
            }
        }
        // The comparisons below mean nothing with nan or inf.
        for (key, v) in [
            ("spam_threshold", self.spam_threshold),
            ("ham_threshold", self.ham_threshold),
        ] {
            if v.is_finite() && !(0.0..=1.0).contains(&v) {
                err(key, format!("{v} is not a probability between 0 and 1"));
            }
        }
        if finite && !(self.full_probability > 0.5 && self.full_probability < 1.0) {
            err(
                "full_probability",
                format!(
                    "{} is not a probability above 0.5 and below 1 (e.g. 0.99)",
                    self.full_probability
                ),
            );
        }
        if finite && self.ham_threshold >= self.spam_threshold {
            err(
                "ham_threshold",
                format!(
                    "{} must be below spam_threshold ({})",
                    self.ham_threshold, self.spam_threshold
                ),
            );
        }
        if finite && self.autolearn_ham_threshold >= self.autolearn_spam_threshold {
            err(
                "autolearn_ham_threshold",
                format!(
                    "{} must be below autolearn_spam_threshold ({})",
                    self.autolearn_ham_threshold, self.autolearn_spam_threshold
                ),
            );
        }
        if !(12..=24).contains(&self.table_bits) {
            err(
                "table_bits",
                format!("{} is outside 12..=24", self.table_bits),
            );
        }
        if self.autolearn && self.autolearn_queue_bytes.0 == 0 {
            err(
                "autolearn_queue_bytes",
                "0 would learn nothing; give a size like \"32M\", or set autolearn = false".into(),
            );
        }
        if self.refresh_interval.0 == 0 {
            err("refresh_interval", "must be at least 1 second".into());
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        assert!(ClassifierConfig::default().validate().is_empty());
        let c = ClassifierConfig {
            spam_threshold: 1.5,
            ham_threshold: 0.95,
            table_bits: 40,
            ..Default::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|e| e.0).collect();
        assert!(keys.contains(&"classifier.spam_threshold".to_string()));
        assert!(keys.contains(&"classifier.table_bits".to_string()));
    }

    #[test]
    fn nan_and_inf_thresholds_are_refused_once_each() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let c = ClassifierConfig {
                autolearn_spam_threshold: bad,
                autolearn_ham_threshold: bad,
                ham_threshold: bad,
                table_bits: 40,
                ..Default::default()
            };
            let errors = c.validate();
            let keys: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "classifier.ham_threshold",
                    "classifier.autolearn_spam_threshold",
                    "classifier.autolearn_ham_threshold",
                    "classifier.table_bits"
                ],
                "{bad}: {errors:?}"
            );
            assert!(errors[1].1.contains(&bad.to_string()), "{errors:?}");
            assert!(errors[1].1.contains("finite"), "{errors:?}");
        }
    }

    #[test]
    fn parses_from_toml() {
        let c: ClassifierConfig =
            toml::from_str("min_learns = 5\nautolearn = true\nrefresh_interval = \"1m\"").unwrap();
        assert_eq!(c.min_learns, 5);
        assert_eq!(c.autolearn_queue_bytes, ByteSize(32 << 20));
        let small: ClassifierConfig = toml::from_str("autolearn_queue_bytes = \"4M\"").unwrap();
        assert_eq!(small.autolearn_queue_bytes, ByteSize(4 << 20));
        assert!(c.autolearn);
        assert_eq!(c.refresh_interval, Seconds(60));
        assert!(toml::from_str::<ClassifierConfig>("min_learn = 5").is_err());
    }
}
