//! SPF (RFC 7208) of a message's sender: the one SPF implementation of
//! mxguard ([`crate::spf_eval`]), called by the scan's SPF check and the
//! policy server's sender pools. Ours rather than mail-auth's: mail-auth
//! 0.13.3 passes 149 of the openspf suite's 203 tests (it accepts records
//! the RFC calls broken and asks DNS for names it should refuse), and our
//! earlier compact evaluator refused macros and `ptr`; this one passes the
//! suite (see `tests/spf_suite.rs`) and does every lookup through `Dns`.

use crate::Verifier;
use crate::results::{AuthResult, normalise_domain};
use crate::spf_eval::{Context, check_host as check};
use mxguard_dns::Dns;
use std::net::IpAddr;

/// Which identity was checked (RFC 7208 2.3, 2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The MAIL FROM domain.
    MailFrom,
    /// The HELO name, checked when MAIL FROM is empty (bounces).
    Helo,
}

/// What SPF said about a message's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfVerdict {
    pub result: AuthResult,
    /// The domain whose record was evaluated.
    pub domain: String,
    pub identity: Identity,
    /// The identity as written (`user@domain` or the HELO name), for
    /// Authentication-Results' `smtp.mailfrom` / `smtp.helo`.
    pub checked: String,
}

/// SPF for a message: MAIL FROM's domain, or the HELO name when MAIL FROM
/// is empty. `host_domain` is our own name (the `%{r}` macro).
pub async fn verify(
    verifier: &Verifier,
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
    host_domain: &str,
) -> SpfVerdict {
    let helo = helo.trim().trim_end_matches('.');
    let mail_from = mail_from.trim();
    let (identity, domain, sender) = match mail_from.rsplit_once('@') {
        Some((_, d)) if !mail_from.is_empty() => (Identity::MailFrom, d, mail_from.to_string()),
        // A sender without a domain is checked as postmaster@HELO (4.3).
        _ => (Identity::Helo, helo, format!("postmaster@{helo}")),
    };
    let ctx = Context {
        ip,
        sender: &sender,
        helo,
        receiver: host_domain,
    };
    let out = check(verifier.dns(), &ctx, domain).await;
    SpfVerdict {
        result: out.result,
        domain: normalise_domain(domain),
        identity,
        checked: if identity == Identity::MailFrom {
            mail_from.to_string()
        } else {
            helo.to_string()
        },
    }
}

/// `check_host(ip, domain, sender)` alone (RFC 7208 4), for callers that
/// only need a yes/no about a domain (the policy server's sender pools).
pub async fn check_host(dns: &Dns, ip: IpAddr, domain: &str, sender: &str) -> AuthResult {
    let sender = if sender.contains('@') {
        sender.to_string()
    } else {
        format!("postmaster@{domain}")
    };
    let ctx = Context {
        ip,
        sender: &sender,
        helo: domain,
        receiver: "localhost",
    };
    check(dns, &ctx, domain).await.result
}
