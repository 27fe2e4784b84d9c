//! DKIM (RFC 6376, RFC 8463): every signature of the message, up to
//! `mxguard_auth::dkim::MAX_SIGNATURES`. Its typed value
//! ([`DkimResults`]) is what DMARC aligns on.

use crate::Task;
use crate::checks::{BoxFuture, Check, Output, Outputs, Waiting};
use mxguard_auth::Verifier;
use mxguard_auth::config::DkimConfig;
use mxguard_auth::dkim::{self, DkimVerdict};
use mxguard_auth::results::AuthResult;
use mxguard_core::config::Config;
use mxguard_core::{ScanResults, SymbolDef};
use std::time::Duration;

pub const NAME: &str = "dkim";

/// Every signature's verdict, in header order; empty: unsigned.
#[derive(Debug, Clone, Default)]
pub struct DkimResults(pub Vec<DkimVerdict>);

pub struct Dkim {
    verifier: Verifier,
    timeout: Duration,
}

impl Dkim {
    pub fn new(config: &Config, verifier: Verifier) -> Dkim {
        Dkim {
            verifier,
            timeout: config.section::<DkimConfig>().timeout.as_duration(),
        }
    }
}

pub fn symbol(result: AuthResult) -> &'static str {
    match result {
        AuthResult::Pass => "R_DKIM_ALLOW",
        AuthResult::Fail | AuthResult::SoftFail => "R_DKIM_REJECT",
        AuthResult::TempError => "R_DKIM_TEMPFAIL",
        AuthResult::None => "R_DKIM_NA",
        AuthResult::PermError | AuthResult::Neutral => "R_DKIM_PERMFAIL",
    }
}

/// A signature as the symbol's option: `domain:s=selector[:i=auid]`, what
/// Authentication-Results' `header.d`, `header.s`, `header.i` are made of.
pub fn option(v: &DkimVerdict) -> String {
    let mut o = format!("{}:s={}", v.domain, v.selector);
    if !v.identity.is_empty() {
        o.push_str(&format!(":i={}", v.identity));
    }
    o
}

impl Check for Dkim {
    fn name(&self) -> &'static str {
        NAME
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let g = "dkim";
        vec![
            SymbolDef::new("R_DKIM_ALLOW", -0.2, g, "DKIM verification succeed"),
            SymbolDef::new("R_DKIM_REJECT", 1.0, g, "DKIM verification failed"),
            SymbolDef::new(
                "R_DKIM_TEMPFAIL",
                0.0,
                g,
                "DKIM verification soft-failed (DNS)",
            ),
            SymbolDef::new(
                "R_DKIM_PERMFAIL",
                0.0,
                g,
                "DKIM signature or key cannot be used",
            ),
            SymbolDef::new("R_DKIM_NA", 0.0, g, "Missing DKIM signature"),
        ]
    }

    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

impl Waiting for Dkim {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_symbol(&self) -> &'static str {
        "R_DKIM_TEMPFAIL"
    }

    fn run<'a>(&'a self, task: &'a Task<'_>, _deps: Outputs) -> BoxFuture<'a, Output> {
        Box::pin(async move {
            if task.envelope.is_authenticated() {
                return Output::default();
            }
            let parsed = task.signatures();
            if parsed.dropped() > 0 {
                tracing::debug!(
                    dropped = parsed.dropped(),
                    "DKIM/ARC: signatures over the cap left out"
                );
            }
            let verdicts = match parsed.message() {
                Some(m) => dkim::verify(&self.verifier, &m).await,
                None => Vec::new(),
            };
            let mut results = ScanResults::default();
            if verdicts.is_empty() {
                results.insert("R_DKIM_NA", vec![]);
            }
            for v in &verdicts {
                results.insert(symbol(v.result), vec![option(v)]);
            }
            Output::new(results).with_value(DkimResults(verdicts))
        })
    }
}
