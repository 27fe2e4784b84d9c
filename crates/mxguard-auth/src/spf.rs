//! SPF (RFC 7208): `check_host` is mail-auth's, the one SPF implementation
//! of mxguard (the scan's SPF check and the policy server's sender pools
//! both call it). It was chosen over mxguard's earlier compact evaluator
//! because it covers the whole RFC (macros, `ptr`, `exp=`, the lookup and
//! void-lookup limits) and passes the openspf suite (see the `conformance`
//! tests); the compact one refused macros and `ptr`.

use crate::Verifier;
use crate::results::{AuthResult, normalise_domain};
use mail_auth::Parameters;
use mail_auth::spf::verify::SpfParameters;
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

fn convert(r: mail_auth::SpfResult) -> AuthResult {
    use mail_auth::SpfResult as S;
    match r {
        S::Pass => AuthResult::Pass,
        S::Fail => AuthResult::Fail,
        S::SoftFail => AuthResult::SoftFail,
        S::Neutral => AuthResult::Neutral,
        S::TempError => AuthResult::TempError,
        S::PermError => AuthResult::PermError,
        S::None => AuthResult::None,
    }
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
    let a = verifier.authenticator();
    if mail_from.is_empty() || !mail_from.contains('@') {
        // A sender without a domain is checked as postmaster@HELO (4.3).
        let out = a
            .verify_spf(SpfParameters::verify_ehlo(ip, helo, host_domain))
            .await;
        SpfVerdict {
            result: convert(out.result()),
            domain: normalise_domain(helo),
            identity: Identity::Helo,
            checked: helo.to_string(),
        }
    } else {
        let out = a
            .verify_spf(SpfParameters::verify_mail_from(
                ip,
                helo,
                host_domain,
                mail_from,
            ))
            .await;
        SpfVerdict {
            result: convert(out.result()),
            domain: normalise_domain(out.domain()),
            identity: Identity::MailFrom,
            checked: mail_from.to_string(),
        }
    }
}

/// `check_host(ip, domain, sender)` alone (RFC 7208 4), for callers that
/// only need a yes/no about a domain (the policy server's sender pools).
pub async fn check_host(dns: &Dns, ip: IpAddr, domain: &str, sender: &str) -> AuthResult {
    let verifier = Verifier::new(dns);
    let sender = if sender.contains('@') {
        sender.to_string()
    } else {
        format!("postmaster@{domain}")
    };
    // `check_host` itself: `verify_spf` with a full sender would check
    // the HELO identity first.
    let out = verifier
        .authenticator()
        .check_host(Parameters::new(SpfParameters::new(
            ip,
            domain,
            domain,
            "localhost",
            &sender,
        )))
        .await;
    convert(out.result())
}
