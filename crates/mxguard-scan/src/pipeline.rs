//! The pipeline: builds the checks from the config and runs them, the
//! inline ones in order, then the waiting ones side by side.

use crate::Task;
use crate::checks::{BuildReport, Check, Outputs, build_checks};
use crate::schedule::{Failures, Plan};
use crate::services::Services;
use mxguard_auth::config::AuthConfig;
use mxguard_core::config::{Config, ConfigError, LoadedConfig, MilterHeaders};
use mxguard_core::{Envelope, ScanResults, SmtpStage, SymbolTable, Verdict};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// A non-fatal problem found while building: a map line that was skipped.
pub type PipelineWarning = mxguard_core::maps::LineError;

/// Every check, in order, and the symbol table that scores them.
pub struct Pipeline {
    checks: Vec<Box<dyn Check>>,
    /// The order of the waiting checks.
    plan: Plan,
    symbols: SymbolTable,
    max_message_size: u64,
    /// `[scan] scan_timeout`: the waiting checks' deadline.
    scan_timeout: Duration,
    /// `[milter.headers]`, for the milter block of each verdict.
    headers: MilterHeaders,
    /// `[auth] trusted_authserv_ids`: whose Authentication-Results stay.
    trusted_authserv_ids: Vec<String>,
    /// Checks that panicked or timed out: counted and logged, never fatal.
    failures: Failures,
}

/// A message after the CPU phase (parse, prefilter, inline checks),
/// before the waiting checks.
pub struct Prepared<'a> {
    task: Task<'a>,
    results: ScanResults,
    started: Instant,
}

impl Pipeline {
    /// Builds a pipeline from a config that did not come from a file, with
    /// no services.
    pub fn from_config(
        config: Config,
    ) -> Result<(Pipeline, Vec<PipelineWarning>), Vec<ConfigError>> {
        Pipeline::new(
            &LoadedConfig {
                config,
                ..Default::default()
            },
            &Services::default(),
        )
    }

    /// Builds the pipeline. Errors name the config key at fault (a map or
    /// table file that cannot be read) or the checks at fault (a waiting
    /// order that cannot be met); warnings are map lines skipped.
    pub fn new(
        loaded: &LoadedConfig,
        services: &Services,
    ) -> Result<(Pipeline, Vec<PipelineWarning>), Vec<ConfigError>> {
        let config = &loaded.config;
        let mut report = BuildReport::default();
        let checks = build_checks(config, services, &mut report);
        Pipeline::assemble(loaded, checks, report)
    }

    /// Builds a pipeline over checks made elsewhere (tests, and front ends
    /// that add their own), with the same validation as [`Pipeline::new`].
    pub fn with_checks(
        loaded: &LoadedConfig,
        checks: Vec<Box<dyn Check>>,
    ) -> Result<(Pipeline, Vec<PipelineWarning>), Vec<ConfigError>> {
        Pipeline::assemble(loaded, checks, BuildReport::default())
    }

