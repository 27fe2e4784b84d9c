//! The classifier's runtime in `mxguard serve`: the model handle the scan
//! pipeline reads, a task that refreshes it from the store every
//! `[classifier] refresh_interval`, and autolearn from verdicts.

use mxguard_core::Verdict;
use mxguard_learn::ModelHandle;
use mxguard_learn::persist::{self, Class, Learner, Sample};
use mxguard_scan::checks::bayes::ClassifierConfig;
use mxguard_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages waiting to be autolearned, besides the batch being gathered;
/// more are dropped (learning is a bonus, never a reason to hold up mail or
/// grow memory). Their bytes are bounded too: `[classifier]
/// autolearn_queue_bytes`.
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
    queue: Arc<QueueBytes>,
}

/// The bytes of messages queued for autolearn, from `offer` until their
/// batch is parsed, under `[classifier] autolearn_queue_bytes`; and the
/// messages dropped past it (or past the count), logged once per burst.
struct QueueBytes {
    cap: u64,
    held: AtomicU64,
    /// Dropped in the current burst (0: none going on), and since start.
    burst: AtomicU64,
    dropped: AtomicU64,
}

impl QueueBytes {
    fn new(cap: u64) -> QueueBytes {
        QueueBytes {
            cap,
            held: AtomicU64::new(0),
            burst: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn try_take(&self, n: u64) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&after| after <= self.cap)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }

    /// A message not learned: the first of a burst is logged.
    fn dropped(&self, bytes: u64, why: &str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if self.burst.fetch_add(1, Ordering::AcqRel) == 0 {
            tracing::warn!(
                bytes,
                queued_bytes = self.held.load(Ordering::Acquire),
                autolearn_queue_bytes = self.cap,
                "autolearn: {why}; messages are not learned until the queue drains (counted)"
            );
        }
    }

    /// A message queued: ends a burst of drops.
    fn queued(&self) {
        if self.burst.load(Ordering::Acquire) == 0 {
            return;
        }
        let n = self.burst.swap(0, Ordering::AcqRel);
        if n > 0 {
            tracing::warn!(
                dropped = n,
                dropped_total = self.dropped.load(Ordering::Relaxed),
                "autolearn: the queue has room again; {n} messages were not learned"
            );
        }
    }
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
            let queue = Arc::new(QueueBytes::new(config.autolearn_queue_bytes.0));
            let learner = Learner::new(store, config.table_bits).with_handle(handle.clone());
            tasks.push(tokio::spawn(autolearn_task(
                learner,
                rx,
                queue.clone(),
                stop,
            )));
            Autolearn {
                spam_threshold: config.autolearn_spam_threshold,
                ham_threshold: config.autolearn_ham_threshold,
                tx,
                queue,
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
        let bytes = raw.len() as u64;
        if !a.queue.try_take(bytes) {
            a.queue.dropped(bytes, "autolearn_queue_bytes reached");
            return;
        }
        let sender = envelope_sender.map(str::to_string);
        if a.tx.try_send((raw.to_vec(), sender, class)).is_err() {
            a.queue.give_back(bytes);
            a.queue
                .dropped(bytes, "the queue holds as many messages as it may");
            return;
        }
        a.queue.queued();
    }

    /// Messages not autolearned because the queue was full, since start.
    #[cfg(test)]
    pub fn autolearn_dropped(&self) -> u64 {
        self.autolearn
            .as_ref()
            .map_or(0, |a| a.queue.dropped.load(Ordering::Relaxed))
    }

    /// Bytes of messages waiting to be autolearned.
    #[cfg(test)]
    pub fn autolearn_queued_bytes(&self) -> u64 {
        self.autolearn
            .as_ref()
            .map_or(0, |a| a.queue.held.load(Ordering::Acquire))
    }
}

async fn autolearn_task(
    learner: Learner,
    mut rx: mpsc::Receiver<Queued>,
    queue: Arc<QueueBytes>,
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
        let stopping = *stop.borrow();
        if stopping {
            // What is still queued is learned before the task ends.
            while let Ok(m) = rx.try_recv() {
                pending.push(m);
            }
        }
        if (flush || stopping) && !pending.is_empty() {
            let batch = std::mem::take(&mut pending);
            let batch_bytes: u64 = batch.iter().map(|(raw, _, _)| raw.len() as u64).sum();
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
            // The raw copies are gone once parsed.
            queue.give_back(batch_bytes);
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
        if stopping || rx.is_closed() && pending.is_empty() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Action;
    use mxguard_core::config::ByteSize;
    use mxguard_store::EmbeddedStore;

    fn verdict(score: f64) -> Verdict {
        Verdict {
            action: Action::NoAction,
            score,
            required_score: 15.0,
            symbols: Default::default(),
            messages: Default::default(),
            is_skipped: false,
            forced_by: None,
            add_headers: Vec::new(),
        }
    }

    /// Each queued message is a copy of up to 50 MiB: the queue is bounded
    /// by bytes, and what does not fit is dropped and counted.
    #[tokio::test]
    async fn autolearn_drops_past_the_byte_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let config = ClassifierConfig {
            autolearn: true,
            autolearn_queue_bytes: ByteSize(1 << 20),
            ..ClassifierConfig::default()
        };
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let (classifier, tasks) = Classifier::start(&config, store, stop).await;
        let mut raw = b"Subject: cheap meds\r\n\r\n".to_vec();
        raw.resize(300 * 1024, b'x');
        // No await in between: the autolearn task cannot drain meanwhile.
        for _ in 0..10 {
            classifier.offer(&verdict(20.0), &raw, Some("a@example.com"));
        }
        assert_eq!(classifier.autolearn_queued_bytes(), 3 * raw.len() as u64);
        assert_eq!(classifier.autolearn_dropped(), 7);
        // A verdict in between the thresholds is not offered at all.
        classifier.offer(&verdict(5.0), &raw, None);
        assert_eq!(classifier.autolearn_dropped(), 7);

        // The task gives the bytes back once it has parsed its batch.
        let _ = stop_tx.send(true);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(classifier.autolearn_queued_bytes(), 0);
    }
}
