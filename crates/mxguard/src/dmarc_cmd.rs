//! `mxguard dmarc report [--domain D] [--period YYYY-MM-DD] [--dry-run]`:
//! print a DMARC aggregate report now, or send it (through the same
//! at-most-once state as `mxguard serve`'s daily task). The work is in
//! `mxguard_auth::report`.

use crate::settings::Globals;
use clap::{Args, Subcommand};
use mxguard_auth::config::DmarcReportConfig;
use mxguard_auth::report::period::Period;
use mxguard_auth::report::send::{Outcome, Reporter, unix_now};
use mxguard_auth::report::store;
use mxguard_store::Store;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum DmarcCommand {
    /// Build the aggregate reports of one day and send them (or print them
    /// with --dry-run). mxguard serve must be stopped: it holds the store.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct ReportArgs {
    /// Only this reporting domain (default: every domain recorded that day).
    #[arg(long)]
    domain: Option<String>,
    /// The day, UTC (default: yesterday).
    #[arg(long, value_name = "YYYY-MM-DD")]
    period: Option<String>,
    /// Print the report (Subject, file name, destinations, XML) and send
    /// nothing; the send state is not touched.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(globals: &Globals, cmd: DmarcCommand) -> Result<ExitCode, String> {
    let DmarcCommand::Report(args) = cmd;
    let loaded = globals.load_config()?;
    let config = loaded.config;
    let now = unix_now();
    let period = match &args.period {
        Some(p) => Period::parse(p)
            .ok_or_else(|| format!("--period {p}: not a date; give the day as YYYY-MM-DD (UTC)"))?,
        None => Period::of(now).previous(),
    };
    if !args.dry_run {
        if !config.section::<DmarcReportConfig>().sending() {
            return Err("sending reports is off: set enabled = true and send_reports = true in [dmarc_reporting] (or use --dry-run to print them)".into());
        }
        if period.end() >= now {
            return Err(format!(
                "the day {} is not over: a report now would be partial; use --dry-run to look at it",
                period.name()
            ));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let store: Arc<dyn Store> = crate::store_cmd::open(&config.store)?;
        let dns = mxguard_dns::Dns::new(&config.dns).map_err(|e| format!("[dns]: {e}"))?;
        let reporter = Reporter::new(
            store.clone(),
            Arc::new(dns),
            config.section::<DmarcReportConfig>().clone(),
            None,
        );
        let domains = match &args.domain {
            Some(d) => vec![
                store::key_domain(d).ok_or_else(|| format!("--domain {d}: not a domain name"))?,
            ],
            None => store::domains(
                &*store,
                period,
                config.section::<DmarcReportConfig>().max_domains as usize,
            )
            .await
            .map_err(|e| e.to_string())?,
        };
        if domains.is_empty() {
            eprintln!("no DMARC evaluations recorded for {}", period.name());
            return Ok(ExitCode::SUCCESS);
        }
        let mut failed = false;
        for domain in domains {
            if args.dry_run {
                match reporter.build(period, &domain, now).await? {
                    None => eprintln!(
                        "{domain}: no DMARC evaluations recorded for {}",
                        period.name()
                    ),
                    Some(b) => {
                        println!("Subject: {}", b.subject);
                        println!("File: {}", b.file_name);
                        println!("To: {}", b.recipients.join(", "));
                        for d in &b.dropped {
                            println!("Dropped: {d}");
                        }
                        if let Some(e) = &b.lookup_failed {
                            println!("Lookup failed (a send would be retried): {e}");
                        }
                        println!(
                            "Rows: {}  Messages: {}  Mail size: {} bytes",
                            b.rows,
                            b.messages,
                            b.message.len()
                        );
                        println!();
                        print!("{}", b.xml);
                    }
                }
                continue;
            }
            let outcome = reporter.send(period, &domain, now).await;
            let line = match &outcome {
                Outcome::Sent { to, refused } => {
                    let mut s = format!("sent to {}", to.join(", "));
                    for (a, r) in refused {
                        s.push_str(&format!("; refused by the relay: {a} ({r})"));
                    }
                    s
                }
                Outcome::Done(state) => {
                    format!("not sent: already {state:?} (a report is sent at most once)")
                        .to_lowercase()
                }
                Outcome::NotYet => {
                    "not sent: a retry is scheduled later; mxguard serve will try it".into()
                }
                Outcome::Nothing => "nothing recorded".into(),
                Outcome::NoDestination(why) => {
                    format!("not sent: no destination left ({})", why.join("; "))
                }
                Outcome::Retry { error, .. } => {
                    failed = true;
                    format!("failed, will be retried: {error}")
                }
                Outcome::GaveUp(e) => {
                    failed = true;
                    format!("failed, giving up: {e}")
                }
                Outcome::Unknown(e) => {
                    failed = true;
                    format!("outcome unknown, not retried: {e}")
                }
            };
            println!("{domain} {}: {line}", period.name());
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}
