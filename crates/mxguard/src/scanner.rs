//! The milter's `Scanner`, over the one scan pipeline: early verdicts at
//! the SMTP stages, the full scan at end of message, and the verdict
//! recorded in the store's history and counters. A greylist verdict goes
//! through score greylisting (`mxguard_scan::greylist`) first.

use crate::history_cmd::row;
use mxguard_core::shared::Shared;
use mxguard_core::{Action, Envelope, SmtpStage, Verdict};
use mxguard_scan::Pipeline;
use mxguard_scan::greylist::ScoreGreylist;
use mxguard_store::{Counters, History};
use std::time::Instant;

pub struct PipelineScanner {
    pub pipeline: std::sync::Arc<Shared<Pipeline>>,
    pub history: History,
    pub counters: Counters,
    pub runtime: tokio::runtime::Handle,
    /// Autolearn from verdicts (when `[classifier] autolearn` is on).
    pub classifier: Option<std::sync::Arc<crate::classifier::Classifier>>,
    /// Score greylisting, replaced with the pipeline on reload.
    pub greylist: std::sync::Arc<Shared<ScoreGreylist>>,
}

impl mxguard_milter::Scanner for PipelineScanner {
    fn early(&self, stage: SmtpStage, envelope: &Envelope) -> Option<Verdict> {
        let v = self.pipeline.get().early(stage, envelope)?;
        let (counters, action) = (self.counters.clone(), v.action);
        self.runtime.spawn(async move {
            let _ = counters.incr(&format!("early:{action}"), 1).await;
        });
        Some(v)
    }

    fn scan(&self, envelope: &Envelope, message: &[u8]) -> Verdict {
        let started = Instant::now();
        let mut v = self.pipeline.get().scan(envelope, message);
        // Only greylist verdicts wait for the store, here on a blocking
        // thread (the milter's spawn_blocking): no async worker is held.
        let greylisted = if v.action == Action::Greylist {
            self.runtime
                .block_on(self.greylist.get().judge(&mut v, envelope, message))
        } else {
            None
        };
        if let Some(outcome) = greylisted {
            let counters = self.counters.clone();
            self.runtime.spawn(async move {
                let _ = counters
                    .incr(&format!("greylist:{}", outcome.as_str()), 1)
                    .await;
            });
        }
        if let Some(c) = &self.classifier {
            let sender = envelope
                .mail_from
                .as_deref()
                .map(mxguard_core::envelope::strip_path);
            c.offer(&v, message, sender);
        }
        let r = row(
            envelope,
            message,
            &v,
            started.elapsed().as_secs_f64() * 1000.0,
        );
        let (history, counters) = (self.history.clone(), self.counters.clone());
        // Recorded behind the reply: the store's commit must not hold up Postfix.
        self.runtime.spawn(async move {
            if let Err(e) = history.push(&r).await {
                tracing::error!("history: {e}");
            }
            let _ = counters.incr("scanned", 1).await;
            let _ = counters.incr(&format!("action:{}", r.action), 1).await;
        });
        v
    }
}
