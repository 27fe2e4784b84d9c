//! Building and sending each report exactly once… or at most once.
//!
//! Per reporting domain and day the store keeps a send state
//! (`dmarc:state:<day>:<domain>`): `pending` (with the tries so far and the
//! time of the next), `sending`, and the final `sent`, `failed` (gave up
//! after `max_tries`), `unknown`, `nothing` (no usable row) and
//! `no_destination`. A report is tried only from `pending` (or no state).
//!
//! **At most once.** "Never twice" rules out at-least-once, and SMTP
//! cannot give exactly-once: after the final dot of DATA, a connection
//! that breaks before the reply leaves the relay's answer unknown. So the
//! state turns `sending` (a durable store write) only once the relay has
//! said 354 to DATA, just before the body and the dot go out, and `sent`
//! on its 250. Everything that fails before `sending` (DNS, connection,
//! refused recipients, a 4xx/5xx reply, even to the dot) is retried with
//! backoff: nothing was accepted. A broken connection after the dot, or a
//! crash or restart while `sending`, makes it `unknown`: logged as an
//! error, counted (`dmarc_reports_unknown`), never retried. Its
//! Message-ID is the stable Report-ID, so a receiver could still spot a
//! copy if some other path ever resent it.
//!
//! One reporter task per process sends, one report at a time, so no two
//! sends of one domain and day overlap. The report is built only after its
//! day is over and from all the day's rows, so there are no partial
//! reports. Days whose report is still due when mxguard starts (it was
//! down at `send_hour`) are sent at start.

use super::authz::{self, Decision, TxtLookup};
use super::mail::{self, Envelope};
use super::period::Period;
use super::rua;
use super::smtp::{self, SmtpError};
use super::store::{self, DomainDay, state_key};
use super::xml::{self, Metadata};
use crate::config::DmarcReportConfig;
use mxguard_store::{Counters, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The DKIM signer seam: takes the whole report mail (CRLF line ends) and
/// returns it signed (normally with `DKIM-Signature:` prepended). The
/// signing code of `mxguard_auth` (another module) provides it for the
/// configured submitter domain; `None` sends the mail unsigned, for the
/// relay to sign. An error is logged and counted, and the mail goes
/// unsigned: a broken key must not stop reports.
pub type SignFn = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync;

/// How often the reporter looks for due reports.
const TICK: Duration = Duration::from_secs(60);
/// Longest wait between two tries of one report.
const MAX_BACKOFF: u64 = 6 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Sending,
    Sent,
    Failed,
    Unknown,
    Nothing,
    NoDestination,
}

/// The send state of one domain and day (JSON in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendState {
    pub state: State,
    #[serde(default)]
    pub tries: u32,
    /// Unix seconds before which a pending report is not tried again.
    #[serde(default)]
    pub next_try: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Unix seconds of the last change.
    #[serde(default)]
    pub updated: u64,
}

/// What one send attempt ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The relay took it for these recipients (others refused, with why).
    Sent {
        to: Vec<String>,
        refused: Vec<(String, String)>,
    },
    /// Already in a final state: nothing done.
    Done(State),
    /// A pending report whose next try is later.
    NotYet,
    /// Nothing recorded for the domain and day (or only damaged rows).
    Nothing,
    /// No destination left (every `rua` value dropped or unauthorised).
    NoDestination(Vec<String>),
    /// Failed; will be tried again at `next_try`.
    Retry { error: String, next_try: u64 },
    /// Failed for the last allowed time.
    GaveUp(String),
    /// The relay may or may not have it; never retried.
    Unknown(String),
}

/// A built report, before sending (what `--dry-run` prints).
#[derive(Debug, Clone)]
pub struct Built {
    pub domain: String,
    pub period: Period,
    pub report_id: String,
    pub subject: String,
    pub file_name: String,
    pub xml: String,
    /// The mail, signed if a signer was given.
    pub message: Vec<u8>,
    pub recipients: Vec<String>,
    /// Destinations not used, with why.
    pub dropped: Vec<String>,
    /// A DNS failure while checking a destination: try again later.
    pub lookup_failed: Option<String>,
    pub messages: u64,
    pub rows: usize,
}

