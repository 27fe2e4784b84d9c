//! ARC (RFC 8617): validates the chain of custody forwarders and lists
//! add; DMARC reads its typed value ([`ArcVerdict`]) to let a trusted
//! sealer's pass stand in for a failure the forwarding caused.

use crate::Task;
use crate::checks::{BoxFuture, Check, Output, Outputs, Waiting};
use mxguard_auth::Verifier;
use mxguard_auth::arc;
use mxguard_auth::config::ArcVerifyConfig;
use mxguard_auth::results::AuthResult;
use mxguard_core::config::Config;
use mxguard_core::{ScanResults, SymbolDef};
use std::time::Duration;

pub const NAME: &str = "arc";

pub struct Arc {
    verifier: Verifier,
    timeout: Duration,
}

impl Arc {
    pub fn new(config: &Config, verifier: Verifier) -> Arc {
        Arc {
            verifier,
            timeout: config.section::<ArcVerifyConfig>().timeout.as_duration(),
        }
    }
}

pub fn symbol(result: AuthResult) -> &'static str {
    match result {
        AuthResult::Pass => "ARC_ALLOW",
        AuthResult::Fail | AuthResult::SoftFail | AuthResult::Neutral => "ARC_REJECT",
        AuthResult::PermError => "ARC_INVALID",
        AuthResult::TempError => "ARC_DNSFAIL",
        AuthResult::None => "ARC_NA",
    }
}

impl Check for Arc {
    fn name(&self) -> &'static str {
        NAME
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let g = "arc";
        vec![
            SymbolDef::new("ARC_ALLOW", -1.0, g, "ARC checks success"),
            SymbolDef::new("ARC_REJECT", 1.0, g, "ARC checks failed"),
            SymbolDef::new("ARC_INVALID", 0.5, g, "ARC structure invalid"),
            SymbolDef::new("ARC_DNSFAIL", 0.0, g, "ARC DNS error"),
            SymbolDef::new("ARC_NA", 0.0, g, "ARC signature absent"),
        ]
    }

    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

impl Waiting for Arc {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_symbol(&self) -> &'static str {
        "ARC_DNSFAIL"
    }

    fn run<'a>(&'a self, task: &'a Task<'_>, _deps: Outputs) -> BoxFuture<'a, Output> {
        Box::pin(async move {
            if task.envelope.is_authenticated() {
                return Output::default();
            }
            let Some(m) = task.signatures().message() else {
                return Output::default();
            };
            let verdict = arc::verify(&self.verifier, &m).await;
            let mut results = ScanResults::default();
            let option = match (verdict.result, verdict.last_sealer()) {
                (AuthResult::None, _) => vec![],
                (AuthResult::Pass, Some(d)) => vec![format!("{d}:i={}", verdict.sets)],
                (_, _) => verdict.reason.iter().cloned().collect(),
            };
            results.insert(symbol(verdict.result), option);
            Output::new(results).with_value(verdict)
        })
    }
}
