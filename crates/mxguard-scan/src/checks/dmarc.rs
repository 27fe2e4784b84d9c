//! DMARC (RFC 7489, RFC 9989): runs after SPF, DKIM and ARC and reads
//! their typed results (never their symbols). A failure gets the symbol of
//! the policy that applies (after `t=y` and `pct`) and, when
//! `[dmarc.actions]` names one, that policy's action; an ARC pass sealed
//! by a `trusted_arc_sealers` domain overrides the failure.

use crate::Services;
use crate::Task;
use crate::checks::dkim::DkimResults;
use crate::checks::{BoxFuture, Check, Output, Outputs, Waiting};
use mail_parser::HeaderValue;
use mxguard_auth::Verifier;
use mxguard_auth::arc::ArcVerdict;
use mxguard_auth::config::{
    ArcVerifyConfig, DkimConfig, DmarcActions, DmarcConfig, DmarcReportConfig, SpfConfig,
};
use mxguard_auth::dmarc::{self, DmarcVerdict, Policy};
use mxguard_auth::report::from_verdict::{self, Context};
use mxguard_auth::results::AuthResult;
use mxguard_auth::spf::SpfVerdict;
use mxguard_core::config::Config;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_store::{Clock, Store};
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "dmarc";

/// DMARC's value for later checks and reports.
#[derive(Debug, Clone)]
pub struct DmarcOutcome {
    pub verdict: DmarcVerdict,
    /// A failure forgiven for a trusted sealer's ARC pass: the sealer.
    pub arc_override: Option<String>,
}

/// What DMARC runs after, by which of SPF (1), DKIM (2), ARC (4) are on:
/// naming a check that is not in the pipeline is a build error.
const AFTER: [&[&str]; 8] = [
    &[],
    &[super::spf::NAME],
    &[super::dkim::NAME],
    &[super::spf::NAME, super::dkim::NAME],
    &[super::arc::NAME],
    &[super::spf::NAME, super::arc::NAME],
    &[super::dkim::NAME, super::arc::NAME],
    &[super::spf::NAME, super::dkim::NAME, super::arc::NAME],
];

pub struct Dmarc {
    verifier: Verifier,
    /// Where evaluations are counted for the aggregate reports, when
    /// `[dmarc_reporting] enabled` and the pipeline has a store.
    reporting: Option<(Arc<dyn Store>, Arc<DmarcReportConfig>)>,
    clock: Arc<dyn Clock>,
    after: &'static [&'static str],
    timeout: Duration,
    actions: DmarcActions,
    trusted_sealers: Vec<String>,
}

impl Dmarc {
    pub fn new(config: &Config, verifier: Verifier, services: &Services) -> Dmarc {
        let on = usize::from(config.section::<SpfConfig>().enabled)
            | usize::from(config.section::<DkimConfig>().enabled) << 1
            | usize::from(config.section::<ArcVerifyConfig>().enabled) << 2;
        let reporting = services
            .store
            .clone()
            .filter(|_| config.section::<DmarcReportConfig>().enabled)
            .map(|store| {
                (
                    store,
                    Arc::new(config.section::<DmarcReportConfig>().clone()),
                )
            });
        Dmarc {
            verifier,
            reporting,
            clock: services.clock.clone(),
            after: AFTER[on],
            timeout: config.section::<DmarcConfig>().timeout.as_duration(),
            actions: config.section::<DmarcConfig>().actions.clone(),
            trusted_sealers: config
                .section::<DmarcConfig>()
                .trusted_arc_sealers
                .iter()
                .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }
}

/// The From addresses of every From header (a second From header must
/// not hide the first from DMARC), borrowed from the parsed message.
fn from_addresses<'t>(task: &'t Task<'_>) -> impl Iterator<Item = &'t str> {
    task.message
        .header_values("From")
        .filter_map(|v| match v {
            HeaderValue::Address(a) => Some(a),
            _ => None,
        })
        .flat_map(|a| a.iter().filter_map(|x| x.address()))
}

impl Dmarc {
    /// Counts the evaluation for the aggregate reports. A store error is
    /// logged and never holds the message.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        task: &Task<'_>,
        verdict: &DmarcVerdict,
        spf: Option<&SpfVerdict>,
        dkim: &[mxguard_auth::dkim::DkimVerdict],
        enforced: bool,
        arc_override: Option<&str>,
        store: &Arc<dyn Store>,
        config: &Arc<DmarcReportConfig>,
    ) {
        let Some(source_ip) = task.envelope.ip else {
            return;
        };
        let env = &task.envelope;
        let mail_from = env
            .mail_from
            .as_deref()
            .and_then(|m| m.rsplit_once('@'))
            .map(|(_, d)| d.trim_end_matches('>'));
        let envelope_from = mail_from.or(env.helo.as_deref()).unwrap_or_default();
        let envelope_to = env
            .rcpts
            .first()
            .and_then(|r| r.rsplit_once('@'))
            .map(|(_, d)| d.trim_end_matches('>'));
        let cx = Context {
            time: self
                .clock
                .now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            source_ip,
            envelope_from,
            envelope_to,
            enforced,
            arc_override,
        };
        let Some(evaluation) = from_verdict::evaluation(verdict, spf, dkim, &cx) else {
            return;
        };
        let (store, config) = (store.clone(), config.clone());
        let write = async move {
            if let Err(e) =
                mxguard_auth::report::record_evaluation(store.as_ref(), &config, &evaluation).await
            {
                tracing::warn!(
                    domain = evaluation.policy.domain,
                    "DMARC report record: {e}"
                );
            }
        };
        // Behind the verdict, as the history is: the message does not wait
        // on the store.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(write);
            }
            Err(_) => write.await,
        }
    }
}

