//! The classifier's runtime in `mxguard serve`: the model handle the scan
//! pipeline reads, a task that refreshes it from the store every
//! `[classifier] refresh_interval`, and autolearn from verdicts.

use mxguard_core::Verdict;
use mxguard_core::config::ClassifierConfig;
use mxguard_learn::ModelHandle;
use mxguard_learn::persist::{self, Class, Learner, Sample};
use mxguard_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages waiting to be autolearned; more are dropped (learning is a
/// bonus, never a reason to hold up mail or grow memory).
const AUTOLEARN_QUEUE: usize = 1024;
/// Autolearn batches: at most this many messages, or what arrived within
/// this long of the first one. Each batch rewrites the learners' model in
/// the store (up to 33 bytes per used slot: 35 MB in a full 2^20 table),
/// so a quiet server must not write it for every message.
const AUTOLEARN_BATCH: usize = 256;
const AUTOLEARN_FLUSH: Duration = Duration::from_secs(60);

pub struct Classifier {
    pub handle: Arc<ModelHandle>,
    autolearn: Option<Autolearn>,
}

struct Autolearn {
    spam_threshold: f64,
    ham_threshold: f64,
    tx: mpsc::Sender<Queued>,
}

/// A message waiting to be autolearned: raw bytes, envelope sender, class.
type Queued = (Vec<u8>, Option<String>, Class);

impl Classifier {
    /// Loads the model (a missing or unreadable model leaves the classifier
    /// silent, with a log line), and starts the refresh and autolearn tasks
    /// on the current runtime. They end with `stop`, autolearn after
    /// learning what it has queued: the caller awaits the returned tasks
    /// before the process exits.
    pub async fn start(
        config: &ClassifierConfig,
        store: Arc<dyn Store>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> (Classifier, Vec<tokio::task::JoinHandle<()>>) {
        let handle = ModelHandle::empty();
        match persist::refresh(&handle, &*store).await {
            Ok(true) => {
                if let Some(m) = handle.current() {
                    tracing::info!(
                        spam = m.spam_learns,
                        ham = m.ham_learns,
                        "classifier model loaded"
                    );
                }
            }
            Ok(false) => tracing::info!("classifier: no model yet; learn with `mxguard learn`"),
            Err(e) => tracing::error!("classifier: {e}"),
        }
        let interval = Duration::from_secs(config.refresh_interval.0.max(1));
        let mut tasks = Vec::new();
        {
            let (handle, store, mut stop) = (handle.clone(), store.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            match persist::refresh(&handle, &*store).await {
                                Ok(true) => tracing::info!(version = handle.version(), "classifier model refreshed"),
                                Ok(false) => {}
                                Err(e) => tracing::warn!("classifier refresh: {e}"),
                            }
                        }
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
        let autolearn = config.autolearn.then(|| {
            let (tx, rx) = mpsc::channel(AUTOLEARN_QUEUE);
            let learner = Learner::new(store, config.table_bits).with_handle(handle.clone());
            tasks.push(tokio::spawn(autolearn_task(learner, rx, stop)));
            Autolearn {
                spam_threshold: config.autolearn_spam_threshold,
                ham_threshold: config.autolearn_ham_threshold,
                tx,
            }
        });
        (Classifier { handle, autolearn }, tasks)
    }

    /// Queues a scanned message for autolearn when its verdict is clear
    /// enough. The classifier's own symbols are left out of the score, so
    /// it does not teach itself what it already believes. The envelope
    /// sender stands in for the Return-Path the message gets on delivery.
    pub fn offer(&self, verdict: &Verdict, raw: &[u8], envelope_sender: Option<&str>) {
        let Some(a) = &self.autolearn else { return };
        if verdict.is_skipped || verdict.forced_by.is_some() {
            return;
        }
        let own: f64 = verdict
            .symbols
            .values()
            .filter(|s| s.name == "BAYES_SPAM" || s.name == "BAYES_HAM")
            .map(|s| s.score)
            .sum();
        let score = verdict.score - own;
        let class = if score >= a.spam_threshold {
            Class::Spam
        } else if score <= a.ham_threshold {
            Class::Ham
        } else {
            return;
        };
        let sender = envelope_sender.map(str::to_string);
        if a.tx.try_send((raw.to_vec(), sender, class)).is_err() {
            tracing::debug!("autolearn queue full; message not learned");
        }
    }
}

async fn autolearn_task(
    learner: Learner,
    mut rx: mpsc::Receiver<Queued>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut pending: Vec<Queued> = Vec::new();
    // When the pending batch is due: AUTOLEARN_FLUSH after its first message.
    let mut due = tokio::time::Instant::now();
    loop {
        let flush = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    if pending.is_empty() {
                        due = tokio::time::Instant::now() + AUTOLEARN_FLUSH;
                    }
                    pending.push(m);
                    pending.len() >= AUTOLEARN_BATCH
                }
                None => true,
            },
            _ = tokio::time::sleep_until(due), if !pending.is_empty() => true,
            _ = stop.changed() => true,
        };
        if flush && !pending.is_empty() {
            let batch = std::mem::take(&mut pending);
            // Parsing is CPU work: off the async threads.
            let samples = tokio::task::spawn_blocking(move || {
                let mut spam = Vec::new();
                let mut ham = Vec::new();
                for (raw, sender, class) in batch {
                    if let Some(s) = Sample::from_raw_with_sender(&raw, sender.as_deref()) {
                        match class {
                            Class::Spam => spam.push(s),
                            Class::Ham => ham.push(s),
                        }
                    }
                }
                (spam, ham)
            })
            .await;
            if let Ok((spam, ham)) = samples {
                for (s, c) in [(spam, Class::Spam), (ham, Class::Ham)] {
                    if s.is_empty() {
                        continue;
                    }
                    match learner.learn(&s, c).await {
                        Ok(r) => {
                            tracing::debug!(class = c.name(), learned = r.learned, "autolearn")
                        }
                        Err(e) => tracing::warn!("autolearn: {e}"),
                    }
                }
            }
        }
        if *stop.borrow() || rx.is_closed() && pending.is_empty() {
            break;
        }
    }
}
