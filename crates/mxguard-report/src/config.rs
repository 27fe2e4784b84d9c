//! `[report]`: the schedule on which `serve` mails the report (the
//! scheduler itself is the binary's `report_schedule`).

use mxguard_core::config::{Problems, Section};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
pub fn parse_at(s: &str) -> Option<(u8, u8)> {
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
