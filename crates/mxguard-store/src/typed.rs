//! Typed operations built once on top of any [`Store`] backend.

use crate::{Durability, ErrorKind, Result, Store, StoreError, Write};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The list of recent verdicts.
pub const HISTORY_KEY: &str = "history";
/// Counters live under `counter:<name>`.
pub const COUNTER_PREFIX: &str = "counter:";
/// More counters than any admin page shows; a bound on the scan.
const MAX_COUNTERS: usize = 10_000;

/// One scanned message, as the history keeps it (JSON in the store).
///
/// Missing fields decode to their defaults and unknown ones are ignored, so
/// rows written by an older or newer mxguard still read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryRow {
    /// Unix time, seconds.
    pub time: f64,
    pub queue_id: Option<String>,
    pub ip: Option<String>,
    pub from: Option<String>,
    pub rcpts: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub action: String,
    pub score: f64,
    pub required_score: f64,
    /// `NAME(score)` of every symbol, e.g. `GTUBE(0.00)`.
    pub symbols: Vec<String>,
    pub size: u64,
    pub scan_time_ms: f64,
}

/// The last N verdicts, newest first (one bounded list).
#[derive(Clone)]
pub struct History {
    store: Arc<dyn Store>,
    size: usize,
}

impl History {
    /// Keeps the newest `size` rows (at least one).
    pub fn new(store: Arc<dyn Store>, size: usize) -> History {
        History {
            store,
            size: size.max(1),
        }
    }

    /// Appends a row; the oldest beyond the size is dropped in the same write.
    pub async fn push(&self, row: &HistoryRow) -> Result<()> {
        self.push_with(row, Durability::Immediate).await
    }

    /// [`History::push`] as a [`Durability::Relaxed`] write: what the scan
    /// service records per message (a crash may lose the last second of
    /// rows; a clean stop loses none).
    pub async fn push_relaxed(&self, row: &HistoryRow) -> Result<()> {
        self.push_with(row, Durability::Relaxed).await
    }

    async fn push_with(&self, row: &HistoryRow, durability: Durability) -> Result<()> {
        let bytes = encode_row(row)?;
        self.store
            .list_push_with(HISTORY_KEY, &bytes, self.size, durability)
            .await
    }

    /// Appends `rows` (oldest first: the last ends newest) and adds to
    /// the [`Counters`] named in `counters`, all as
    /// [`Durability::Relaxed`] writes in one [`Store::write_batch`]: the
    /// scan service records the verdicts of many messages this way, one
    /// round trip to the store for the lot instead of three per message.
    /// Each write stands on its own; the first failure is returned.
    pub async fn record_relaxed(
        &self,
        rows: &[HistoryRow],
        counters: &[(&str, i64)],
    ) -> Result<()> {
        let encoded = rows.iter().map(encode_row).collect::<Result<Vec<_>>>()?;
        let keys: Vec<(String, i64)> = counters
            .iter()
            .map(|(name, by)| (format!("{COUNTER_PREFIX}{name}"), *by))
            .collect();
        let mut writes = Vec::with_capacity(encoded.len() + keys.len());
        writes.extend(encoded.iter().map(|bytes| Write::Push {
            key: HISTORY_KEY,
            value: bytes,
            max_len: self.size,
        }));
        writes.extend(keys.iter().map(|(key, by)| Write::Incr {
            key,
            by: *by,
            ttl: None,
        }));
        self.store.write_batch(&writes, Durability::Relaxed).await
    }

    /// Up to `limit` rows, newest first. A row that does not decode is an
    /// error, not a panic.
    pub async fn recent(&self, limit: usize) -> Result<Vec<HistoryRow>> {
        let raw = self.store.list_range(HISTORY_KEY, 0, limit).await?;
        raw.iter()
            .enumerate()
            .map(|(i, b)| {
                serde_json::from_slice(b).map_err(|e| {
                    StoreError::new(
                        ErrorKind::Corrupt,
                        format!(
                            "history row {i} (0 = newest) in the {} is damaged ({e}); delete the key `{HISTORY_KEY}` to clear the history",
                            self.store.describe()
                        ),
                    )
                })
            })
            .collect()
    }

    /// How many rows are kept now.
    pub async fn len(&self) -> Result<usize> {
        self.store.list_len(HISTORY_KEY).await
    }

    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }
}

fn encode_row(row: &HistoryRow) -> Result<Vec<u8>> {
    serde_json::to_vec(row).map_err(|e| {
        StoreError::new(
            ErrorKind::Invalid,
            format!("cannot encode a history row: {e}"),
        )
    })
}

/// Named counters (scanned, per action, learned, …), kept forever.
#[derive(Clone)]
pub struct Counters {
    store: Arc<dyn Store>,
}

impl Counters {
    pub fn new(store: Arc<dyn Store>) -> Counters {
        Counters { store }
    }

    /// Adds `by` to `name` and returns the new value.
    pub async fn incr(&self, name: &str, by: i64) -> Result<i64> {
        self.store
            .incr(&format!("{COUNTER_PREFIX}{name}"), by, None)
            .await
    }

    /// [`Counters::incr`] as a [`Durability::Relaxed`] write: per-message
    /// counting, where a crash may lose the last second of counts.
    pub async fn incr_relaxed(&self, name: &str, by: i64) -> Result<i64> {
        self.store
            .incr_with(
                &format!("{COUNTER_PREFIX}{name}"),
                by,
                None,
                Durability::Relaxed,
            )
            .await
    }

    /// One counter; 0 if it was never incremented.
    pub async fn get(&self, name: &str) -> Result<i64> {
        let key = format!("{COUNTER_PREFIX}{name}");
        match self.store.get(&key).await? {
            None => Ok(0),
            Some(v) => self.parse(&key, &v),
        }
    }

    /// Every counter by name (without the `counter:` prefix).
    pub async fn all(&self) -> Result<BTreeMap<String, i64>> {
        self.store
            .scan_prefix(COUNTER_PREFIX, MAX_COUNTERS)
            .await?
            .into_iter()
            .map(|(k, v)| {
                let n = self.parse(&k, &v)?;
                let name = k.strip_prefix(COUNTER_PREFIX).unwrap_or(&k).to_string();
                Ok((name, n))
            })
            .collect()
    }

    fn parse(&self, key: &str, v: &[u8]) -> Result<i64> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Corrupt,
                    format!(
                        "the counter `{key}` in the {} is not a number; delete that key to reset it",
                        self.store.describe()
                    ),
                )
            })
    }
}
