//! `mxguard config check` and `mxguard config dump`.

use crate::settings::{Globals, format_errors};
use clap::Subcommand;
use mxguard_core::config::load_file;
use mxguard_scan::Pipeline;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and the map files it names; print every error.
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
    let loaded = match load_file(&path) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    match Pipeline::new(&loaded) {
        Ok((pipeline, warnings)) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            let known: Vec<&str> = pipeline.symbols().names().collect();
            for name in loaded.config.symbols.keys() {
                if !known.contains(&name.as_str()) {
                    eprintln!(
                        "warning: {}: symbols.{name}: no check emits this symbol; its score has no effect",
                        path.display()
                    );
                }
            }
            println!("{}: OK", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{}", format_errors(&errors));
            Ok(ExitCode::FAILURE)
        }
    }
}
