//! The pipeline: builds the checks from the config and runs them in order.

use crate::Task;
use crate::checks::{BuildReport, Check, build_checks};
use mxguard_core::config::{Config, ConfigError, LoadedConfig};
use mxguard_core::{Envelope, ScanResults, SmtpStage, SymbolTable, Verdict};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

/// A non-fatal problem found while building: a map line that was skipped.
pub type PipelineWarning = mxguard_core::maps::LineError;

/// Every check, in order, and the symbol table that scores them.
pub struct Pipeline {
    checks: Vec<Box<dyn Check>>,
    symbols: SymbolTable,
    max_message_size: u64,
    /// Checks that panicked: counted and logged, never fatal.
    check_failures: AtomicU64,
}

impl Pipeline {
    /// Builds a pipeline from a config that did not come from a file.
    pub fn from_config(
        config: Config,
    ) -> Result<(Pipeline, Vec<PipelineWarning>), Vec<ConfigError>> {
        Pipeline::new(&LoadedConfig {
            config,
            ..Default::default()
        })
    }

    /// Builds the pipeline. Errors name the config key at fault (a map or
    /// table file that cannot be read); warnings are map lines skipped.
    pub fn new(
        loaded: &LoadedConfig,
    ) -> Result<(Pipeline, Vec<PipelineWarning>), Vec<ConfigError>> {
        let config = &loaded.config;
        let mut report = BuildReport::default();
        let checks = build_checks(config, &mut report);
        if !report.errors.is_empty() {
            return Err(report
                .errors
                .into_iter()
                .map(|e| loaded.error_at(e.span, &e.key, &e.message))
                .collect());
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
                symbols,
                max_message_size: config.scan.max_message_size.0,
                check_failures: AtomicU64::new(0),
            },
            report.line_errors,
        ))
    }

    /// Gives the classifier check its model handle (the binary loads and
    /// refreshes the model; without a handle BAYES_* stay silent).
    pub fn with_classifier(self, handle: std::sync::Arc<mxguard_learn::ModelHandle>) -> Pipeline {
        for check in &self.checks {
            check.attach_classifier(&handle);
        }
        self
    }

    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// How many times a check has panicked since start.
    pub fn check_failures(&self) -> u64 {
        self.check_failures.load(Ordering::Relaxed)
    }

    /// Scans one message. Never panics: a failing check is logged, counted
    /// and skipped, and the others still decide.
    pub fn scan(&self, envelope: &Envelope, raw: &[u8]) -> Verdict {
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
        self.symbols.finalize(results)
    }

    /// Checks what is known at an SMTP stage before DATA. `Some` only when a
    /// check forces an action there (a blocklisted client or sender).
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
            self.check_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                check = check.name(),
                "check failed on this message and was skipped"
            );
        }
    }
}
