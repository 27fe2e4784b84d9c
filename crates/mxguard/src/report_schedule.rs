//! `[report]`: `serve` mails the mail-log report on a schedule (daily at
//! `at`, local time), so no cron job or mutt is needed. The period last
//! sent is kept in a state file, so a restart never sends it twice and a
//! server down at `at` sends it when it comes back the same day.

use crate::report_cmd::{self, ReportArgs};
pub use mxguard_report::config::ReportSchedule;
use mxguard_report::config::parse_at;
use mxguard_report::date::Stamp;
use mxguard_report::period;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// The command's options for the schedule's report.
fn args_of(c: &ReportSchedule) -> ReportArgs {
    ReportArgs {
        files: c.files.clone(),
        day: Some(c.period.clone()),
        mail_to: c.mail_to.clone(),
        mail_from: c.mail_from.clone(),
        subject: c.subject.clone(),
        smtp: c.smtp.clone(),
        top_hosts: c.top_hosts,
        top_users: c.top_users,
        problems_first: c.problems_first,
        rej_add_from: c.rej_add_from,
        verbose_msg_detail: c.verbose_msg_detail,
        smtpd_stats: c.smtpd_stats,
        ..Default::default()
    }
}

/// The period due at `now`, named by the date it covers, or None before
/// `at` today.
pub fn due(at: (u8, u8), period_name: &str, now: Stamp) -> Option<String> {
    if (now.hour, now.min) < at {
        return None;
    }
    let (start, _) = period::day(period_name, now).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}",
        start.year, start.month, start.day
    ))
}

fn read_state(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Written whole (temporary file, then rename) so a crash leaves the old
/// or the new state, never half.
fn write_state(path: &Path, period: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{period}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Runs until `stop` turns true: each half minute, sends the due period
/// unless the state file says it was sent.
pub async fn run(config: ReportSchedule, data_dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let Some(at) = parse_at(&config.at) else {
        return;
    };
    let state = config
        .state_file
        .clone()
        .unwrap_or_else(|| data_dir.join("report-last-sent"));
    let args = args_of(&config);
    loop {
        let now = period::now();
        if let Some(key) = due(at, &config.period, now)
            && read_state(&state).as_deref() != Some(key.as_str())
        {
            let a = args.clone();
            let built = tokio::task::spawn_blocking(move || {
                report_cmd::collect(&a, now).map(|r| report_cmd::mail(&a, &r))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let sent = match built {
                Ok(message) => report_cmd::send_async(&args, &message).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => {
                    tracing::info!(period = %key, to = ?args.mail_to, "report: mailed");
                    if let Err(e) = write_state(&state, &key) {
                        tracing::error!(
                            "report: sent, but cannot record it in {}: {e}; it may be sent again after a restart",
                            state.display()
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(period = %key, "report: {e}; trying again in 10 minutes");
                    if wait(&mut stop, Duration::from_secs(600)).await {
                        return;
                    }
                    continue;
                }
            }
        }
        if wait(&mut stop, Duration::from_secs(30)).await {
            return;
        }
    }
}

/// Sleeps; true when asked to stop.
async fn wait(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_per_day_after_at() {
        let at = (16, 0);
        let before = Stamp {
            year: 2026,
            month: 12,
            day: 7,
            hour: 15,
            min: 59,
            sec: 0,
        };
        assert_eq!(due(at, "yesterday", before), None);
        let after = Stamp {
            hour: 16,
            min: 0,
            ..before
        };
        assert_eq!(due(at, "yesterday", after).as_deref(), Some("2026-12-06"));
        assert_eq!(due(at, "today", after).as_deref(), Some("2026-12-07"));
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s");
        write_state(&state, "2026-12-06").unwrap();
        assert_eq!(read_state(&state).as_deref(), Some("2026-12-06"));
        assert!(
            parse_at("16:00").is_some() && parse_at("25:00").is_none() && parse_at("4pm").is_none()
        );
    }
}
