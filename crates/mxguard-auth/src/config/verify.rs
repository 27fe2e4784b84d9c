//! Email authentication, verification side: `[spf]`, `[dkim]`, `[dmarc]`
//! (with `[dmarc.actions]`), `[arc_verify]`, and `[auth]` for what they
//! share (Authentication-Results trust). Everything is on by default: a
//! user expects an MTA's filter to check SPF, DKIM and DMARC. Each check
//! is silent when no resolver is available (`mxguard scan` without
//! `--dns`, `config check`).
//!
//! Registered as sections by [`super::register`]; the scan's checks read
//! them with `config.section::<T>()`.

use mxguard_core::Action;
use mxguard_core::config::Millis;
use serde::{Deserialize, Serialize};

/// The most a single authentication check may wait on one message.
const MAX_AUTH_TIMEOUT_MS: u64 = 60_000;

/// `[auth]`: what the authentication checks share.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Authentication-Results headers already in a message are removed
    /// unless their authserv-id is one of these (your own border MTAs,
    /// RFC 8601 5): a sender cannot forge a pass. Our own authserv-id is
    /// never trusted from outside.
    pub trusted_authserv_ids: Vec<String>,
    /// Our host name for SPF's `%{r}` macro; empty means the milter's
    /// MTA name, else "localhost".
    pub host_name: String,
}

/// `[spf]`: SPF (RFC 7208) of MAIL FROM, or of HELO for bounces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpfConfig {
    pub enabled: bool,
    /// How long the check may wait on DNS for one message; past it the
    /// message gets R_SPF_DNSFAIL.
    pub timeout: Millis,
}

impl Default for SpfConfig {
    fn default() -> Self {
        SpfConfig {
            enabled: true,
            timeout: Millis(10_000),
        }
    }
}

/// `[dkim]`: DKIM signatures (RFC 6376, RFC 8463), every one up to ten.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkimConfig {
    pub enabled: bool,
    /// Past it the message gets R_DKIM_TEMPFAIL.
    pub timeout: Millis,
}

impl Default for DkimConfig {
    fn default() -> Self {
        DkimConfig {
            enabled: true,
            timeout: Millis(10_000),
        }
    }
}

/// `[arc_verify]`: ARC chain validation (RFC 8617). (ARC *sealing* is
/// configured with signing.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArcVerifyConfig {
    pub enabled: bool,
    /// Past it the message gets ARC_DNSFAIL.
    pub timeout: Millis,
}

impl Default for ArcVerifyConfig {
    fn default() -> Self {
        ArcVerifyConfig {
            enabled: true,
            timeout: Millis(10_000),
        }
    }
}

/// `[dmarc]`: DMARC (RFC 7489 and RFC 9989) over SPF's and DKIM's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmarcConfig {
    pub enabled: bool,
    /// Past it the message gets DMARC_DNSFAIL.
    pub timeout: Millis,
    /// What a failing message gets, by the policy its domain publishes.
    pub actions: DmarcActions,
    /// ARC sealers (the `d=` of the newest ARC-Seal) whose ARC pass
    /// overrides a DMARC failure: the mailing lists and forwarders you
    /// trust to have checked the original (e.g. "google.com").
    pub trusted_arc_sealers: Vec<String>,
}

impl Default for DmarcConfig {
    fn default() -> Self {
        DmarcConfig {
            enabled: true,
            timeout: Millis(10_000),
            actions: DmarcActions::default(),
            trusted_arc_sealers: Vec::new(),
        }
    }
}

/// `[dmarc.actions]`, rspamd's way: an action name per published policy
/// (`reject`, `soft_reject`, `quarantine`, `add_header`, `no_action`...);
/// empty means the symbol's score alone decides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmarcActions {
    /// For `p=quarantine` failures.
    pub quarantine: String,
    /// For `p=reject` failures.
    pub reject: String,
}

