//! `mxguard store copy`: every key of one store into another (embedded to
//! Redis when an install grows to several MX hosts, and back), keeping
//! values, lists and expiry times.
//!
//! Expiries travel as absolute times, so a triplet that had 3 days left
//! has 3 days left in the new store however long the copy took; an entry
//! that expired meanwhile is not written. Writing goes through the
//! [`Store`] trait, so any backend can be a target.

use crate::embedded::{live, split};
use crate::file::{KV, LIST_ITEMS, LIST_META};
use crate::redis::RedisStore;
use crate::{EmbeddedStore, Result, Store};
use futures_util::future::join_all;
use redb::ReadableTable;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One key of a store, as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A string or counter, with its expiry (`None`: permanent).
    Value {
        key: String,
        value: Vec<u8>,
        expires: Option<SystemTime>,
    },
    /// A list, newest item first (lists never expire).
    List { key: String, items: Vec<Vec<u8>> },
}

impl Item {
    pub fn key(&self) -> &str {
        match self {
            Item::Value { key, .. } | Item::List { key, .. } => key,
        }
    }
}

/// What [`import`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub values: usize,
    pub lists: usize,
    pub list_items: usize,
    /// Values that expired between reading and writing.
    pub expired: usize,
}

/// Writes at most this many values at once.
const CONCURRENT: usize = 256;

impl EmbeddedStore {
    /// Every live key, values then lists, in key order.
    pub fn export(&self) -> Result<Vec<Item>> {
        self.read(|tx, now| {
            let mut out = Vec::new();
            let kv = tx.open_table(KV)?;
            for e in kv.iter()? {
                let (k, v) = e?;
                let key = k.value();
                let Some((expires, value)) = split(v.value()) else {
                    continue;
                };
                if !live(expires, now) {
                    continue;
                }
                out.push(Item::Value {
                    key: key.to_string(),
                    value: value.to_vec(),
                    expires: (expires != 0).then(|| UNIX_EPOCH + Duration::from_millis(expires)),
                });
            }
            let meta = tx.open_table(LIST_META)?;
            let items = tx.open_table(LIST_ITEMS)?;
            for e in meta.iter()? {
                let (k, m) = e?;
                let key = k.value();
                let (next, oldest) = m.value();
                let mut list = Vec::new();
                for item in items.range((key, oldest)..(key, next))?.rev() {
                    let (_, v) = item?;
                    list.push(v.value().to_vec());
                }
                out.push(Item::List {
                    key: key.to_string(),
                    items: list,
                });
            }
            Ok(out)
        })
    }
}

impl RedisStore {
    /// Every key under the store's key prefix (strings and lists; keys of
    /// other kinds are not ours and are skipped), in key order.
    pub async fn export(&self) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        for (key, value) in self.scan_prefix("", usize::MAX).await? {
            let ttl = self.pttl(&key).await?;
            out.push((key, value, ttl));
        }
        let mut items: Vec<Item> = out
            .into_iter()
            .filter_map(|(key, value, ttl)| match ttl {
                // Expired between the scan and PTTL.
                Some(t) if t <= 0 => None,
                t => Some(Item::Value {
                    key,
                    value,
                    expires: t.map(|ms| SystemTime::now() + Duration::from_millis(ms as u64)),
                }),
            })
            .collect();
        for key in self.list_keys().await? {
            let list = self.list_range(&key, 0, usize::MAX).await?;
            items.push(Item::List { key, items: list });
        }
        items.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(items)
    }
}

/// Writes `items` into `store`: values with what is left of their TTL,
/// lists replaced whole (oldest pushed first, so the order is kept).
pub async fn import(store: &dyn Store, items: &[Item]) -> Result<Copied> {
    let mut copied = Copied::default();
    let values: Vec<&Item> = items
        .iter()
        .filter(|i| matches!(i, Item::Value { .. }))
        .collect();
    for chunk in values.chunks(CONCURRENT) {
        let now = SystemTime::now();
        let mut writes = Vec::new();
        for item in chunk {
            let Item::Value {
                key,
                value,
                expires,
            } = item
            else {
                continue;
            };
            let ttl = match expires {
                None => None,
                Some(t) => match t.duration_since(now) {
                    Ok(d) if !d.is_zero() => Some(d),
                    _ => {
                        copied.expired += 1;
                        continue;
                    }
                },
            };
            writes.push(store.set(key, value, ttl));
        }
        for r in join_all(writes).await {
            r?;
            copied.values += 1;
        }
    }
    for item in items {
        let Item::List { key, items } = item else {
            continue;
        };
        store.delete(key).await?;
        for v in items.iter().rev() {
            store.list_push(key, v, items.len()).await?;
        }
        copied.lists += 1;
        copied.list_items += items.len();
    }
    Ok(copied)
}

/// Either backend, for the copy command.
pub enum AnyStore {
    Embedded(EmbeddedStore),
    Redis(Box<RedisStore>),
}

impl AnyStore {
    pub fn store(&self) -> &dyn Store {
        match self {
            AnyStore::Embedded(s) => s,
            AnyStore::Redis(s) => &**s,
        }
    }

    pub async fn export(&self) -> Result<Vec<Item>> {
        match self {
            AnyStore::Embedded(s) => s.export(),
            AnyStore::Redis(s) => s.export().await,
        }
    }

    /// Whether the store holds any key (a copy into a store in use would
    /// mix two installs' state).
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(match self {
            AnyStore::Embedded(s) => s.export()?.is_empty(),
            AnyStore::Redis(s) => {
                s.scan_prefix("", 1).await?.is_empty() && s.list_keys().await?.is_empty()
            }
        })
    }
}
