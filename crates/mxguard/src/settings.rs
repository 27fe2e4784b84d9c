//! Global options, config resolution and logging set-up shared by commands.

use mxguard_core::config::{ConfigError, DEFAULT_CONFIG_PATH, LoadedConfig, Registry, load_file};
use std::path::{Path, PathBuf};

/// Every config section read besides core's, one line per owner. A new
/// owner outside the scan checks (a front end) adds its `.with::<T>()`
/// here.
pub fn sections() -> Registry {
    mxguard_scan::checks::register(Registry::new())
        .with::<crate::report_schedule::ReportSchedule>()
        .with::<mxguard_web::WebConfig>()
        .with::<mxguard_ban::config::BanConfig>()
}

pub struct Globals {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl Globals {
    /// The config named by `-c`, else the default path if it exists, else
    /// built-in defaults. `--data-dir` overrides `[store] data_dir`.
    pub fn load_config(&self) -> Result<LoadedConfig, String> {
        let path = match &self.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        let mut loaded = match path {
            Some(p) => load_file(&p, &sections()).map_err(|errs| format_errors(&errs))?,
            None => LoadedConfig {
                config: sections().defaults(),
                ..LoadedConfig::default()
            },
        };
        if let Some(d) = &self.data_dir {
            loaded.config.store.data_dir = d.clone();
        }
        // Actions and symbol scores saved from the HTTP API or the UI.
        mxguard_web::overrides::apply_saved(&mut loaded.config)?;
        Ok(loaded)
    }
}

pub fn format_errors(errors: &[ConfigError]) -> String {
    let mut s = String::from("the configuration has errors:");
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line (level, target, message and fields at the
    /// top level, timestamp), for log shippers.
    Json,
}

/// Logs go to stderr; `MXGUARD_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_logging(default: &str, format: LogFormat) {
    let filter = std::env::var("MXGUARD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs
            .with_ansi(colour(std::io::stderr()))
            .event_format(crate::log_line::HotLines(tracing_subscriber::fmt::format()))
            .try_init(),
        LogFormat::Json => logs.with_ansi(false).json().flatten_event(true).try_init(),
    };
}

/// Colour codes only for a person at a terminal who has not asked for none
/// (NO_COLOR set and not empty, as no-color.org says); a journal, a pipe or
/// a file gets plain text.
fn colour(stream: impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Peak resident set size of this process, from /proc (Linux), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn display(p: &Path) -> String {
    p.display().to_string()
}