    fn assemble(
        loaded: &LoadedConfig,
        checks: Vec<Box<dyn Check>>,
        report: BuildReport,
    ) -> Result<(Pipeline, Vec<PipelineWarning>), Vec<ConfigError>> {
        let config = &loaded.config;
        let mut errors: Vec<ConfigError> = report
            .errors
            .into_iter()
            .map(|e| loaded.error_at(e.span, &e.key, &e.message))
            .collect();
        let plan = match Plan::build(&checks) {
            Ok(p) => p,
            Err(e) => {
                errors.extend(e.iter().map(|m| loaded.error_at(None, "checks", m)));
                Plan::default()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut symbols = SymbolTable::new(config);
        for check in &checks {
            for def in check.symbols() {
                symbols.register(def, config);
            }
        }
        Ok((
            Pipeline {
                checks,
                plan,
                symbols,
                max_message_size: config.scan.max_message_size.0,
                scan_timeout: config.scan.scan_timeout.as_duration(),
                headers: config.milter.headers.clone(),
                trusted_authserv_ids: config.section::<AuthConfig>().trusted_authserv_ids.clone(),
                failures: Failures::default(),
            },
            report.line_errors,
        ))
    }

    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// `[milter.headers]`: which spam headers a verdict adds.
    pub fn header_options(&self) -> &MilterHeaders {
        &self.headers
    }

    /// `[auth] trusted_authserv_ids`.
    pub fn trusted_authserv_ids(&self) -> &[String] {
        &self.trusted_authserv_ids
    }

    /// How many times a check has panicked since start.
    pub fn check_failures(&self) -> u64 {
        self.failures.panics.load(Ordering::Relaxed)
    }

    /// How many times a waiting check has not finished in time since start.
    pub fn check_timeouts(&self) -> u64 {
        self.failures.timeouts.load(Ordering::Relaxed)
    }

    /// Scans one message. Never panics: a failing check is logged, counted
    /// and skipped, a check that does not finish in time gives its time-out
    /// symbol, and the others still decide.
    pub async fn scan(&self, envelope: &Envelope, raw: &[u8]) -> Verdict {
        self.finish(self.prepare(envelope, raw)).await
    }

    /// [`Pipeline::scan`] for callers outside a tokio runtime (tests,
    /// fuzzing): the CPU phase on this thread, and the waiting checks, if
    /// any, on a current-thread runtime made for them. Must not be called
    /// from inside a runtime.
    pub fn scan_blocking(&self, envelope: &Envelope, raw: &[u8]) -> Verdict {
        let prepared = self.prepare(envelope, raw);
        if prepared.results.skipped || self.plan.is_empty() {
            return self.symbols.finalize(prepared.results);
        }
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(self.finish(prepared)),
            Err(e) => {
                tracing::error!("cannot start a runtime for the waiting checks: {e}");
                self.symbols.finalize(prepared.results)
            }
        }
    }

    /// The CPU phase: parse, prefilter, inline checks. Synchronous; the
    /// caller decides where it runs (see [`ScanService`](crate::ScanService)).
    pub fn prepare<'a>(&self, envelope: &'a Envelope, raw: &'a [u8]) -> Prepared<'a> {
        let started = Instant::now();
        let task = Task::new(envelope, raw, self.max_message_size);
        let mut results = ScanResults::default();
        if !task.parsed {
            results.skipped = raw.len() as u64 > self.max_message_size;
        }
        for check in &self.checks {
            self.guarded(check.as_ref(), || check.prefilter(&task, &mut results));
        }
        if results.forced.is_some() {
            results.skipped = true;
        } else {
            for check in &self.checks {
                self.guarded(check.as_ref(), || check.run(&task, &mut results));
            }
        }
        Prepared {
            task,
            results,
            started,
        }
    }

    /// The waiting phase, then the verdict. Returns at once when no check
    /// waits.
    pub async fn finish(&self, prepared: Prepared<'_>) -> Verdict {
        self.finish_with_outputs(prepared).await.0
    }

    /// [`Pipeline::finish`], with the typed values the waiting checks
    /// produced (what stages after the verdict read, e.g. ARC sealing the
    /// ARC check's [`ArcVerdict`](mxguard_auth::arc::ArcVerdict)).
    pub async fn finish_with_outputs(&self, prepared: Prepared<'_>) -> (Verdict, Outputs) {
        let Prepared {
            task,
            mut results,
            started,
        } = prepared;
        let mut outputs = Outputs::default();
        if !results.skipped && !self.plan.is_empty() {
            let deadline = started + self.scan_timeout;
            outputs = self
                .plan
                .run(&self.checks, &task, &mut results, deadline, &self.failures)
                .await;
        }
        (self.symbols.finalize(results), outputs)
    }

    /// Checks what is known at an SMTP stage before DATA. `Some` only when a
    /// check forces an action there (a blocklisted client or sender).
    /// Whether any check can answer at `stage` (see [`Check::acts_early_at`]).
    pub fn acts_early_at(&self, stage: SmtpStage) -> bool {
        self.checks.iter().any(|c| c.acts_early_at(stage))
    }

    pub fn early(&self, stage: SmtpStage, envelope: &Envelope) -> Option<Verdict> {
        let mut results = ScanResults::default();
        for check in &self.checks {
            self.guarded(check.as_ref(), || {
                check.early(stage, envelope, &mut results)
            });
        }
        results.forced.as_ref()?;
        results.skipped = true;
        Some(self.symbols.finalize(results))
    }

    fn guarded(&self, check: &dyn Check, f: impl FnOnce()) {
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            self.failures.panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                check = check.name(),
                "check failed on this message and was skipped"
            );
        }
    }
}
