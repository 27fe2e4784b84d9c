//! mxguard: the binary. Command-line parsing and wiring of the crates,
//! nothing else: every decision about mail lives in the library crates.

mod ban_api;
mod ban_cmd;
mod classifier;
mod config_cmd;
mod dkim_cmd;
mod dmarc_cmd;
mod eval_actions;
mod history_cmd;
mod learn_cmd;
mod log_line;
mod parts;
mod purge;
mod pw_cmd;
mod report_cmd;
mod report_schedule;
mod scan_cmd;
mod scanner;
mod serve;
mod settings;
mod store_cmd;
mod web;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mxguard",
    version,
    about = "Mail defence for Postfix in one binary"
)]
struct Cli {
    /// Config file (default: /etc/mxguard/mxguard.toml if it exists, else built-in defaults).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// State directory for the embedded store (overrides [store] data_dir).
    #[arg(long = "data-dir", global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log line format on stderr: text (coloured only on a terminal, and
    /// never with NO_COLOR set) or json (one object per line).
    #[arg(long = "log-format", global = true, value_enum, default_value_t)]
    log_format: settings::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan messages and print verdicts.
    Scan(scan_cmd::ScanArgs),
    /// Run the daemon: milter, policy server and the rest, as configured.
    Serve,
    /// Show the latest verdicts recorded in the store.
    History(history_cmd::HistoryArgs),
    /// Show the counters kept in the store and the classifier's state.
    Stats,
    /// Train the classifier: learn messages as spam or ham, or forget them.
    Learn(learn_cmd::LearnArgs),
    /// Measure the classifier: k-fold cross-validation or a fixed split.
    Eval(learn_cmd::EvalArgs),
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// DKIM keys: generate one and print the DNS records to publish.
    #[command(subcommand)]
    Dkim(dkim_cmd::DkimCommand),
    /// Check the store file, and repair it.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// DMARC aggregate reports: print or send one now.
    #[command(subcommand)]
    Dmarc(dmarc_cmd::DmarcCommand),
    /// Mail-log report: pflogsumm's numbers and sections from Postfix logs.
    Report(report_cmd::ReportArgs),
    /// Print the argon2id hash of a password for [web] password /
    /// enable_password (read from the terminal, or stdin when piped).
    Pw,
    /// The ban engine: test a filter on a log, jail status, ban and unban.
    #[command(subcommand)]
    Ban(ban_cmd::BanCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    settings::init_logging(
        if matches!(cli.command, Command::Serve) {
            "info"
        } else {
            "warn"
        },
        cli.log_format,
    );
    let globals = settings::Globals {
        config: cli.config,
        data_dir: cli.data_dir,
    };
    let result = match cli.command {
        Command::Scan(args) => scan_cmd::run(&globals, args),
        Command::Config(cmd) => config_cmd::run(&globals, cmd),
        Command::Serve => serve::run(&globals),
        Command::History(args) => history_cmd::history(&globals, args),
        Command::Stats => history_cmd::stats(&globals),
        Command::Learn(args) => learn_cmd::learn(&globals, args),
        Command::Eval(args) => learn_cmd::eval(&globals, args),
        Command::Store(cmd) => store_cmd::run(&globals, cmd),
        Command::Dkim(cmd) => dkim_cmd::run(cmd),
        Command::Dmarc(cmd) => dmarc_cmd::run(&globals, cmd),
        Command::Report(args) => report_cmd::run(args),
        Command::Pw => pw_cmd::run(),
        Command::Ban(cmd) => ban_cmd::run(&globals, cmd),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("mxguard: {message}");
            ExitCode::from(2)
        }
    }
}
