//! `mxguard config check` and `mxguard config dump`.

use crate::parts::{self, NoStore, Wanted};
use crate::settings::Globals;
use clap::Subcommand;
use mxguard_core::config::{ConfigError, MAX_ERRORS, load_file};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and build what `serve` builds from it (every
    /// map, table and whitelist file it names, the DNS resolver), without
    /// binding sockets or opening the store; print every error.
    Check {
        /// The file to check (default: -c, or /etc/mxguard/mxguard.toml).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration, defaults included, as TOML.
    Dump,
}

pub fn run(globals: &Globals, cmd: ConfigCommand) -> Result<ExitCode, String> {
    match cmd {
        ConfigCommand::Check { file } => check(globals, file),
        ConfigCommand::Dump => {
            let loaded = globals.load_config()?;
            let text = toml::to_string_pretty(&loaded.config)
                .map_err(|e| format!("cannot print the config: {e}"))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(globals: &Globals, file: Option<PathBuf>) -> Result<ExitCode, String> {
    let path = file
        .or_else(|| globals.config.clone())
        .unwrap_or_else(|| PathBuf::from(mxguard_core::config::DEFAULT_CONFIG_PATH));
    let loaded = match load_file(&path, &crate::settings::sections()) {
        Ok(l) => l,
        Err(errors) => return Ok(refuse(&path, &errors)),
    };
    // The DNS resolver is built on a runtime, as in `serve`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let built = runtime.block_on(async {
        parts::build(
            &loaded,
            Arc::new(NoStore),
            &mxguard_scan::Services::default(),
            Wanted::check(&loaded.config),
        )
    });
    match built {
        Ok(built) => {
            for w in &built.warnings {
                eprintln!("warning: {w}");
            }
            if let Some(pipeline) = &built.pipeline {
                let known: Vec<&str> = pipeline.symbols().names().collect();
                for name in loaded.config.symbols.keys() {
                    if !known.contains(&name.as_str()) {
                        eprintln!(
                            "warning: {}: symbols.{name}: no check emits this symbol; its score has no effect",
                            path.display()
                        );
                    }
                }
            }
            println!("{}: OK", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Ok(refuse(&path, &errors)),
    }
}

/// Prints the errors, one a line (at most [`MAX_ERRORS`]), and a count.
fn refuse(path: &std::path::Path, errors: &[ConfigError]) -> ExitCode {
    for e in errors.iter().take(MAX_ERRORS) {
        eprintln!("{e}");
    }
    if errors.len() > MAX_ERRORS {
        eprintln!(
            "{}: and {} more errors not shown",
            path.display(),
            errors.len() - MAX_ERRORS
        );
    }
    eprintln!("{}: {} error(s)", path.display(), errors.len());
    ExitCode::FAILURE
}
