//! `[report]`: `serve` mails the mail-log report on a schedule (daily at
//! `at`, local time), so no cron job or mutt is needed. The period last
//! sent is kept in a state file, so a restart never sends it twice and a
//! server down at `at` sends it when it comes back the same day.

use crate::report_cmd::{self, ReportArgs};
use mxguard_core::config::{Problems, Section};
use mxguard_report::date::Stamp;
use mxguard_report::period;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportSchedule {
    pub enabled: bool,
    /// Local time of day, HH:MM.
    pub at: String,
    /// "yesterday" (the day before `at`'s day) or "today" (up to `at`).
    pub period: String,
    /// Log files read (rotated and .gz ones too).
    pub files: Vec<PathBuf>,
    pub mail_to: Vec<String>,
    pub mail_from: String,
    pub subject: String,
    /// The relay, host:port.
    pub smtp: String,
    pub top_hosts: Option<usize>,
    pub top_users: Option<usize>,
    pub problems_first: bool,
    pub rej_add_from: bool,
    pub verbose_msg_detail: bool,
    pub smtpd_stats: bool,
    /// Where the last period sent is kept (default: report-last-sent in
    /// the store's data_dir).
    pub state_file: Option<PathBuf>,
}

impl Default for ReportSchedule {
    fn default() -> Self {
        ReportSchedule {
            enabled: false,
            at: "16:00".into(),
            period: "yesterday".into(),
            files: vec![PathBuf::from("/var/log/mail.log")],
            mail_to: Vec::new(),
            mail_from: "postmaster@localhost".into(),
            subject: "Postfix log summary".into(),
            smtp: "127.0.0.1:25".into(),
            top_hosts: None,
            top_users: None,
            problems_first: false,
            rej_add_from: false,
            verbose_msg_detail: false,
            smtpd_stats: false,
            state_file: None,
        }
    }
}

/// "HH:MM" → (hour, minute).
fn parse_at(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some((h, m))
}

impl Section for ReportSchedule {
    const KEY: &'static str = "report";

    fn validate(&self, problems: &mut Problems) {
        if parse_at(&self.at).is_none() {
            problems.at(
                "at",
                format!(
                    "`{}` is not a time of day; write HH:MM, e.g. \"16:00\"",
                    self.at
                ),
            );
        }
        if self.period != "yesterday" && self.period != "today" {
            problems.at(
                "period",
                format!("`{}`: write \"yesterday\" or \"today\"", self.period),
            );
        }
        if self.enabled && self.mail_to.is_empty() {
            problems.at(
                "mail_to",
                "the report is enabled but mailed to nobody: list addresses in mail_to".to_string(),
            );
        }
        if self.enabled && self.files.is_empty() {
            problems.at(
                "files",
                "the report is enabled but reads no log: list files".to_string(),
            );
        }
    }
}

impl ReportSchedule {
    fn args(&self) -> ReportArgs {
        ReportArgs {
            files: self.files.clone(),
            day: Some(self.period.clone()),
            mail_to: self.mail_to.clone(),
            mail_from: self.mail_from.clone(),
            subject: self.subject.clone(),
            smtp: self.smtp.clone(),
            top_hosts: self.top_hosts,
            top_users: self.top_users,
            problems_first: self.problems_first,
            rej_add_from: self.rej_add_from,
            verbose_msg_detail: self.verbose_msg_detail,
            smtpd_stats: self.smtpd_stats,
            ..Default::default()
        }
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
    let args = config.args();
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
