//! Evaluations in the store: counted rows, bounded per domain and day.
//!
//! Keys (all with a TTL of `keep`; `<day>` is `YYYY-MM-DD`, `<domain>` the
//! reporting domain, lowercased; `<row>` 32 hex digits of the SHA-256 of
//! the row's JSON):
//!
//! | key | value |
//! |---|---|
//! | `dmarc:n:<day>:<domain>:<row>` | counter: messages with this row |
//! | `dmarc:r:<day>:<domain>:<row>` | JSON [`StoredRow`]: what the row says |
//! | `dmarc:rows:<day>:<domain>` | counter: distinct rows kept (the cap) |
//! | `dmarc:over:<day>:<domain>` | counter: evaluations not kept (cap reached) |
//! | `dmarc:pol:<day>:<domain>` | JSON [`PublishedPolicy`] last seen |
//! | `dmarc:domains:<day>` | counter: reporting domains of the day (the cap) |
//! | `dmarc:state:<day>:<domain>` | JSON send state ([`super::send`]) |
//!
//! A message costs one counter increment once its row exists; a new row
//! costs three more writes. The caps hold to within the evaluations in
//! flight at once (a check reads the count, then writes).

use super::period::Period;
use super::{Disposition, DkimAuth, Evaluation, Override, PublishedPolicy, RecordForm, SpfAuth};
use crate::config::{DmarcReportConfig, plain_domain};
use mxguard_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;

/// Most DKIM or SPF results kept per row: a message with more signatures
/// than this is hostile or broken, and the report stays bounded.
pub const MAX_RESULTS: usize = 8;
/// Longest domain, selector or comment kept.
const MAX_FIELD: usize = 253;

/// A report `<record>` without its count: the aggregation key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoredRow {
    pub source_ip: IpAddr,
    pub disposition: Disposition,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    #[serde(default)]
    pub overrides: Vec<Override>,
    pub header_from: String,
    pub envelope_from: String,
    #[serde(default)]
    pub envelope_to: Option<String>,
    #[serde(default)]
    pub dkim: Vec<DkimAuth>,
    #[serde(default)]
    pub spf: Vec<SpfAuth>,
}

/// What [`record_evaluation`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Counted in an existing row.
    Counted,
    /// A new row for the domain and day.
    NewRow,
    /// Not kept: the domain's row cap or the day's domain cap was reached
    /// (counted under `dmarc:over:`).
    OverCap,
    /// Not kept: the policy domain is not a domain name.
    Invalid,
    /// Not kept: `[dmarc_reporting] enabled` is off.
    Disabled,
}

pub(crate) fn count_prefix(p: Period, domain: &str) -> String {
    format!("dmarc:n:{}:{domain}:", p.name())
}
pub(crate) fn row_key(p: Period, domain: &str, id: &str) -> String {
    format!("dmarc:r:{}:{domain}:{id}", p.name())
}
pub(crate) fn rows_key(p: Period, domain: &str) -> String {
    format!("dmarc:rows:{}:{domain}", p.name())
}
pub(crate) fn over_key(p: Period, domain: &str) -> String {
    format!("dmarc:over:{}:{domain}", p.name())
}
pub(crate) fn policy_prefix(p: Period) -> String {
    format!("dmarc:pol:{}:", p.name())
}
pub(crate) fn domains_key(p: Period) -> String {
    format!("dmarc:domains:{}", p.name())
}
pub(crate) fn state_key(p: Period, domain: &str) -> String {
    format!("dmarc:state:{}:{domain}", p.name())
}

/// The reporting domain as a key part: lowercased, no trailing dot; `None`
/// when it is not a plain domain name (it comes from mail and DNS).
pub fn key_domain(domain: &str) -> Option<String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    plain_domain(&d).then_some(d)
}

fn clip(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    match s.char_indices().nth(MAX_FIELD) {
        Some((i, _)) => s[..i].to_string(),
        None => s,
    }
}

fn clip_domain(s: &str) -> String {
    clip(s.trim().trim_end_matches('.')).to_ascii_lowercase()
}

impl StoredRow {
    /// The row of an evaluation, with every field bounded.
    pub fn of(e: &Evaluation) -> StoredRow {
        StoredRow {
            source_ip: e.source_ip,
            disposition: e.disposition,
            dkim_aligned: e.dkim_aligned,
            spf_aligned: e.spf_aligned,
            overrides: e
                .overrides
                .iter()
                .take(MAX_RESULTS)
                .map(|o| Override {
                    kind: o.kind,
                    comment: o.comment.as_deref().map(clip),
                })
                .collect(),
            header_from: clip_domain(&e.header_from),
            envelope_from: clip_domain(&e.envelope_from),
            envelope_to: e.envelope_to.as_deref().map(clip_domain),
            dkim: e
                .dkim
                .iter()
                .take(MAX_RESULTS)
                .map(|d| DkimAuth {
                    domain: clip_domain(&d.domain),
                    selector: clip(&d.selector),
                    result: d.result,
                })
                .collect(),
            spf: e
                .spf
                .iter()
                .take(MAX_RESULTS)
                .map(|s| SpfAuth {
                    domain: clip_domain(&s.domain),
                    scope: s.scope,
                    result: s.result,
                })
                .collect(),
        }
    }

