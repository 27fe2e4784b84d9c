//! A jail: failures of an address within `findtime` counted to
//! `maxretry`, then a ban for `bantime` (longer for repeat offenders with
//! `bantime.increment`), enforced by the jail's actions.
//!
//! # Store keys
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `ban:<ip>` | JSON [`BanRecord`] (the policy server's `reject_banned_client` reads its presence) | until the ban ends; none when permanent |
//! | `banfail:<jail>:<ip>` | JSON list of failure times (Unix s) within findtime | findtime |
//! | `banhist:<ip>` | JSON [`History`]: bans so far, overall and per jail | 30 days, or twice `maxtime` |
//! | `counter:ban:<jail>:failed` / `:banned` | totals for `ban status` | — |
//!
//! One `ban:<ip>` per address whatever the jail: a second jail banning an
//! address already banned extends the record if it ends later. Every
//! `serve` sharing the store sees a ban by the key: [`Jail::sync`] reads
//! the jail's keys every few seconds and applies bans it did not make.
//!
//! Fail counts are kept in memory and written through (relaxed), so a
//! restart goes on counting where it stopped; the first failure of an
//! address after a restart reads its key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mxguard_store::{Counters, Durability, Store};
use serde::{Deserialize, Serialize};

use crate::actions::{Action, Ban};
use crate::ignore::IgnoreList;

/// fail2ban's `bantime.increment`.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// Without multipliers: bantime × factor × 2^(previous bans).
    pub factor: f64,
    /// With multipliers: bantime × multipliers[min(previous bans, len − 1)].
    pub multipliers: Vec<u64>,
    /// The longest ban it gives, in seconds.
    pub maxtime: u64,
    /// Count the address's bans in every jail, not only this one.
    pub overalljails: bool,
}

/// A jail's numbers (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct JailSettings {
    pub name: String,
    pub maxretry: u32,
    pub findtime: u64,
    /// `-1` (or any negative): permanent.
    pub bantime: i64,
    pub increment: Option<Increment>,
    pub ports: Vec<String>,
    pub protocol: String,
}

impl JailSettings {
    /// fail2ban's defaults: maxretry 3, findtime 600, bantime 3600.
    pub fn new(name: &str) -> JailSettings {
        JailSettings {
            name: name.to_string(),
            maxretry: 3,
            findtime: 600,
            bantime: 3600,
            increment: None,
            ports: Vec::new(),
            protocol: "tcp".into(),
        }
    }
}

/// What `ban:<ip>` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub jail: String,
    /// When it started (Unix s).
    pub since: u64,
    /// When it ends; `None`: permanent.
    pub until: Option<u64>,
    /// This address's ban number (1 = first) in the count the jail uses.
    pub count: u32,
}

/// What `banhist:<ip>` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub total: u32,
    pub jails: std::collections::BTreeMap<String, u32>,
    pub last: u64,
}

/// What one failure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The address is in `ignoreip`.
    Ignored,
    /// It is banned already (a late line of the same attack).
    AlreadyBanned,
    /// Counted: failures within findtime now.
    Counted(u32),
    Banned(BanRecord),
}

/// `ban status JAIL`'s numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JailStatus {
    pub currently_failed: usize,
    pub total_failed: i64,
    pub currently_banned: usize,
    pub total_banned: i64,
    pub banned: Vec<String>,
}

#[derive(Default)]
struct State {
    fails: HashMap<IpAddr, Vec<u64>>,
    banned: HashMap<IpAddr, BanRecord>,
}

/// Bound on addresses with failures kept in memory; past it the oldest
/// half is dropped (their counts stay in the store).
const MAX_TRACKED: usize = 100_000;

pub struct Jail {
    pub settings: JailSettings,
    ignore: IgnoreList,
    store: Arc<dyn Store>,
    counters: Counters,
    actions: Arc<Vec<Box<dyn Action>>>,
    state: Mutex<State>,
}

pub fn ban_key(ip: IpAddr) -> String {
    format!("ban:{ip}")
}

fn fail_key(jail: &str, ip: IpAddr) -> String {
    format!("banfail:{jail}:{ip}")
}

fn hist_key(ip: IpAddr) -> String {
    format!("banhist:{ip}")
}

type StoreResult<T> = Result<T, String>;

fn store_err(e: mxguard_store::StoreError) -> String {
    format!("store: {e}")
}

