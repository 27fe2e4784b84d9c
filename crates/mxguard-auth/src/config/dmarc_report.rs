//! `[dmarc_reporting]`: DMARC aggregate reports (RFC 7489 section 7.2,
//! RFC 9990), read by `mxguard_auth::report`.
//!
//! The keys map one to one onto rspamd's `dmarc.conf`: `reporting {
//! enabled; org_name; domain; email }` and `send_reports`. Off by default:
//! sending mail to third parties must be opted in.

use mxguard_core::config::Seconds;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmarcReportConfig {
    /// Record every inbound DMARC evaluation in the store (rspamd:
    /// `reporting.enabled`).
    pub enabled: bool,
    /// Send the aggregate reports built from them (rspamd: `send_reports`).
    /// With `enabled` alone the data is kept and `mxguard dmarc report
    /// --dry-run` prints it, but nothing leaves.
    pub send_reports: bool,
    /// The reporting organisation named in every report (`org_name`).
    pub org_name: String,
    /// The submitter: the domain of this mail system, in the Subject, the
    /// file name and the Message-ID of every report (rspamd: `domain`).
    pub domain: String,
    /// The report mail's sender and the report's contact address
    /// (rspamd: `email`).
    pub email: String,
    /// More contact details for report recipients (a URL, a phone number).
    pub extra_contact_info: Option<String>,
    /// Hour of the day (UTC, 0 to 23) after which the reports of the day
    /// before are sent. A report left unsent (mxguard was down) goes at the
    /// next start.
    pub send_hour: u8,
    /// SMTP relay the reports are handed to, `host:port` (local Postfix by
    /// default, which signs and queues them like other outbound mail).
    pub relay: String,
    /// Name given in EHLO; empty: `domain`.
    pub helo: String,
    /// Most distinct rows (source IP, disposition, results) kept per
    /// reporting domain and day; evaluations beyond it are counted, not
    /// kept, and the report says so in an `<error>`.
    pub max_rows_per_domain: u32,
    /// Most reporting domains kept per day.
    pub max_domains: u32,
    /// Tries to send one report before giving up (each failure is logged
    /// and counted).
    pub max_tries: u32,
    /// Wait after the first failed try; doubled after each further one.
    pub retry_interval: Seconds,
    /// How long recorded evaluations and send states stay in the store
    /// (at least 2 days: yesterday's report must still be there to send).
    pub keep: Seconds,
    /// DKIM-sign the report mail with the signer of this mxguard when it has
    /// one for `domain` (the relay may sign it instead).
    pub sign: bool,
}

impl Default for DmarcReportConfig {
    fn default() -> Self {
        DmarcReportConfig {
            enabled: false,
            send_reports: false,
            org_name: String::new(),
            domain: String::new(),
            email: String::new(),
            extra_contact_info: None,
            send_hour: 0,
            relay: "127.0.0.1:25".into(),
            helo: String::new(),
            max_rows_per_domain: 10_000,
            max_domains: 10_000,
            max_tries: 8,
            retry_interval: Seconds(300),
            keep: Seconds(7 * 86_400),
            sign: true,
        }
    }
}

