//! The running ban engine as the HTTP API and the control socket see it
//! ([`mxguard_web::Bans`]): list, status, add and remove go through the
//! engine's jails (`Jail::ban` / `Jail::unban`), so their firewall actions
//! run, instead of writing the store behind the engine's back.

use mxguard_ban::config::BanConfig;
use mxguard_ban::engine::unix_now;
use mxguard_ban::ignore::IgnoreList;
use mxguard_ban::jail::{Jail, JailSettings, all_bans};
use mxguard_store::Store;
use mxguard_web::api::BoxFuture;
use mxguard_web::{Ban, Bans};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct EngineBans {
    jails: Vec<Arc<Jail>>,
    store: Arc<dyn Store>,
    config: BanConfig,
    /// Jails named by hand (`ban add --jail manual`) that no config runs:
    /// store only, enforced by the `smtp` check every host reads.
    by_hand: Mutex<HashMap<String, Arc<Jail>>>,
}

impl EngineBans {
    pub fn new(jails: Vec<Arc<Jail>>, store: Arc<dyn Store>, config: BanConfig) -> EngineBans {
        EngineBans {
            jails,
            store,
            config,
            by_hand: Mutex::new(HashMap::new()),
        }
    }

    fn running(&self, name: &str) -> Option<Arc<Jail>> {
        self.jails.iter().find(|j| j.name() == name).cloned()
    }

    /// The running jail `name`, or a store-only one for a name no config
    /// runs (its bantime from `[ban.jails.NAME]` when configured but off).
    fn jail(&self, name: &str) -> Result<Arc<Jail>, String> {
        if let Some(j) = self.running(name) {
            return Ok(j);
        }
        let mut by_hand = self.by_hand.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = by_hand.get(name) {
            return Ok(j.clone());
        }
        let settings = match self.config.jails.get(name) {
            Some(jc) => self.config.settings(name, jc)?,
            None => JailSettings::new(name),
        };
        let j = Arc::new(Jail::new(
            settings,
            IgnoreList::default(),
            self.store.clone(),
            Vec::new(),
        ));
        by_hand.insert(name.to_string(), j.clone());
        Ok(j)
    }
}

impl Bans for EngineBans {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Ban>, String>> {
        Box::pin(async move {
            let mut out: Vec<Ban> = all_bans(self.store.as_ref())
                .await?
                .into_iter()
                .map(|(ip, r)| Ban {
                    ip: ip.to_string(),
                    reason: format!("ban #{} in {}", r.count, r.jail),
                    jail: r.jail,
                    since: r.since as f64,
                    until: r.until.map(|u| u as f64),
                })
                .collect();
            out.sort_by(|a, b| a.ip.cmp(&b.ip));
            Ok(out)
        })
    }

    fn unban(&self, ip: IpAddr) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            let now = unix_now();
            let stored = all_bans(self.store.as_ref())
                .await?
                .into_iter()
                .find(|(b, _)| *b == ip)
                .map(|(_, r)| r.jail);
            let mut lifted = false;
            // The jail holding the record first, then every running jail
            // enforcing its own (shorter) ban of the address.
            if let Some(name) = &stored {
                lifted |= self.jail(name)?.unban(ip, now).await?;
            }
            for j in &self.jails {
                if j.is_banned(ip) {
                    lifted |= j.unban(ip, now).await?;
                }
            }
            Ok(lifted)
        })
    }

    fn status(&self, jail: Option<String>) -> BoxFuture<'_, Result<Option<Value>, String>> {
        Box::pin(async move {
            match jail {
                None => {
                    let mut rows = Vec::new();
                    for j in &self.jails {
                        let s = j.status().await;
                        rows.push(json!({"jail": j.name(), "banned": s.currently_banned}));
                    }
                    Ok(Some(Value::Array(rows)))
                }
                Some(name) => {
                    let Some(j) = self.running(&name) else {
                        return Ok(None);
                    };
                    let s = j.status().await;
                    let files: Vec<String> =
                        self.config.jails.get(&name).map_or_else(Vec::new, |jc| {
                            let mut f: Vec<String> =
                                jc.logpath.iter().map(|p| p.display().to_string()).collect();
                            if let Some(u) = &jc.journal {
                                f.push(format!("journal unit {u}"));
                            }
                            f.extend(jc.events.iter().map(|e| format!("event {e}")));
                            f
                        });
                    Ok(Some(json!({
                        "jail": name,
                        "currently_failed": s.currently_failed,
                        "total_failed": s.total_failed,
                        "files": files,
                        "currently_banned": s.currently_banned,
                        "total_banned": s.total_banned,
                        "banned": s.banned,
                    })))
                }
            }
        })
    }

    fn ban(
        &self,
        ip: IpAddr,
        jail: String,
        time: Option<i64>,
    ) -> BoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            let j = self.jail(&jail)?;
            let rec = j.ban(ip, unix_now(), time).await?;
            serde_json::to_value(&rec).map_err(|e| e.to_string())
        })
    }
}

/// The milter's scanner, telling the ban engine of every reject
/// (`milter_reject`, by the client's address): the milter crate and the
/// scan service stay unaware of bans.
pub struct ReportingScanner<S> {
    pub inner: Arc<S>,
    pub events: mxguard_ban::engine::Events,
}

impl<S: mxguard_scan::MessageScanner> ReportingScanner<S> {
    fn report(&self, verdict: &mxguard_core::Verdict, envelope: &mxguard_core::Envelope) {
        if verdict.action == mxguard_core::Action::Reject
            && let Some(ip) = envelope.ip
        {
            self.events.report("milter_reject", ip);
        }
    }
}

impl<S: mxguard_scan::MessageScanner> mxguard_scan::MessageScanner for ReportingScanner<S> {
    fn early(
        &self,
        stage: mxguard_core::SmtpStage,
        envelope: &mxguard_core::Envelope,
    ) -> Option<mxguard_core::Verdict> {
        let v = self.inner.early(stage, envelope)?;
        self.report(&v, envelope);
        Some(v)
    }

    fn acts_early_at(&self, stage: mxguard_core::SmtpStage) -> bool {
        self.inner.acts_early_at(stage)
    }

    fn scan<'a>(
        &'a self,
        input: mxguard_scan::ScanInput<'a>,
    ) -> mxguard_scan::checks::BoxFuture<'a, mxguard_scan::ScanOutcome> {
        Box::pin(async move {
            let envelope = input.envelope;
            let out = self.inner.scan(input).await;
            self.report(&out.verdict, envelope);
            out
        })
    }
}
