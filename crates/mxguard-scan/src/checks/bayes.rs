//! The learning classifier: BAYES_SPAM / BAYES_HAM, rspamd's names.
//!
//! The model (online logistic regression over hashed features, see
//! `mxguard_learn`) is read from memory through a [`ModelHandle`] that the
//! binary hands over in [`Services`](crate::Services) and refreshes from
//! the store: a scan makes no store round trip. The
//! check reuses the task's parse and decoded text.
//!
//! Silent when no handle is attached, no model is loaded, or the model has
//! learned fewer than `[classifier] min_learns` messages of either class.
//! Otherwise, with p the spam probability: BAYES_SPAM when p ≥
//! `spam_threshold`, BAYES_HAM when p ≤ `ham_threshold`, each scaled by
//! the log-odds of its class over those of `full_probability` (at most 1):
//! the model is a logistic regression, so its log-odds are its evidence,
//! and they add up with the rules' scores the way evidence does. The
//! option is the probability.

mod config;

pub use config::ClassifierConfig;

use super::Check;
use crate::Task;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_learn::ModelHandle;
use std::sync::Arc;

pub const BAYES_SPAM: &str = "BAYES_SPAM";
pub const BAYES_HAM: &str = "BAYES_HAM";

pub struct Bayes {
    config: ClassifierConfig,
    handle: Option<Arc<ModelHandle>>,
}

impl Bayes {
    pub fn new(config: &ClassifierConfig, handle: Option<Arc<ModelHandle>>) -> Bayes {
        Bayes {
            config: config.clone(),
            handle,
        }
    }

    /// The spam probability, when the classifier may speak.
    pub fn probability(&self, task: &Task<'_>) -> Option<f64> {
        let model = self.handle.as_ref()?.current()?;
        let min = self.config.min_learns;
        if model.spam_learns < min || model.ham_learns < min || !task.parsed {
            return None;
        }
        let sender = task
            .envelope
            .mail_from
            .as_deref()
            .map(mxguard_core::envelope::strip_path);
        // The Received fields as the message model parsed them for the
        // other checks: the tokeniser does not parse them again.
        let f = mxguard_learn::extract_with_hops(
            &task.message,
            &task.text_parts(),
            sender,
            task.received(),
        );
        Some(model.probability(&f))
    }
}

impl Check for Bayes {
    fn name(&self) -> &'static str {
        "bayes"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                BAYES_SPAM,
                8.0,
                "statistics",
                "Message probably spam, probability: ",
            ),
            SymbolDef::new(
                BAYES_HAM,
                -3.0,
                "statistics",
                "Message probably ham, probability: ",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        let Some(p) = self.probability(task) else {
            return;
        };
        let option = vec![format!("{:.2}%", p * 100.0)];
        let full = self.config.full_probability;
        if p >= self.config.spam_threshold {
            results.insert_scaled(BAYES_SPAM, scale(p, full), option);
        } else if p <= self.config.ham_threshold {
            results.insert_scaled(BAYES_HAM, scale(1.0 - p, full), option);
        }
    }
}

/// The weight factor of a class probability `q`: its log-odds over those
/// of `full`, within 0..=1 (0 at even odds or below).
fn scale(q: f64, full: f64) -> f64 {
    let logit = |x: f64| {
        let x = x.clamp(1e-12, 1.0 - 1e-12);
        (x / (1.0 - x)).ln()
    };
    let f = logit(q) / logit(full);
    if f.is_finite() {
        f.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;
    use mxguard_learn::Model;

    fn spam_msg(i: usize) -> String {
        format!(
            "From: winner{i}@lottery.example\r\nSubject: You won a prize {i}\r\n\r\nClaim your free money now, click http://win.example/{i}\r\n"
        )
    }

    fn ham_msg(i: usize) -> String {
        format!(
            "From: alice@work.example\r\nSubject: meeting notes {i}\r\n\r\nHere are the notes from the project meeting, see you tomorrow.\r\n"
        )
    }

    fn trained(n: usize) -> Model {
        let mut m = Model::new(16);
        for i in 0..n {
            for (raw, spam) in [(spam_msg(i), true), (ham_msg(i), false)] {
                let p = mxguard_message::parse(raw.as_bytes()).unwrap();
                m.learn(&mxguard_learn::extract(&p), spam);
            }
        }
        m
    }

    fn run(check: &Bayes, raw: &str) -> ScanResults {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        check.run(&task, &mut r);
        r
    }

    #[test]
    fn silent_without_handle_model_or_enough_learns() {
        let config = ClassifierConfig {
            min_learns: 5,
            ..Default::default()
        };
        let check = Bayes::new(&config, None);
        assert!(run(&check, &spam_msg(99)).hits.is_empty(), "no handle");
        let handle = ModelHandle::empty();
        let check = Bayes::new(&config, Some(handle.clone()));
        assert!(run(&check, &spam_msg(99)).hits.is_empty(), "no model");
        handle.set(Arc::new(trained(4)), 1);
        assert!(run(&check, &spam_msg(99)).hits.is_empty(), "4 < min_learns");
        handle.set(Arc::new(trained(5)), 2);
        let r = run(&check, &spam_msg(99));
        assert!(r.has(BAYES_SPAM), "{r:?}");
        let h = &r.hits[0];
        assert!(h.factor > 0.8 && h.factor <= 1.0, "{h:?}");
        assert!(h.options[0].ends_with('%'));
        let r = run(&check, &ham_msg(99));
        assert!(r.has(BAYES_HAM), "{r:?}");
    }

    #[test]
    fn weight_follows_the_log_odds() {
        assert_eq!(scale(0.99, 0.99), 1.0);
        assert_eq!(scale(0.9999, 0.99), 1.0);
        assert_eq!(scale(0.5, 0.99), 0.0);
        assert_eq!(scale(0.2, 0.99), 0.0);
        // 0.9 is 9:1, 0.99 is 99:1: less than half the evidence.
        let f = scale(0.9, 0.99);
        assert!((f - 9f64.ln() / 99f64.ln()).abs() < 1e-9, "{f}");
        assert!(scale(0.95, 0.99) > f && scale(0.95, 0.99) < 1.0);
        assert_eq!(scale(f64::NAN, 0.99), 0.0);
    }
}
