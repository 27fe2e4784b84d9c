//! Typed operations built once on top of any [`Store`] backend.

use crate::{Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const HISTORY_KEY: &str = "history";
const COUNTER_PREFIX: &str = "counter:";

/// One scanned message, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// `NAME(score)` of every symbol.
    pub symbols: Vec<String>,
    pub size: u64,
    pub scan_time_ms: f64,
}

/// The last N verdicts.
#[derive(Clone)]
pub struct History {
    store: Arc<dyn Store>,
    size: usize,
}

impl History {
    pub fn new(store: Arc<dyn Store>, size: usize) -> History {
        History {
            store,
            size: size.max(1),
        }
    }

    pub async fn push(&self, row: &HistoryRow) -> Result<()> {
        let bytes = serde_json::to_vec(row)
            .map_err(|e| StoreError(format!("cannot encode a history row: {e}")))?;
        self.store.list_push(HISTORY_KEY, &bytes, self.size).await
    }

    /// Newest first. A row that does not decode is an error, not a panic.
    pub async fn recent(&self, limit: usize) -> Result<Vec<HistoryRow>> {
        self.store
            .list_range(HISTORY_KEY, 0, limit)
            .await?
            .iter()
            .map(|b| {
                serde_json::from_slice(b)
                    .map_err(|e| StoreError(format!("history row is corrupt: {e}")))
            })
            .collect()
    }
}

/// Named counters (scanned, per action, learned, …).
#[derive(Clone)]
pub struct Counters {
    store: Arc<dyn Store>,
}

impl Counters {
    pub fn new(store: Arc<dyn Store>) -> Counters {
        Counters { store }
    }

    pub async fn incr(&self, name: &str, by: i64) -> Result<i64> {
        self.store
            .incr(&format!("{COUNTER_PREFIX}{name}"), by, None)
            .await
    }

    pub async fn all(&self) -> Result<BTreeMap<String, i64>> {
        Ok(self
            .store
            .scan_prefix(COUNTER_PREFIX, 10_000)
            .await?
            .into_iter()
            .map(|(k, v)| {
                let n = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                (k[COUNTER_PREFIX.len()..].to_string(), n)
            })
            .collect())
    }
}
