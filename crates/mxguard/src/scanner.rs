//! The binary's side of the one scan service (`mxguard_scan::ScanService`):
//! the service as `serve` runs it, recording verdicts in the store's
//! history and counters behind the answer, offering clear verdicts to
//! the classifier's autolearn, and putting greylist verdicts through score
//! greylisting (`mxguard_scan::greylist`).

use crate::classifier::Classifier;
use mxguard_core::Verdict;
use mxguard_core::config::Config;
use mxguard_core::shared::Shared;
use mxguard_scan::greylist::ScoreGreylist;
use mxguard_scan::{Pipeline, Recording, ScanService};
use mxguard_store::{Counters, History, Store};
use std::sync::Arc;

impl mxguard_scan::Autolearn for Classifier {
    fn offer(&self, verdict: &Verdict, raw: &[u8], envelope_sender: Option<&str>) {
        Classifier::offer(self, verdict, raw, envelope_sender);
    }
}

/// The service the milter (and later the HTTP API) calls: at most
/// `[milter] max_scans` CPU phases at once.
pub fn service(
    pipeline: Arc<Shared<Pipeline>>,
    config: &Config,
    store: Arc<dyn Store>,
    classifier: Arc<Classifier>,
    greylist: Arc<Shared<ScoreGreylist>>,
) -> ScanService {
    ScanService::new(pipeline, config.milter.scan_slots())
        .with_recording(Recording {
            history: History::new(store.clone(), config.store.history_size as usize),
            counters: Counters::new(store),
            wait: false,
        })
        .with_autolearn(classifier)
        .with_greylist(greylist)
}