/// Builds and sends the reports.
pub struct Reporter {
    store: Arc<dyn Store>,
    dns: Arc<dyn TxtLookup>,
    config: DmarcReportConfig,
    sign: Option<Arc<SignFn>>,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reporter {
    pub fn new(
        store: Arc<dyn Store>,
        dns: Arc<dyn TxtLookup>,
        config: DmarcReportConfig,
        sign: Option<Arc<SignFn>>,
    ) -> Reporter {
        Reporter {
            store,
            dns,
            config,
            sign,
        }
    }

    fn counters(&self) -> Counters {
        Counters::new(self.store.clone())
    }

    async fn count(&self, name: &str) {
        if let Err(e) = self.counters().incr(name, 1).await {
            tracing::warn!("DMARC report: cannot count {name}: {e}");
        }
    }

    /// The Report-ID (and Message-ID): stable for a domain and day.
    pub fn report_id(&self, period: Period, domain: &str) -> String {
        format!("{}.{domain}@{}", period.name(), self.config.domain)
    }

    /// When the report of `period` is due: `send_hour` of the next day.
    pub fn due_at(&self, period: Period) -> u64 {
        period.end() + 1 + u64::from(self.config.send_hour) * 3600
    }

    /// The send state of one domain and day, if any.
    pub async fn state(&self, period: Period, domain: &str) -> Result<Option<SendState>, String> {
        let raw = self
            .store
            .get(&state_key(period, domain))
            .await
            .map_err(|e| e.to_string())?;
        Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
    }

    async fn set_state(&self, period: Period, domain: &str, s: &SendState) -> Result<(), String> {
        let json = serde_json::to_vec(s).map_err(|e| e.to_string())?;
        let ttl = Some(Duration::from_secs(self.config.keep.0.max(2 * 86_400)));
        self.store
            .set(&state_key(period, domain), &json, ttl)
            .await
            .map_err(|e| e.to_string())
    }

    /// Builds the report of one domain and day, with its destinations
    /// checked; `None` if nothing was recorded.
    pub async fn build(
        &self,
        period: Period,
        domain: &str,
        now: u64,
    ) -> Result<Option<Built>, String> {
        let Some(day) = store::load(
            &*self.store,
            period,
            domain,
            self.config.max_rows_per_domain as usize,
        )
        .await
        .map_err(|e| format!("reading the recorded evaluations: {e}"))?
        else {
            return Ok(None);
        };
        if day.rows.is_empty() {
            return Ok(None);
        }
        let report_id = self.report_id(period, domain);
        let xml = xml::report(&self.metadata(period, &report_id, &day), &day);
        let gz = mail::gzip(&xml).map_err(|e| format!("gzip: {e}"))?;

        let (dests, dropped_uris) = rua::parse(&day.policy.rua);
        let mut dropped: Vec<String> = dropped_uris
            .into_iter()
            .map(|d| format!("{}: {}", d.uri, d.reason))
            .collect();
        let mut lookup_failed = None;
        let mut kept = Vec::new();
        for d in dests {
            match authz::check(&*self.dns, domain, d.domain()).await {
                Decision::Internal | Decision::Authorised => kept.push(d),
                Decision::NotAuthorised(name) => dropped.push(format!(
                    "mailto:{}: an external destination without the authorisation record {name} (TXT \"v=DMARC1\")",
                    d.address
                )),
                Decision::LookupFailed(e) => {
                    lookup_failed = Some(format!("checking mailto:{}: {e}", d.address));
                }
            }
        }
        let to: Vec<String> = kept.iter().map(|d| d.address.clone()).collect();
        let env = Envelope {
            org_name: &self.config.org_name,
            from: &self.config.email,
            to: &to,
            submitter: &self.config.domain,
            domain,
            report_id: &report_id,
            begin: period.begin(),
            end: period.end(),
            now,
        };
        let mut message = mail::build(&env, &gz);
        if self.config.sign
            && let Some(sign) = &self.sign
        {
            match sign(&message) {
                Ok(signed) => message = signed,
                Err(e) => {
                    tracing::warn!(
                        domain,
                        "DMARC report: cannot DKIM-sign the report mail ({e}); it goes unsigned"
                    );
                    self.count("dmarc_reports_unsigned").await;
                }
            }
        }
        // RFC 7489 !size: the whole mail must fit; DMARCbis has no limits.
        let size = message.len() as u64;
        let mut recipients = Vec::new();
        for d in kept {
            match d.limit_for(day.form()) {
                Some(limit) if size > limit => dropped.push(format!(
                    "mailto:{}: the report mail is {size} bytes, over the address's !size limit of {limit}",
                    d.address
                )),
                _ => recipients.push(d.address),
            }
        }
        if recipients.len() != to.len() {
            // Rewrite To: for the recipients left.
            let env = Envelope {
                to: &recipients,
                ..env
            };
            message = mail::build(&env, &gz);
            if self.config.sign
                && let Some(sign) = &self.sign
                && let Ok(signed) = sign(&message)
            {
                message = signed;
            }
        }
        Ok(Some(Built {
            domain: domain.to_string(),
            period,
            subject: mail::subject(domain, &self.config.domain, &report_id),
            file_name: mail::file_name(&self.config.domain, domain, period.begin(), period.end()),
            report_id,
            xml,
            message,
            recipients,
            dropped,
            lookup_failed,
            messages: day.messages(),
            rows: day.rows.len(),
        }))
    }

    fn metadata(&self, period: Period, report_id: &str, day: &DomainDay) -> Metadata {
        let mut errors = Vec::new();
        if day.over_cap > 0 {
            errors.push(format!(
                "{} evaluations are not in this report: the receiver keeps at most {} rows per domain and day",
                day.over_cap, self.config.max_rows_per_domain
            ));
        }
        if day.damaged > 0 {
            errors.push(format!(
                "{} evaluations are not in this report: their stored rows were damaged",
                day.damaged
            ));
        }
        Metadata {
            org_name: self.config.org_name.clone(),
            email: self.config.email.clone(),
            extra_contact_info: self.config.extra_contact_info.clone(),
            report_id: report_id.to_string(),
            begin: period.begin(),
            end: period.end(),
            errors,
        }
    }

    async fn failed(
        &self,
        period: Period,
        domain: &str,
        mut s: SendState,
        error: String,
        now: u64,
    ) -> Outcome {
        s.tries += 1;
        s.last_error = Some(error.clone());
        s.updated = now;
        self.count("dmarc_report_send_failures").await;
        let outcome = if s.tries >= self.config.max_tries {
            s.state = State::Failed;
            tracing::error!(domain, day = %period.name(), tries = s.tries, "DMARC report: giving up: {error}");
            self.count("dmarc_reports_given_up").await;
            Outcome::GaveUp(error)
        } else {
            let wait = self
                .config
                .retry_interval
                .0
                .saturating_mul(1 << (s.tries - 1).min(20))
                .min(MAX_BACKOFF);
            s.state = State::Pending;
            s.next_try = now + wait;
            tracing::warn!(domain, day = %period.name(), tries = s.tries, "DMARC report: send failed, trying again in {wait}s: {error}");
            Outcome::Retry {
                error,
                next_try: s.next_try,
            }
        };
        if let Err(e) = self.set_state(period, domain, &s).await {
            tracing::error!(domain, "DMARC report: cannot record the failed try: {e}");
        }
        outcome
    }

    /// Tries the report of one domain and day once, as the state allows.
    pub async fn send(&self, period: Period, domain: &str, now: u64) -> Outcome {
        let state = match self.state(period, domain).await {
            Ok(s) => s,
            Err(e) => {
                return Outcome::Retry {
                    error: format!("reading the send state: {e}"),
                    next_try: now + TICK.as_secs(),
                };
            }
        };
        let mut s = state.unwrap_or(SendState {
            state: State::Pending,
            tries: 0,
            next_try: 0,
            last_error: None,
            recipients: Vec::new(),
            updated: now,
        });
        match s.state {
            State::Pending if s.next_try > now => return Outcome::NotYet,
            State::Pending => {}
            State::Sending => {
                // Only a process that stopped mid-send leaves this: the
                // relay may have the report. Never twice: stop here.
                let error = "mxguard stopped while the relay was taking the report; it may or may not have been sent, and is not sent again".to_string();
                tracing::error!(domain, day = %period.name(), recipients = ?s.recipients, "DMARC report: {error}");
                s.state = State::Unknown;
                s.last_error = Some(error.clone());
                s.updated = now;
                let _ = self.set_state(period, domain, &s).await;
                self.count("dmarc_reports_unknown").await;
                return Outcome::Unknown(error);
            }
            done => return Outcome::Done(done),
        }
        let built = match self.build(period, domain, now).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                s.state = State::Nothing;
                s.updated = now;
                let _ = self.set_state(period, domain, &s).await;
                return Outcome::Nothing;
            }
            Err(e) => return self.failed(period, domain, s, e, now).await,
        };
        for d in &built.dropped {
            tracing::warn!(domain, day = %period.name(), "DMARC report: destination dropped: {d}");
            self.count("dmarc_report_destinations_dropped").await;
        }
        if let Some(e) = built.lookup_failed {
            return self.failed(period, domain, s, e, now).await;
        }
        if built.recipients.is_empty() {
            s.state = State::NoDestination;
            s.updated = now;
            s.last_error = Some(built.dropped.join("; "));
            let _ = self.set_state(period, domain, &s).await;
            tracing::warn!(domain, day = %period.name(), "DMARC report: no destination left; not sent");
            return Outcome::NoDestination(built.dropped);
        }
        let helo = if self.config.helo.is_empty() {
            &self.config.domain
        } else {
            &self.config.helo
        };
        let session = match smtp::open(
            &self.config.relay,
            helo,
            &self.config.email,
            &built.recipients,
        )
        .await
        {
            Ok(session) => session,
            Err(e) => return self.failed(period, domain, s, e.to_string(), now).await,
        };
        s.state = State::Sending;
        s.recipients = built.recipients.clone();
        s.updated = now;
        if let Err(e) = self.set_state(period, domain, &s).await {
            // Dropping the session without the final dot sends nothing.
            drop(session);
            s.state = State::Pending;
            return self
                .failed(
                    period,
                    domain,
                    s,
                    format!("cannot record the send as started: {e}"),
                    now,
                )
                .await;
        }
        let refused = session.refused.clone();
        match session.finish(&built.message).await {
            Ok(_) => {
                s.state = State::Sent;
                s.last_error = None;
                s.updated = unix_now().max(now);
                let to: Vec<String> = built
                    .recipients
                    .iter()
                    .filter(|r| !refused.iter().any(|(a, _)| a == *r))
                    .cloned()
                    .collect();
                s.recipients = to.clone();
                if let Err(e) = self.set_state(period, domain, &s).await {
                    // Left `sending`: the next start makes it `unknown`,
                    // never a second send.
                    tracing::error!(domain, "DMARC report: sent, but cannot record it: {e}");
                }
                for (a, r) in &refused {
                    tracing::warn!(domain, "DMARC report: the relay refused {a}: {r}");
                }
                tracing::info!(domain, day = %period.name(), to = ?to, rows = built.rows, messages = built.messages, bytes = built.message.len(), "DMARC report sent");
                self.count("dmarc_reports_sent").await;
                Outcome::Sent { to, refused }
            }
            Err(SmtpError::NotSent(e)) => {
                s.state = State::Pending;
                self.failed(period, domain, s, e, now).await
            }
            Err(SmtpError::Unknown(e)) => {
                s.state = State::Unknown;
                s.last_error = Some(e.clone());
                s.updated = now;
                let _ = self.set_state(period, domain, &s).await;
                tracing::error!(domain, day = %period.name(), "DMARC report: the relay may or may not have it ({e}); not sent again");
                self.count("dmarc_reports_unknown").await;
                Outcome::Unknown(e)
            }
        }
    }

    /// The days whose reports may still be sent at `now`, oldest first:
    /// those over and due, and still in the store.
    pub fn due_periods(&self, now: u64) -> Vec<Period> {
        let oldest = Period::of(now.saturating_sub(self.config.keep.0.saturating_sub(86_400)));
        let mut p = Period::of(now).previous();
        let mut out = Vec::new();
        while p >= oldest && out.len() < 366 {
            if self.due_at(p) <= now {
                out.push(p);
            }
            if p.day == 0 {
                break;
            }
            p = p.previous();
        }
        out.reverse();
        out
    }

    /// One pass: every due report not yet final is tried once.
    pub async fn tick(&self, now: u64) -> Vec<(Period, String, Outcome)> {
        let mut done = Vec::new();
        for period in self.due_periods(now) {
            let domains = match store::domains(
                &*self.store,
                period,
                self.config.max_domains as usize,
            )
            .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(day = %period.name(), "DMARC report: cannot list the reporting domains: {e}");
                    continue;
                }
            };
            for domain in domains {
                let outcome = self.send(period, &domain, now).await;
                done.push((period, domain, outcome));
            }
        }
        done
    }

    /// The reporter task of `mxguard serve`: a pass at start (yesterday's
    /// reports left unsent go now), then one a minute until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(relay = %self.config.relay, send_hour = self.config.send_hour, signed = self.sign.is_some() && self.config.sign, "DMARC reports: sending daily");
        loop {
            self.tick(unix_now()).await;
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}
