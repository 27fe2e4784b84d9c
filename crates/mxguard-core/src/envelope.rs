//! The SMTP envelope: what the MTA knows about a message beyond its bytes.

use serde::Serialize;
use std::net::IpAddr;

/// Envelope facts, filled by the milter from macros, by the HTTP API from
/// rspamd-style request headers, or by `mxguard scan` from its flags.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Envelope {
    /// Connecting client address.
    pub ip: Option<IpAddr>,
    /// Client host name as the MTA resolved it (`{client_name}`).
    pub hostname: Option<String>,
    /// HELO/EHLO argument.
    pub helo: Option<String>,
    /// MAIL FROM address without angle brackets; `Some("")` is the null sender.
    pub mail_from: Option<String>,
    /// RCPT TO addresses without angle brackets.
    pub rcpts: Vec<String>,
    /// SASL login name: the sender is authenticated when set.
    pub user: Option<String>,
    /// MTA queue id, for logs and history.
    pub queue_id: Option<String>,
    /// The MTA service that received the message (`{daemon_name}`, e.g.
    /// Postfix's `smtpd` or a submission service name).
    pub daemon_name: Option<String>,
}

impl Envelope {
    pub fn is_authenticated(&self) -> bool {
        self.user.as_deref().is_some_and(|u| !u.is_empty())
    }
}

/// The SMTP stages before DATA at which a decision can already be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmtpStage {
    Connect,
    Helo,
    MailFrom,
    Rcpt,
}

/// Strips angle brackets and surrounding space from an SMTP path argument.
pub fn strip_path(addr: &str) -> &str {
    let t = addr.trim();
    let t = t.strip_prefix('<').unwrap_or(t);
    t.strip_suffix('>').unwrap_or(t).trim()
}

/// The domain part of an address, lower-cased, or `None` when there is none.
pub fn domain_of(addr: &str) -> Option<String> {
    let addr = strip_path(addr);
    let (_, dom) = addr.rsplit_once('@')?;
    let dom = dom.trim().trim_end_matches('.');
    if dom.is_empty() {
        None
    } else {
        Some(dom.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_domains() {
        assert_eq!(strip_path(" <a@b.c> "), "a@b.c");
        assert_eq!(strip_path("<>"), "");
        assert_eq!(
            domain_of("<Joe@Example.COM.>").as_deref(),
            Some("example.com")
        );
        assert_eq!(domain_of("nodomain"), None);
        assert_eq!(domain_of("x@"), None);
    }
}
