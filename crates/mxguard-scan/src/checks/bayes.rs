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
//! `spam_threshold`, scaled by 2(p − 0.5); BAYES_HAM when p ≤
//! `ham_threshold`, scaled by 2(0.5 − p). The option is the probability.

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
        let f = mxguard_learn::extract_with_text(&task.message, &task.text_parts(), sender);
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
                5.1,
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
        if p >= self.config.spam_threshold {
            results.insert_scaled(BAYES_SPAM, (2.0 * (p - 0.5)).clamp(0.0, 1.0), option);
        } else if p <= self.config.ham_threshold {
            results.insert_scaled(BAYES_HAM, (2.0 * (0.5 - p)).clamp(0.0, 1.0), option);
        }
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
}