impl Jail {
    pub fn new(
        settings: JailSettings,
        ignore: IgnoreList,
        store: Arc<dyn Store>,
        actions: Vec<Box<dyn Action>>,
    ) -> Jail {
        Jail {
            settings,
            ignore,
            counters: Counters::new(store.clone()),
            store,
            actions: Arc::new(actions),
            state: Mutex::new(State::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn to_ban(&self, ip: IpAddr, rec: &BanRecord, now: u64) -> Ban {
        Ban {
            addr: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
            jail: self.settings.name.clone(),
            remaining: rec
                .until
                .map(|u| Duration::from_secs(u.saturating_sub(now))),
            ports: self.settings.ports.clone(),
            protocol: self.settings.protocol.clone(),
        }
    }

    /// Runs `f` on every action off the async runtime; failures are
    /// logged and counted, never stop the others.
    async fn run_actions(&self, what: &'static str, bans: Vec<Ban>) {
        if self.actions.is_empty() {
            return;
        }
        let actions = self.actions.clone();
        let failures = tokio::task::spawn_blocking(move || {
            let mut failures = Vec::new();
            for action in actions.iter() {
                let r = match what {
                    "start" => action.start(&bans),
                    "ban" => bans.iter().try_for_each(|b| action.ban(b)),
                    _ => bans.iter().try_for_each(|b| action.unban(b)),
                };
                if let Err(e) = r {
                    failures.push(format!("{} {what}: {e}", action.name()));
                }
            }
            failures
        })
        .await
        .unwrap_or_else(|e| vec![format!("action task failed: {e}")]);
        for f in failures {
            tracing::error!(jail = %self.settings.name, "ban action failed: {f}");
            let _ = self
                .counters
                .incr_relaxed(&format!("ban:{}:action_failed", self.settings.name), 1)
                .await;
        }
    }

    /// At start: reads this jail's active bans from the store and hands
    /// them to every action's `start` (expired ones are gone from the
    /// store already, so they are not re-applied).
    pub async fn restore(&self, now: u64) -> StoreResult<Vec<(IpAddr, BanRecord)>> {
        let active = self.active_in_store().await?;
        let bans: Vec<Ban> = active
            .iter()
            .map(|(ip, r)| self.to_ban(*ip, r, now))
            .collect();
        {
            let mut st = self.lock();
            for (ip, r) in &active {
                st.banned.insert(*ip, r.clone());
            }
        }
        self.run_actions("start", bans).await;
        Ok(active)
    }

    async fn active_in_store(&self) -> StoreResult<Vec<(IpAddr, BanRecord)>> {
        let entries = self
            .store
            .scan_prefix("ban:", 1_000_000)
            .await
            .map_err(store_err)?;
        Ok(entries
            .into_iter()
            .filter_map(|(k, v)| {
                let ip: IpAddr = k.strip_prefix("ban:")?.parse().ok()?;
                let rec: BanRecord = serde_json::from_slice(&v).ok()?;
                (rec.jail == self.settings.name).then_some((ip, rec))
            })
            .collect())
    }

    /// One failure of `ip` (counting `attempts`) at `now`.
    pub async fn failure(&self, ip: IpAddr, attempts: u32, now: u64) -> StoreResult<Outcome> {
        if self.ignore.contains(ip) {
            return Ok(Outcome::Ignored);
        }
        if self.lock().banned.contains_key(&ip) {
            return Ok(Outcome::AlreadyBanned);
        }
        let _ = self
            .counters
            .incr_relaxed(
                &format!("ban:{}:failed", self.settings.name),
                i64::from(attempts),
            )
            .await;
        let known = self.lock().fails.contains_key(&ip);
        let mut earlier = Vec::new();
        if !known && let Ok(Some(v)) = self.store.get(&fail_key(&self.settings.name, ip)).await {
            earlier = serde_json::from_slice::<Vec<u64>>(&v).unwrap_or_default();
        }
        let since = now.saturating_sub(self.settings.findtime);
        let times = {
            let mut st = self.lock();
            if st.fails.len() >= MAX_TRACKED && !st.fails.contains_key(&ip) {
                let cut = st.fails.len() / 2;
                let drop: Vec<IpAddr> = st.fails.keys().take(cut).copied().collect();
                for k in drop {
                    st.fails.remove(&k);
                }
            }
            let t = st.fails.entry(ip).or_insert(earlier);
            for _ in 0..attempts.clamp(1, 100) {
                t.push(now);
            }
            t.retain(|&x| x > since);
            // Only maxretry times matter.
            let keep = self.settings.maxretry.max(1) as usize;
            if t.len() > keep {
                t.drain(..t.len() - keep);
            }
            t.clone()
        };
        let count = times.len() as u32;
        if count >= self.settings.maxretry.max(1) {
            let rec = self.ban(ip, now, None).await?;
            return Ok(Outcome::Banned(rec));
        }
        let value = serde_json::to_vec(&times).unwrap_or_default();
        self.store
            .set_many(
                &[(&fail_key(&self.settings.name, ip), &value)],
                Some(Duration::from_secs(self.settings.findtime.max(1))),
                Durability::Relaxed,
            )
            .await
            .map_err(store_err)?;
        Ok(Outcome::Counted(count))
    }

    /// The ban time of the `previous`+1-th ban (seconds; `None`: permanent).
    pub fn ban_time(&self, previous: u32) -> Option<u64> {
        if self.settings.bantime < 0 {
            return None;
        }
        let base = self.settings.bantime as u64;
        let Some(inc) = &self.settings.increment else {
            return Some(base);
        };
        let t = if inc.multipliers.is_empty() {
            let factor = inc.factor.max(0.0) * f64::from(1u32 << previous.min(20));
            (base as f64 * factor) as u64
        } else {
            let i = (previous as usize).min(inc.multipliers.len() - 1);
            base.saturating_mul(inc.multipliers[i])
        };
        Some(if inc.maxtime > 0 {
            t.min(inc.maxtime)
        } else {
            t
        })
    }

    /// Bans `ip` now: for `time` seconds when given (negative:
    /// permanent), else by the jail's bantime and increment.
    pub async fn ban(&self, ip: IpAddr, now: u64, time: Option<i64>) -> StoreResult<BanRecord> {
        let hkey = hist_key(ip);
        let mut hist: History = match self.store.get(&hkey).await.map_err(store_err)? {
            Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
            None => History::default(),
        };
        let overall = self
            .settings
            .increment
            .as_ref()
            .is_some_and(|i| i.overalljails);
        let previous = if overall {
            hist.total
        } else {
            hist.jails.get(&self.settings.name).copied().unwrap_or(0)
        };
        let secs = match time {
            Some(t) if t < 0 => None,
            Some(t) => Some(t as u64),
            None => self.ban_time(previous),
        };
        let rec = BanRecord {
            jail: self.settings.name.clone(),
            since: now,
            until: secs.map(|s| now.saturating_add(s)),
            count: previous + 1,
        };
        let key = ban_key(ip);
        // Another jail's ban that lasts longer stays the record; ours is
        // still enforced by our actions until it ends.
        let outlasted = match self.store.get(&key).await.map_err(store_err)? {
            Some(v) => serde_json::from_slice::<BanRecord>(&v).is_ok_and(|old| {
                old.jail != rec.jail
                    && match (old.until, rec.until) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(a), Some(b)) => a >= b,
                    }
            }),
            None => false,
        };
        if !outlasted {
            let value = serde_json::to_vec(&rec).unwrap_or_default();
            let ttl = rec
                .until
                .map(|u| Duration::from_secs(u.saturating_sub(now).max(1)));
            self.store.set(&key, &value, ttl).await.map_err(store_err)?;
        }
        hist.total += 1;
        *hist.jails.entry(self.settings.name.clone()).or_insert(0) += 1;
        hist.last = now;
        let keep = self
            .settings
            .increment
            .as_ref()
            .map_or(0, |i| i.maxtime.saturating_mul(2))
            .max(30 * 86_400);
        let hv = serde_json::to_vec(&hist).unwrap_or_default();
        self.store
            .set(&hkey, &hv, Some(Duration::from_secs(keep)))
            .await
            .map_err(store_err)?;
        let _ = self.store.delete(&fail_key(&self.settings.name, ip)).await;
        {
            let mut st = self.lock();
            st.fails.remove(&ip);
            st.banned.insert(ip, rec.clone());
        }
        let _ = self
            .counters
            .incr_relaxed(&format!("ban:{}:banned", self.settings.name), 1)
            .await;
        tracing::warn!(jail = %self.settings.name, %ip, until = ?rec.until, count = rec.count, "banned");
        self.run_actions("ban", vec![self.to_ban(ip, &rec, now)])
            .await;
        Ok(rec)
    }

    /// Lifts a ban of this jail (store and actions); false if there was none.
    pub async fn unban(&self, ip: IpAddr, now: u64) -> StoreResult<bool> {
        let rec = self.lock().banned.remove(&ip);
        let key = ban_key(ip);
        let stored = match self.store.get(&key).await.map_err(store_err)? {
            Some(v) => serde_json::from_slice::<BanRecord>(&v).ok(),
            None => None,
        };
        let rec = match (rec, stored) {
            (_, Some(s)) if s.jail == self.settings.name => {
                self.store.delete(&key).await.map_err(store_err)?;
                s
            }
            (Some(r), _) => r,
            _ => return Ok(false),
        };
        tracing::info!(jail = %self.settings.name, %ip, "unbanned");
        self.run_actions("unban", vec![self.to_ban(ip, &rec, now)])
            .await;
        Ok(true)
    }

    /// Lifts the bans that ended by `now` from the actions (the store's
    /// keys expire by themselves). Returns the addresses.
    pub async fn expire(&self, now: u64) -> Vec<IpAddr> {
        let ended: Vec<(IpAddr, BanRecord)> = {
            let mut st = self.lock();
            let ended: Vec<(IpAddr, BanRecord)> = st
                .banned
                .iter()
                .filter(|(_, r)| r.until.is_some_and(|u| u <= now))
                .map(|(ip, r)| (*ip, r.clone()))
                .collect();
            for (ip, _) in &ended {
                st.banned.remove(ip);
            }
            ended
        };
        if !ended.is_empty() {
            let bans = ended
                .iter()
                .map(|(ip, r)| self.to_ban(*ip, r, now))
                .collect();
            self.run_actions("unban", bans).await;
        }
        ended.into_iter().map(|(ip, _)| ip).collect()
    }

    /// Another host (or `mxguard ban add`) wrote to the store: apply bans
    /// of this jail we do not have, lift those removed there. Returns
    /// (applied, lifted).
    pub async fn sync(&self, now: u64) -> StoreResult<(usize, usize)> {
        let all = all_bans(self.store.as_ref()).await?;
        // Any jail's record keeps an address banned here (another jail's
        // longer ban holds the key); only this jail's are applied.
        let present: std::collections::HashSet<IpAddr> = all.iter().map(|(ip, _)| *ip).collect();
        let stored: HashMap<IpAddr, BanRecord> = all
            .into_iter()
            .filter(|(_, r)| r.jail == self.settings.name)
            .collect();
        let (new, gone) = {
            let mut st = self.lock();
            let new: Vec<(IpAddr, BanRecord)> = stored
                .iter()
                .filter(|(ip, _)| !st.banned.contains_key(ip))
                .map(|(ip, r)| (*ip, r.clone()))
                .collect();
            let gone: Vec<(IpAddr, BanRecord)> = st
                .banned
                .iter()
                .filter(|(ip, r)| !present.contains(ip) && r.until.is_none_or(|u| u > now))
                .map(|(ip, r)| (*ip, r.clone()))
                .collect();
            for (ip, r) in &new {
                st.banned.insert(*ip, r.clone());
            }
            for (ip, _) in &gone {
                st.banned.remove(ip);
            }
            (new, gone)
        };
        if !new.is_empty() {
            let bans = new.iter().map(|(ip, r)| self.to_ban(*ip, r, now)).collect();
            self.run_actions("ban", bans).await;
        }
        if !gone.is_empty() {
            let bans = gone
                .iter()
                .map(|(ip, r)| self.to_ban(*ip, r, now))
                .collect();
            self.run_actions("unban", bans).await;
        }
        Ok((new.len(), gone.len()))
    }

    /// Stops the actions (at shutdown).
    pub async fn stop(&self) {
        let actions = self.actions.clone();
        let failures = tokio::task::spawn_blocking(move || {
            actions
                .iter()
                .filter_map(|a| a.stop().err().map(|e| format!("{} stop: {e}", a.name())))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for f in failures {
            tracing::error!(jail = %self.settings.name, "{f}");
        }
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.lock().banned.contains_key(&ip)
    }

    pub async fn status(&self) -> JailStatus {
        let (currently_failed, mut banned) = {
            let st = self.lock();
            (
                st.fails.len(),
                st.banned
                    .keys()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>(),
            )
        };
        banned.sort();
        JailStatus {
            currently_failed,
            total_failed: self
                .counters
                .get(&format!("ban:{}:failed", self.settings.name))
                .await
                .unwrap_or(0),
            currently_banned: banned.len(),
            total_banned: self
                .counters
                .get(&format!("ban:{}:banned", self.settings.name))
                .await
                .unwrap_or(0),
            banned,
        }
    }
}

/// Every active ban in the store, by address (for `ban status` without
/// `serve`).
pub async fn all_bans(store: &dyn Store) -> StoreResult<Vec<(IpAddr, BanRecord)>> {
    let entries = store
        .scan_prefix("ban:", 1_000_000)
        .await
        .map_err(store_err)?;
    Ok(entries
        .into_iter()
        .filter_map(|(k, v)| {
            let ip: IpAddr = k.strip_prefix("ban:")?.parse().ok()?;
            Some((ip, serde_json::from_slice(&v).ok()?))
        })
        .collect())
}