impl Default for DmarcActions {
    /// The domain owner's word is followed: its `p=reject` mail is
    /// rejected at SMTP, its `p=quarantine` mail marked as spam.
    fn default() -> Self {
        DmarcActions {
            quarantine: "add_header".to_string(),
            reject: "reject".to_string(),
        }
    }
}

impl DmarcActions {
    /// The action for a published policy, when one is configured.
    pub fn for_policy(&self, policy: &str) -> Option<Action> {
        let name = match policy {
            "reject" => &self.reject,
            "quarantine" => &self.quarantine,
            _ => return None,
        };
        if name.trim().is_empty() {
            None
        } else {
            Action::parse(name)
        }
    }
}

fn check_timeout(section: &str, t: Millis, errors: &mut Vec<(String, String)>) {
    if t.0 == 0 || t.0 > MAX_AUTH_TIMEOUT_MS {
        errors.push((
            format!("{section}.timeout"),
            format!(
                "{} ms is outside 1 ms..=60 s: it is how long the check waits on DNS for one \
                 message (default \"10s\"); a bare number means seconds",
                t.0
            ),
        ));
    }
}

fn check_names(key: &str, names: &[String], errors: &mut Vec<(String, String)>) {
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() || n.contains(|c: char| c.is_whitespace() || c == ';') {
            errors.push((
                format!("{key}[{i}]"),
                format!("`{n}` is not a name: write a host or domain name like \"mx.example.com\""),
            ));
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_names(
            "auth.trusted_authserv_ids",
            &self.trusted_authserv_ids,
            &mut errors,
        );
        errors
    }
}

impl SpfConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_timeout("spf", self.timeout, &mut errors);
        errors
    }
}

impl DkimConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_timeout("dkim", self.timeout, &mut errors);
        errors
    }
}

impl ArcVerifyConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_timeout("arc_verify", self.timeout, &mut errors);
        errors
    }
}

impl DmarcConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_timeout("dmarc", self.timeout, &mut errors);
        for (key, v) in [
            ("quarantine", &self.actions.quarantine),
            ("reject", &self.actions.reject),
        ] {
            if !v.trim().is_empty() && Action::parse(v).is_none() {
                errors.push((
                    format!("dmarc.actions.{key}"),
                    format!(
                        "unknown action `{v}`: write reject, soft_reject, quarantine, \
                         add_header, rewrite_subject, no_action, or \"\" for none"
                    ),
                ));
            }
        }
        check_names(
            "dmarc.trusted_arc_sealers",
            &self.trusted_arc_sealers,
            &mut errors,
        );
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_on_and_valid() {
        assert!(SpfConfig::default().enabled && SpfConfig::default().validate().is_empty());
        assert!(DkimConfig::default().enabled && DkimConfig::default().validate().is_empty());
        assert!(ArcVerifyConfig::default().validate().is_empty());
        let d = DmarcConfig::default();
        assert!(d.enabled && d.validate().is_empty());
        assert_eq!(d.actions.for_policy("reject"), Some(Action::Reject));
        assert_eq!(d.actions.for_policy("quarantine"), Some(Action::AddHeader));
        assert_eq!(d.actions.for_policy("none"), None);
        assert!(AuthConfig::default().validate().is_empty());
    }

    #[test]
    fn bad_values_name_their_key() {
        let d = DmarcConfig {
            timeout: Millis(0),
            actions: DmarcActions {
                quarantine: "bin it".into(),
                reject: String::new(),
            },
            trusted_arc_sealers: vec!["a b".into()],
            ..Default::default()
        };
        let keys: Vec<String> = d.validate().into_iter().map(|e| e.0).collect();
        assert_eq!(
            keys,
            [
                "dmarc.timeout",
                "dmarc.actions.quarantine",
                "dmarc.trusted_arc_sealers[0]"
            ]
        );
        assert_eq!(d.actions.for_policy("reject"), None, "empty: score only");
    }
}
