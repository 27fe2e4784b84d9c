//! What the fuzz targets share: an in-memory [`Store`] (so the policy
//! engine's greylisting and rate limits run without disk I/O per input) and
//! a way to split one input into several fields.

use mxguard_store::{BoxFuture, Entries, Purged, Result, Store, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Values and lists in memory; TTLs are ignored (a fuzz run is short).
/// Cleared by [`MemoryStore::clear`] so a long run does not grow.
#[derive(Default)]
pub struct MemoryStore {
    values: Mutex<BTreeMap<String, Vec<u8>>>,
    lists: Mutex<BTreeMap<String, VecDeque<Vec<u8>>>>,
}

impl MemoryStore {
    pub fn clear(&self) {
        self.values.lock().unwrap().clear();
        self.lists.lock().unwrap().clear();
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Store for MemoryStore {
    fn describe(&self) -> String {
        "fuzz memory store".into()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        ready(Ok(self.values.lock().unwrap().get(key).cloned()))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<Vec<u8>>>>> {
        let v = self.values.lock().unwrap();
        ready(Ok(keys.iter().map(|k| v.get(*k).cloned()).collect()))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        _ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<()>> {
        self.values
            .lock()
            .unwrap()
            .insert(key.to_string(), value.to_vec());
        ready(Ok(()))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>> {
        let a = self.values.lock().unwrap().remove(key).is_some();
        let b = self.lists.lock().unwrap().remove(key).is_some();
        ready(Ok(a || b))
    }

    fn incr<'a>(
        &'a self,
        key: &'a str,
        by: i64,
        _ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<i64>> {
        let mut v = self.values.lock().unwrap();
        let old = match v.get(key) {
            None => 0,
            Some(b) => match std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(n) => n,
                None => {
                    return ready(Err(StoreError::new(
                        mxguard_store::ErrorKind::Invalid,
                        "not a counter",
                    )));
                }
            },
        };
        let Some(new) = old.checked_add(by) else {
            return ready(Err(StoreError::new(
                mxguard_store::ErrorKind::Invalid,
                "overflow",
            )));
        };
        v.insert(key.to_string(), new.to_string().into_bytes());
        ready(Ok(new))
    }

    fn list_push<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        max_len: usize,
    ) -> BoxFuture<'a, Result<()>> {
        let mut l = self.lists.lock().unwrap();
        let list = l.entry(key.to_string()).or_default();
        list.push_front(value.to_vec());
        list.truncate(max_len.max(1));
        ready(Ok(()))
    }

    fn list_range<'a>(
        &'a self,
        key: &'a str,
        start: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<u8>>>> {
        let l = self.lists.lock().unwrap();
        ready(Ok(l
            .get(key)
            .map(|list| list.iter().skip(start).take(count).cloned().collect())
            .unwrap_or_default()))
    }

    fn list_len<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<usize>> {
        ready(Ok(self
            .lists
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |l| l.len())))
    }

    fn scan_prefix<'a>(&'a self, prefix: &'a str, limit: usize) -> BoxFuture<'a, Result<Entries>> {
        let v = self.values.lock().unwrap();
        ready(Ok(v
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }

    fn purge_expired(&self, _limit: usize) -> BoxFuture<'_, Result<Purged>> {
        ready(Ok(Purged::default()))
    }
}