impl DmarcReportConfig {
    /// Errors as (key path, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut err = |key: &str, message: String| {
            errors.push((format!("dmarc_reporting.{key}"), message));
        };
        if self.send_hour > 23 {
            err(
                "send_hour",
                format!(
                    "{} is not an hour of the day; give 0 to 23 (UTC)",
                    self.send_hour
                ),
            );
        }
        if self.max_rows_per_domain == 0 {
            err(
                "max_rows_per_domain",
                "0 keeps nothing to report; give a bound like 10000".into(),
            );
        }
        if self.max_domains == 0 {
            err(
                "max_domains",
                "0 keeps nothing to report; give a bound like 10000".into(),
            );
        }
        if self.max_tries == 0 {
            err(
                "max_tries",
                "0 never sends; give a number of tries like 8".into(),
            );
        }
        if self.retry_interval.0 == 0 {
            err("retry_interval", "give a wait like \"5m\"".into());
        }
        if self.keep.0 < 2 * 86_400 {
            err(
                "keep",
                "less than 2 days drops yesterday's data before its report is sent; give \"7d\""
                    .into(),
            );
        }
        if self.relay.trim().is_empty() || !self.relay.contains(':') {
            err(
                "relay",
                format!(
                    "`{}` is not host:port; give the relay like \"127.0.0.1:25\"",
                    self.relay
                ),
            );
        }
        let sending = self.enabled && self.send_reports;
        if !self.domain.is_empty() && !plain_domain(&self.domain) {
            err(
                "domain",
                format!(
                    "`{}` is not a domain name like \"mx.example.com\"",
                    self.domain
                ),
            );
        } else if sending && self.domain.is_empty() {
            err(
                "domain",
                "reports are sent (send_reports = true) but no submitter domain is set; give this mail system's domain, like \"example.com\"".into(),
            );
        }
        if !self.email.is_empty() && !plain_address(&self.email) {
            err(
                "email",
                format!(
                    "`{}` is not an address like \"postmaster@example.com\"",
                    self.email
                ),
            );
        } else if sending && self.email.is_empty() {
            err(
                "email",
                "reports are sent (send_reports = true) but no sender address is set; give one like \"postmaster@example.com\"".into(),
            );
        }
        if sending && self.org_name.trim().is_empty() {
            err(
                "org_name",
                "reports are sent (send_reports = true) but no organisation name is set; give one like \"Example Ltd\"".into(),
            );
        }
        for (key, v) in [("org_name", &self.org_name), ("helo", &self.helo)] {
            if v.chars().any(|c| c.is_control()) {
                err(key, "control characters are not allowed here".into());
            }
        }
        if let Some(v) = &self.extra_contact_info
            && v.chars().any(|c| c.is_control())
        {
            err(
                "extra_contact_info",
                "control characters are not allowed here".into(),
            );
        }
        errors
    }

    /// Whether reports are built and sent (both switches on).
    pub fn sending(&self) -> bool {
        self.enabled && self.send_reports
    }
}

/// A DNS name of letters, digits, `-`, `_` and dots, no empty label.
pub fn plain_domain(s: &str) -> bool {
    super::valid_name(s.strip_suffix('.').unwrap_or(s))
}

/// `local@domain`, ASCII, no spaces, brackets or quotes.
pub fn plain_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && local
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
                && plain_domain(domain)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::register;
    use mxguard_core::config::{Registry, load_str};

    #[test]
    fn default_is_off_and_valid() {
        let c = DmarcReportConfig::default();
        assert!(!c.enabled && !c.send_reports && !c.sending());
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn sending_needs_identity() {
        let c = DmarcReportConfig {
            enabled: true,
            send_reports: true,
            ..Default::default()
        };
        let keys: Vec<_> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&"dmarc_reporting.domain".to_string()));
        assert!(keys.contains(&"dmarc_reporting.email".to_string()));
        assert!(keys.contains(&"dmarc_reporting.org_name".to_string()));
    }

    #[test]
    fn rspamd_shaped_config_loads_and_typos_are_caught() {
        let text = "[dmarc_reporting]\nenabled = true\nsend_reports = true\norg_name = \"EXAMPLE.COM\"\ndomain = \"example.com\"\nemail = \"postmaster@example.com\"\nretry_interval = \"10m\"\n";
        let loaded = load_str(text, "t.toml", &register(Registry::new())).expect("loads");
        let c = loaded.section::<DmarcReportConfig>();
        assert!(c.sending());
        assert_eq!(c.retry_interval, Seconds(600));
        let errors = load_str(
            "[dmarc_reporting]\nsend_report = true\n",
            "t.toml",
            &register(Registry::new()),
        )
        .err()
        .unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e.to_string().contains("send_reports")),
            "{errors:?}"
        );
        let errors = load_str(
            "[dmarc_reporting]\nenabled = true\nsend_reports = true\n",
            "t.toml",
            &register(Registry::new()),
        )
        .err()
        .unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e.to_string().contains("dmarc_reporting.email")),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let c = DmarcReportConfig {
            send_hour: 24,
            email: "not an address".into(),
            domain: "exa mple".into(),
            keep: Seconds(3600),
            ..Default::default()
        };
        let keys: Vec<_> = c.validate().into_iter().map(|(k, _)| k).collect();
        for k in ["send_hour", "email", "domain", "keep"] {
            assert!(keys.contains(&format!("dmarc_reporting.{k}")), "{keys:?}");
        }
        assert!(plain_address("dmarc+rua@example.com"));
        assert!(!plain_address("a@b@c"));
    }
}
