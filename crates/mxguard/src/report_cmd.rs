//! `mxguard report [FILES…]`: the mail-log report (pflogsumm's numbers
//! and sections) as text, JSON or HTML, printed or mailed. The work is in
//! `mxguard_report`; this file reads the options and sends the mail.

use clap::{ArgAction, Args, ValueEnum};
use mxguard_report::collect::{Collector, Options};
use mxguard_report::date::Stamp;
use mxguard_report::text::Layout;
use mxguard_report::{Report, html, input, json, mime, period, text};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
    Html,
}

#[derive(Args, Debug, Default, Clone)]
#[command(disable_help_flag = true)]
pub struct ReportArgs {
    /// Log files (plain, gzip-compressed or rotated; `journalctl -o json`
    /// output too); `-` or none: standard input.
    pub files: Vec<PathBuf>,
    /// Only today's or yesterday's lines (local time), as pflogsumm -d.
    #[arg(short = 'd', value_name = "today|yesterday")]
    pub day: Option<String>,
    /// Only lines at or after this local time (YYYY-MM-DD[ HH:MM[:SS]]).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines before this local time (YYYY-MM-DD[ HH:MM[:SS]]).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Rows of the host/domain summaries (0: leave them out).
    #[arg(short = 'h', value_name = "N")]
    pub top_hosts: Option<usize>,
    /// Rows of the sender and recipient lists (0: leave them out).
    #[arg(short = 'u', value_name = "N")]
    pub top_users: Option<usize>,
    /// Problem details before the traffic sections.
    #[arg(long)]
    pub problems_first: bool,
    /// Add the sender to reject details.
    #[arg(long)]
    pub rej_add_from: bool,
    /// Whole problem texts instead of short reasons.
    #[arg(long)]
    pub verbose_msg_detail: bool,
    /// smtpd connection statistics.
    #[arg(long)]
    pub smtpd_stats: bool,
    /// Leave out sections with nothing in them.
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Only Postfix lines tagged `postfix` or this name (default: every
    /// instance, `postfix` and `postfix-*`).
    #[arg(long, value_name = "NAME")]
    pub syslog_name: Option<String>,
    /// Send the report to this address (text and HTML parts) instead of
    /// printing it. Repeat for more recipients.
    #[arg(long, value_name = "ADDR")]
    pub mail_to: Vec<String>,
    #[arg(long, value_name = "TEXT", default_value = "Postfix log summary")]
    pub subject: String,
    /// Envelope and header sender of the mail.
    #[arg(long, value_name = "ADDR", default_value = "postmaster@localhost")]
    pub mail_from: String,
    /// The relay that takes the mail.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:25")]
    pub smtp: String,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// Reads the logs of the period into a report.
pub fn collect(args: &ReportArgs, now: Stamp) -> Result<Report, String> {
    let mut opts = Options {
        syslog_name: args.syslog_name.clone(),
        verbose_msg_detail: args.verbose_msg_detail,
        rej_add_from: args.rej_add_from,
        ..Default::default()
    };
    if let Some(d) = &args.day {
        let (since, until) = period::day(d, now)?;
        opts.since = Some(since);
        opts.until = Some(until);
    }
    if let Some(s) = &args.since {
        opts.since = Some(period::parse_time(s).map_err(|e| format!("--since {e}"))?);
    }
    if let Some(s) = &args.until {
        opts.until = Some(period::parse_time(s).map_err(|e| format!("--until {e}"))?);
    }
    let mut collector = Collector::new(opts);
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    input::read_paths(&files, &mut collector)?;
    Ok(collector.finish())
}

pub fn layout(args: &ReportArgs) -> Layout {
    Layout {
        top_hosts: args.top_hosts,
        top_users: args.top_users,
        problems_first: args.problems_first,
        smtpd_stats: args.smtpd_stats,
        quiet: args.quiet,
        title: args
            .day
            .as_ref()
            .map(|d| format!("Postfix log summaries for {d}")),
    }
}

/// The heading of the HTML page and mail.
fn heading(args: &ReportArgs, r: &Report) -> String {
    let span = match (r.first, r.last) {
        (Some(a), Some(b)) => format!(
            " {:04}-{:02}-{:02} {:02}:{:02} – {:04}-{:02}-{:02} {:02}:{:02}",
            a.year, a.month, a.day, a.hour, a.min, b.year, b.month, b.day, b.hour, b.min
        ),
        _ => String::new(),
    };
    format!("{}{span}", args.subject)
}

/// The report as a MIME mail (text and HTML parts).
pub fn mail(args: &ReportArgs, report: &Report) -> Vec<u8> {
    let layout = layout(args);
    let text = text::render(report, &layout);
    let html = html::render(report, &layout, &heading(args, report));
    let unix = mxguard_report::date::unix_now();
    mime::message(
        &args.mail_from,
        &args.mail_to,
        &args.subject,
        &text,
        &html,
        unix,
    )
}

/// Hands the mail to the relay (`--smtp`).
pub async fn send_async(args: &ReportArgs, message: &[u8]) -> Result<(), String> {
    use mxguard_auth::report::smtp;
    let session = smtp::open(&args.smtp, "localhost", &args.mail_from, &args.mail_to)
        .await
        .map_err(|e| format!("mailing the report through {}: {e}", args.smtp))?;
    for (addr, reply) in &session.refused {
        tracing::warn!("report: {} refused {addr}: {reply}", args.smtp);
    }
    session
        .finish(message)
        .await
        .map_err(|e| format!("mailing the report through {}: {e}", args.smtp))?;
    Ok(())
}

fn send(args: &ReportArgs, report: &Report) -> Result<(), String> {
    let message = mail(args, report);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(send_async(args, &message))
}

pub fn run(args: ReportArgs) -> Result<ExitCode, String> {
    let report = collect(&args, period::now())?;
    if !args.mail_to.is_empty() {
        send(&args, &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let layout = layout(&args);
    let out = match args.format {
        Format::Text => text::render(&report, &layout),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&json::render(
                &report,
                args.top_hosts,
                args.top_users,
            ))
            .map_err(|e| e.to_string())?;
            s.push('\n');
            s
        }
        Format::Html => html::render(&report, &layout, &heading(&args, &report)),
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out.as_bytes()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(format!("writing the report: {e}")),
    }
}
