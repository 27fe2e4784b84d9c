//! SPF (RFC 7208) of the envelope sender: MAIL FROM's domain, or the HELO
//! name for bounces. Waits on DNS; its typed value ([`SpfVerdict`]) is what
//! DMARC aligns on. Skipped for authenticated senders (outbound mail).

use crate::Task;
use crate::checks::{BoxFuture, Check, Output, Outputs, Waiting};
use mxguard_auth::Verifier;
use mxguard_auth::config::{AuthConfig, SpfConfig};
use mxguard_auth::results::AuthResult;
use mxguard_auth::spf::{self, SpfVerdict};
use mxguard_core::config::Config;
use mxguard_core::{ScanResults, SymbolDef};
use std::time::Duration;

pub const NAME: &str = "spf";

pub struct Spf {
    verifier: Verifier,
    timeout: Duration,
    host_name: String,
}

impl Spf {
    pub fn new(config: &Config, verifier: Verifier) -> Spf {
        Spf {
            verifier,
            timeout: config.section::<SpfConfig>().timeout.as_duration(),
            host_name: if config.section::<AuthConfig>().host_name.is_empty() {
                "localhost".to_string()
            } else {
                config.section::<AuthConfig>().host_name.clone()
            },
        }
    }
}

/// The symbol of a result (rspamd's names).
pub fn symbol(result: AuthResult) -> &'static str {
    match result {
        AuthResult::Pass => "R_SPF_ALLOW",
        AuthResult::Fail => "R_SPF_FAIL",
        AuthResult::SoftFail => "R_SPF_SOFTFAIL",
        AuthResult::Neutral => "R_SPF_NEUTRAL",
        AuthResult::None => "R_SPF_NA",
        AuthResult::TempError => "R_SPF_DNSFAIL",
        AuthResult::PermError => "R_SPF_PERMFAIL",
    }
}

impl Check for Spf {
    fn name(&self) -> &'static str {
        NAME
    }

    /// rspamd's default weights (policies group).
    fn symbols(&self) -> Vec<SymbolDef> {
        let g = "spf";
        vec![
            SymbolDef::new("R_SPF_ALLOW", -0.2, g, "SPF verification allows sending"),
            SymbolDef::new("R_SPF_FAIL", 1.0, g, "SPF verification failed"),
            SymbolDef::new("R_SPF_SOFTFAIL", 0.0, g, "SPF verification soft-failed"),
            SymbolDef::new("R_SPF_NEUTRAL", 0.0, g, "SPF policy is neutral"),
            SymbolDef::new("R_SPF_DNSFAIL", 0.0, g, "SPF DNS failure"),
            SymbolDef::new("R_SPF_NA", 0.0, g, "Missing SPF record"),
            SymbolDef::new(
                "R_SPF_PERMFAIL",
                0.0,
                g,
                "SPF record is malformed or persistent DNS error",
            ),
        ]
    }

    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

impl Waiting for Spf {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_symbol(&self) -> &'static str {
        "R_SPF_DNSFAIL"
    }

    fn run<'a>(&'a self, task: &'a Task<'_>, _deps: Outputs) -> BoxFuture<'a, Output> {
        Box::pin(async move {
            let env = task.envelope;
            let Some(ip) = env.ip else {
                return Output::default();
            };
            if env.is_authenticated() {
                return Output::default();
            }
            let helo = env.helo.as_deref().unwrap_or_default();
            let mail_from = env
                .mail_from
                .as_deref()
                .map(mxguard_core::envelope::strip_path)
                .unwrap_or_default();
            let verdict: SpfVerdict =
                spf::verify(&self.verifier, ip, helo, mail_from, &self.host_name).await;
            let mut results = ScanResults::default();
            results.insert(symbol(verdict.result), vec![verdict.domain.clone()]);
            Output::new(results).with_value(verdict)
        })
    }
}