impl Check for Dmarc {
    fn name(&self) -> &'static str {
        NAME
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let g = "dmarc";
        vec![
            SymbolDef::new("DMARC_POLICY_ALLOW", -0.5, g, "DMARC permit policy"),
            SymbolDef::new("DMARC_POLICY_REJECT", 2.0, g, "DMARC reject policy"),
            SymbolDef::new("DMARC_POLICY_QUARANTINE", 1.5, g, "DMARC quarantine policy"),
            SymbolDef::new(
                "DMARC_POLICY_SOFTFAIL",
                0.1,
                g,
                "DMARC failed, no policy to apply",
            ),
            SymbolDef::new("DMARC_NA", 0.0, g, "No DMARC record"),
            SymbolDef::new("DMARC_BAD_POLICY", 0.5, g, "DMARC record is invalid"),
            SymbolDef::new("DMARC_DNSFAIL", 0.0, g, "DMARC DNS failure"),
        ]
    }

    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

impl Waiting for Dmarc {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_symbol(&self) -> &'static str {
        "DMARC_DNSFAIL"
    }

    fn after(&self) -> &'static [&'static str] {
        self.after
    }

    fn run<'a>(&'a self, task: &'a Task<'_>, deps: Outputs) -> BoxFuture<'a, Output> {
        Box::pin(async move {
            if task.envelope.is_authenticated() {
                return Output::default();
            }
            let spf = deps.get::<SpfVerdict>(super::spf::NAME);
            let dkim = deps
                .get::<DkimResults>(super::dkim::NAME)
                .map(|d| d.0.as_slice())
                .unwrap_or_default();
            let arc = deps.get::<ArcVerdict>(super::arc::NAME);
            let authors = dmarc::author_domains(from_addresses(task));
            let verdict = dmarc::evaluate(&self.verifier, &authors, spf, dkim).await;
            let mut results = ScanResults::default();
            let mut arc_override: Option<String> = None;
            let mut enforced = false;
            let dom = verdict.from_domain.clone();
            let reason = verdict.reason.clone().unwrap_or_default();
            match verdict.result {
                AuthResult::Pass => {
                    let policy = verdict.published.unwrap_or(Policy::None);
                    results.insert("DMARC_POLICY_ALLOW", vec![dom, policy.to_string()]);
                }
                AuthResult::Fail => {
                    let sealer = arc
                        .filter(|a| a.result == AuthResult::Pass)
                        .and_then(|a| a.last_sealer())
                        .filter(|s| self.trusted_sealers.iter().any(|t| t == s));
                    let policy = verdict.policy.unwrap_or(Policy::None);
                    if let Some(sealer) = sealer {
                        arc_override = Some(sealer.to_string());
                        results.insert(
                            "DMARC_POLICY_SOFTFAIL",
                            vec![format!(
                                "{dom} : {reason}, overridden by the ARC pass sealed by {sealer}"
                            )],
                        );
                    } else {
                        let symbol = match policy {
                            Policy::Reject => "DMARC_POLICY_REJECT",
                            Policy::Quarantine => "DMARC_POLICY_QUARANTINE",
                            Policy::None => "DMARC_POLICY_SOFTFAIL",
                        };
                        results.insert(symbol, vec![format!("{dom} : {reason}")]);
                        if let Some(action) = self.actions.for_policy(policy.as_str()) {
                            enforced = true;
                            results.force(
                                action,
                                Some(format!(
                                    "Message rejected by the DMARC policy of {dom} ({reason})"
                                ))
                                .filter(|_| {
                                    matches!(
                                        action,
                                        mxguard_core::Action::Reject
                                            | mxguard_core::Action::SoftReject
                                    )
                                }),
                                symbol,
                            );
                        }
                    }
                }
                AuthResult::TempError => {
                    results.insert("DMARC_DNSFAIL", vec![format!("{dom} : {reason}")])
                }
                AuthResult::PermError => {
                    results.insert("DMARC_BAD_POLICY", vec![format!("{dom} : {reason}")])
                }
                _ => results.insert("DMARC_NA", vec![]),
            }
            if let Some((store, config)) = &self.reporting {
                self.record(
                    task,
                    &verdict,
                    spf,
                    dkim,
                    enforced,
                    arc_override.as_deref(),
                    store,
                    config,
                )
                .await;
            }
            Output::new(results).with_value(DmarcOutcome {
                verdict,
                arc_override,
            })
        })
    }
}
