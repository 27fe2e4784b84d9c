//! mxguard-feeds: lists of URLs published by others (openphish's feed,
//! phishtank's online-valid list), fetched on a schedule and kept in
//! memory for the scan.
//!
//! A [`Feed`] is one source in one format. Its entries become a compact
//! [`UrlSet`] (8 bytes an entry, see [`set`] for the normalisation) held
//! behind a [`Shared`] snapshot: a refresh builds the new set aside and
//! swaps it in, so a scan never waits on a fetch and always sees one whole
//! version. A fetch or parse that fails keeps the last good set, is
//! logged and counted ([`Feed::failures`]).
//!
//! [`Feeds`] is the registry the daemon keeps across reloads: a check asks
//! it for a feed when it is built ([`Feeds::feed`]), gets the same one back
//! after a SIGHUP (with its set), and `serve` runs [`Feeds::run`], which
//! refreshes each feed once its interval has passed. A file source is also
//! read when first registered, so `mxguard scan` and `config check` see it;
//! URL sources are fetched only by [`Feeds::run`].
//!
//! It must not: know mail (the checks decide what a listed URL means), or
//! fetch without a bound (size, time, redirects: [`fetch::Limits`]).

pub mod fetch;
pub mod set;

pub use fetch::{Limits, Source};
pub use set::{Format, UrlSet};

use mxguard_core::shared::Shared;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// One feed: a source, a format, and the set it last gave.
pub struct Feed {
    /// For logs: the config key it came from, e.g. `phishing.openphish_map`.
    name: String,
    source: Source,
    format: Format,
    set: Shared<UrlSet>,
    state: Mutex<State>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

struct State {
    interval: Duration,
    limits: Limits,
    /// When the last fetch was tried.
    tried: Option<Instant>,
    /// A file's modification time and size when last read.
    stamp: Option<(SystemTime, u64)>,
    /// Failures in a row (logged in full once, then counted).
    failing: u64,
}

impl Feed {
    fn new(name: &str, source: Source, format: Format, interval: Duration, limits: Limits) -> Feed {
        Feed {
            name: name.to_string(),
            source,
            format,
            set: Shared::new(UrlSet::default()),
            state: Mutex::new(State {
                interval,
                limits,
                tried: None,
                stamp: None,
                failing: 0,
            }),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The current set (a snapshot: a refresh does not change it).
    pub fn set(&self) -> Arc<UrlSet> {
        self.set.get()
    }

    /// Whether `url` is in the current set.
    pub fn contains(&self, url: &str) -> bool {
        self.set.get().contains(url)
    }

    /// Refreshes that gave a new set.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Refreshes that failed (the last good set was kept).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn due(&self, now: Instant) -> bool {
        let s = self.state();
        s.tried.is_none_or(|t| now.duration_since(t) >= s.interval)
    }

    /// Fetches and parses the feed now; on success swaps the new set in
    /// and returns its size, on failure keeps the old one. A file that has
    /// not changed since it was last read is not read again.
    pub async fn refresh(&self) -> Result<usize, String> {
        let limits = {
            let mut s = self.state();
            s.tried = Some(Instant::now());
            s.limits
        };
        let stamp = match &self.source {
            Source::File(p) => std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
            Source::Http(_) => None,
        };
        if stamp.is_some() && stamp == self.state().stamp {
            return Ok(self.set.get().len());
        }
        let result = match fetch::fetch(&self.source, limits).await {
            Ok(bytes) => UrlSet::parse(self.format, &bytes),
            Err(e) => Err(e),
        };
        match result {
            Ok(parsed) => {
                let n = parsed.set.len();
                self.set.replace(parsed.set);
                self.fetches.fetch_add(1, Ordering::Relaxed);
                let mut s = self.state();
                s.stamp = stamp;
                if s.failing > 0 {
                    tracing::info!(feed = %self.name, source = %self.source, failures = s.failing, "feed works again");
                }
                s.failing = 0;
                tracing::info!(feed = %self.name, source = %self.source, urls = n, skipped = parsed.skipped, "feed loaded");
                Ok(n)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let kept = self.set.get().len();
                let mut s = self.state();
                s.failing += 1;
                if s.failing == 1 || s.failing.is_power_of_two() {
                    tracing::warn!(feed = %self.name, source = %self.source, error = %e, failures_in_a_row = s.failing, kept_urls = kept, "feed refresh failed; keeping the last good copy");
                }
                Err(e)
            }
        }
    }
}

/// Every feed the checks use, kept across reloads.
#[derive(Default)]
pub struct Feeds {
    feeds: Mutex<HashMap<(Source, Format), Arc<Feed>>>,
}

impl Feeds {
    pub fn new() -> Feeds {
        Feeds::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(Source, Format), Arc<Feed>>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The feed of `source` in `format`, registered now or earlier (then
    /// with its set, and the new interval and limits). `name` says where
    /// it is configured, for logs and errors. A file source that was never
    /// read is read now: an error names it and says why.
    pub fn feed(
        &self,
        name: &str,
        source: &str,
        format: Format,
        interval: Duration,
        limits: Limits,
    ) -> Result<Arc<Feed>, String> {
        let source = Source::parse(source)?;
        let feed = {
            let mut map = self.map();
            let feed = map
                .entry((source.clone(), format))
                .or_insert_with(|| {
                    Arc::new(Feed::new(name, source.clone(), format, interval, limits))
                })
                .clone();
            let mut s = feed.state();
            s.interval = interval;
            s.limits = limits;
            drop(s);
            feed
        };
        if let Source::File(path) = &source
            && feed.state().stamp.is_none()
        {
            let bytes = mxguard_core::files::read_bounded(path, limits.max_size)
                .map_err(|e| format!("cannot read the feed {}: {e}", path.display()))?;
            let parsed = UrlSet::parse(format, &bytes)
                .map_err(|e| format!("the feed {} is not usable: {e}", path.display()))?;
            feed.set.replace(parsed.set);
            let mut s = feed.state();
            s.stamp = std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            s.tried = Some(Instant::now());
        }
        Ok(feed)
    }

    /// How many feeds are registered.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Refreshes, side by side, every feed whose interval has passed (or
    /// that was never fetched), and forgets feeds no check holds any more.
    pub async fn refresh_due(&self) {
        let now = Instant::now();
        let due: Vec<Arc<Feed>> = {
            let mut map = self.map();
            map.retain(|_, f| Arc::strong_count(f) > 1);
            map.values().filter(|f| f.due(now)).cloned().collect()
        };
        let mut set = tokio::task::JoinSet::new();
        for feed in due {
            set.spawn(async move {
                let _ = feed.refresh().await;
            });
        }
        while set.join_next().await.is_some() {}
    }

    /// The refresher `serve` runs: [`Feeds::refresh_due`] at once, then
    /// every `tick`, until `stop` turns true.
    pub async fn run(self: Arc<Self>, tick: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.refresh_due() => {}
                _ = stop.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}