    /// Its identity: 128 bits of SHA-256 over its JSON, in hex.
    fn id(&self) -> (String, Vec<u8>) {
        // Serialising a struct of strings and enums cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&json);
        let id = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        (id, json)
    }
}

fn clip_policy(p: &PublishedPolicy, domain: &str) -> PublishedPolicy {
    PublishedPolicy {
        domain: domain.to_string(),
        fo: p.fo.as_deref().map(clip),
        rua: p
            .rua
            .iter()
            .take(super::rua::MAX_URIS * 2)
            .map(|u| clip(u))
            .collect(),
        pct: p.pct.map(|v| v.min(100)),
        ..p.clone()
    }
}

/// Counts one evaluation for its reporting domain's report of its day.
/// Errors are the store's; the caller logs and counts them (a lost count
/// must never hold up mail).
pub async fn record_evaluation(
    store: &dyn Store,
    config: &DmarcReportConfig,
    e: &Evaluation,
) -> Result<Recorded, StoreError> {
    if !config.enabled {
        return Ok(Recorded::Disabled);
    }
    let Some(domain) = key_domain(&e.policy.domain) else {
        return Ok(Recorded::Invalid);
    };
    let period = Period::of(e.time);
    let ttl = Some(Duration::from_secs(config.keep.0.max(2 * 86_400)));
    let row = StoredRow::of(e);
    let (id, json) = row.id();
    let count_key = format!("{}{id}", count_prefix(period, &domain));
    if store.get(&count_key).await?.is_some() {
        store.incr(&count_key, 1, ttl).await?;
        return Ok(Recorded::Counted);
    }
    let rows = read_count(store, &rows_key(period, &domain)).await?;
    if rows == 0 {
        // A new domain for the day: check the day's domain cap first.
        let domains = read_count(store, &domains_key(period)).await?;
        if domains >= u64::from(config.max_domains) {
            store.incr(&over_key(period, &domain), 1, ttl).await?;
            return Ok(Recorded::OverCap);
        }
    }
    if rows >= u64::from(config.max_rows_per_domain) {
        store.incr(&over_key(period, &domain), 1, ttl).await?;
        return Ok(Recorded::OverCap);
    }
    // The row's description first, so a count never exists without it.
    store
        .set(&row_key(period, &domain, &id), &json, ttl)
        .await?;
    let policy = serde_json::to_vec(&clip_policy(&e.policy, &domain)).unwrap_or_default();
    store
        .set(&format!("{}{domain}", policy_prefix(period)), &policy, ttl)
        .await?;
    if store.incr(&rows_key(period, &domain), 1, ttl).await? == 1 {
        store.incr(&domains_key(period), 1, ttl).await?;
    }
    Ok(if store.incr(&count_key, 1, ttl).await? == 1 {
        Recorded::NewRow
    } else {
        Recorded::Counted
    })
}

async fn read_count(store: &dyn Store, key: &str) -> Result<u64, StoreError> {
    Ok(store
        .get(key)
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse().ok())
        .unwrap_or(0))
}

/// Everything recorded for one domain and day.
#[derive(Debug, Clone, Default)]
pub struct DomainDay {
    pub policy: PublishedPolicy,
    /// Rows with their counts, in key order.
    pub rows: Vec<(StoredRow, u64)>,
    /// Evaluations left out because a cap was reached.
    pub over_cap: u64,
    /// Counters whose row description was missing or damaged (skipped).
    pub damaged: u64,
}

/// The reporting domains recorded for a day (at most `limit`).
pub async fn domains(
    store: &dyn Store,
    period: Period,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let prefix = policy_prefix(period);
    Ok(store
        .scan_prefix(&prefix, limit)
        .await?
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_string))
        .collect())
}

/// Reads one domain's day. `None` if nothing was recorded.
pub async fn load(
    store: &dyn Store,
    period: Period,
    domain: &str,
    max_rows: usize,
) -> Result<Option<DomainDay>, StoreError> {
    let Some(policy) = store
        .get(&format!("{}{domain}", policy_prefix(period)))
        .await?
    else {
        return Ok(None);
    };
    let mut day = DomainDay {
        policy: serde_json::from_slice(&policy).unwrap_or_else(|e| {
            tracing::warn!(
                domain,
                "DMARC report: the recorded policy is damaged ({e}); reporting p=none"
            );
            PublishedPolicy {
                domain: domain.to_string(),
                ..Default::default()
            }
        }),
        ..Default::default()
    };
    day.policy.domain = domain.to_string();
    let prefix = count_prefix(period, domain);
    // One more than the cap: the cap is approximate under concurrency.
    let counts = store
        .scan_prefix(&prefix, max_rows.saturating_mul(2).max(1))
        .await?;
    for (key, value) in counts {
        let id = key.strip_prefix(&prefix).unwrap_or_default();
        let n: u64 = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let row = store
            .get(&row_key(period, domain, id))
            .await?
            .and_then(|j| serde_json::from_slice::<StoredRow>(&j).ok());
        match row {
            Some(row) if n > 0 => day.rows.push((row, n)),
            _ => day.damaged += n.max(1),
        }
    }
    day.over_cap = read_count(store, &over_key(period, domain)).await?;
    Ok(Some(day))
}

impl DomainDay {
    /// The report form: DMARCbis if the record was.
    pub fn form(&self) -> RecordForm {
        self.policy.form
    }

    /// Messages counted in the rows.
    pub fn messages(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }
}
