//! The policy server's restriction vocabulary: Postfix's smtpd restriction
//! names (and a few of mxguard's own), parsed from the config's lists.

use crate::config::Seconds;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Which part of a request an access map is looked up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTarget {
    /// Client host name (and parent domains), then its IP address, as Postfix.
    Client,
    Helo,
    Sender,
    Recipient,
}

/// What a DNS list answer must be to count as "listed".
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyFilter {
    /// Any answer in 127.0.0.0/8 (except the 127.255.255.0/24 error codes).
    Any,
    /// `ZONE=127.0.0.2`, or with Postfix's ranges/lists: `127.0.0.[2..11]`,
    /// `127.0.0.[2;4;5]`.
    Octets([OctetMatch; 4]),
}

#[derive(Debug, Clone, PartialEq)]
pub enum OctetMatch {
    Exact(u8),
    Range(u8, u8),
    OneOf(Vec<u8>),
}

impl ReplyFilter {
    pub fn matches(&self, a: Ipv4Addr) -> bool {
        match self {
            ReplyFilter::Any => true,
            ReplyFilter::Octets(o) => o.iter().zip(a.octets()).all(|(m, b)| match m {
                OctetMatch::Exact(x) => *x == b,
                OctetMatch::Range(lo, hi) => (*lo..=*hi).contains(&b),
                OctetMatch::OneOf(v) => v.contains(&b),
            }),
        }
    }

    /// `127.0.0.2`, `127.0.0.[2..11]`, `127.0.0.[2;4;5]` (Postfix's forms).
    pub fn parse(s: &str) -> Result<ReplyFilter, String> {
        let bad = || format!("`{s}` is not a reply filter like 127.0.0.2 or 127.0.0.[2..11]");
        // Split on dots outside brackets: `127.0.0.[2..11]` has four parts.
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0i32, 0usize);
        for (i, c) in s.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                '.' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        if parts.len() != 4 {
            return Err(bad());
        }
        let mut out = Vec::with_capacity(4);
        for p in parts {
            let m = if let Some(inner) = p.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
                if let Some((lo, hi)) = inner.split_once("..") {
                    OctetMatch::Range(
                        lo.parse().map_err(|_| bad())?,
                        hi.parse().map_err(|_| bad())?,
                    )
                } else {
                    OctetMatch::OneOf(
                        inner
                            .split(';')
                            .map(|x| x.trim().parse().map_err(|_| bad()))
                            .collect::<Result<_, _>>()?,
                    )
                }
            } else {
                OctetMatch::Exact(p.parse().map_err(|_| bad())?)
            };
            out.push(m);
        }
        let arr: [OctetMatch; 4] = out.try_into().map_err(|_| bad())?;
        Ok(ReplyFilter::Octets(arr))
    }
}

/// Where a DNS list is queried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsListTarget {
    /// reject_rbl_client: the client IP, reversed.
    ClientIp,
    /// reject_rhsbl_client: the client's host name.
    ClientName,
    /// reject_rhsbl_sender: the sender's domain.
    SenderDomain,
    /// reject_rhsbl_helo: the HELO name.
    Helo,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey {
    ClientIp,
    Sender,
    SaslUsername,
    Recipient,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Restriction {
    Permit,
    Reject(Option<String>),
    Dunno,
    /// `defer [text]`: a temporary error at once (Postfix's DEFER).
    Defer(Option<String>),
    /// `defer_if_permit [text]`: a temporary error unless a later
    /// restriction of Postfix's rejects (Postfix's DEFER_IF_PERMIT).
    DeferIfPermit(Option<String>),
    PermitMynetworks,
    PermitSaslAuthenticated,
    CheckAccess {
        target: AccessTarget,
        map: PathBuf,
    },
    RejectUnknownClientHostname,
    RejectUnknownReverseClientHostname,
    RejectInvalidHeloHostname,
    RejectNonFqdnHeloHostname,
    RejectUnknownHeloHostname,
    RejectNonFqdnSender,
    RejectUnknownSenderDomain,
    DnsList {
        target: DnsListTarget,
        zone: String,
        filter: ReplyFilter,
    },
    /// `sleep N`: delay this answer (a tarpit), then go on.
    Sleep(Seconds),
    Greylist,
    /// `rate_limit KEY COUNT/WINDOW [ACTION…]`.
    RateLimit {
        key: RateKey,
        count: u64,
        window: Seconds,
        action: String,
    },
    /// Refuse clients the ban engine has banned.
    RejectBannedClient,
}

impl Restriction {
    pub fn parse(s: &str) -> Result<Restriction, String> {
        let s = s.trim();
        let (word, rest) = match s.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (s, ""),
        };
        let text = (!rest.is_empty()).then(|| rest.to_string());
        let need = |what: &str| {
            if rest.is_empty() {
                Err(format!("`{word}` needs {what}"))
            } else {
                Ok(rest.to_string())
            }
        };
        let no_arg = |r: Restriction| {
            if rest.is_empty() {
                Ok(r)
            } else {
                Err(format!("`{word}` takes no argument"))
            }
        };
        let access = |target| {
            let map = need("a map file, e.g. `check_client_access /etc/postfix/access`")?;
            // Postfix writes `hash:/path`; the type prefix is accepted and ignored.
            let path = map.split_once(':').map_or(map.as_str(), |(t, p)| {
                if t.chars().all(|c| c.is_ascii_alphanumeric()) && p.starts_with('/') {
                    p
                } else {
                    map.as_str()
                }
            });
            Ok(Restriction::CheckAccess {
                target,
                map: PathBuf::from(path),
            })
        };
        let dnslist = |target| -> Result<Restriction, String> {
            let arg = need("a DNS zone, e.g. `zen.spamhaus.org` or `zone=127.0.0.2`")?;
            let (zone, filter) = match arg.split_once('=') {
                Some((z, f)) => (z, ReplyFilter::parse(f)?),
                None => (arg.as_str(), ReplyFilter::Any),
            };
            let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
            if zone.is_empty() || zone.contains(char::is_whitespace) || !zone.contains('.') {
                return Err(format!("`{zone}` is not a DNS zone"));
            }
            Ok(Restriction::DnsList {
                target,
                zone,
                filter,
            })
        };
        match word.to_ascii_lowercase().as_str() {
            "permit" | "ok" => no_arg(Restriction::Permit),
            "reject" => Ok(Restriction::Reject(text)),
            "dunno" => no_arg(Restriction::Dunno),
            "defer" => Ok(Restriction::Defer(text)),
            "defer_if_permit" => Ok(Restriction::DeferIfPermit(text)),
            "permit_mynetworks" => no_arg(Restriction::PermitMynetworks),
            "permit_sasl_authenticated" => no_arg(Restriction::PermitSaslAuthenticated),
            "check_client_access" => access(AccessTarget::Client),
            "check_helo_access" => access(AccessTarget::Helo),
            "check_sender_access" => access(AccessTarget::Sender),
            "check_recipient_access" => access(AccessTarget::Recipient),
            "reject_unknown_client_hostname" | "reject_unknown_client" => {
                no_arg(Restriction::RejectUnknownClientHostname)
            }
            "reject_unknown_reverse_client_hostname" => {
                no_arg(Restriction::RejectUnknownReverseClientHostname)
            }
            "reject_invalid_helo_hostname" | "reject_invalid_hostname" => {
                no_arg(Restriction::RejectInvalidHeloHostname)
            }
            "reject_non_fqdn_helo_hostname" | "reject_non_fqdn_hostname" => {
                no_arg(Restriction::RejectNonFqdnHeloHostname)
            }
            "reject_unknown_helo_hostname" | "reject_unknown_hostname" => {
                no_arg(Restriction::RejectUnknownHeloHostname)
            }
            "reject_non_fqdn_sender" => no_arg(Restriction::RejectNonFqdnSender),
            "reject_unknown_sender_domain" => no_arg(Restriction::RejectUnknownSenderDomain),
            "reject_rbl_client" => dnslist(DnsListTarget::ClientIp),
            "reject_rhsbl_client" => dnslist(DnsListTarget::ClientName),
            "reject_rhsbl_sender" => dnslist(DnsListTarget::SenderDomain),
            "reject_rhsbl_helo" => dnslist(DnsListTarget::Helo),
            "sleep" => {
                let secs = need("a number of seconds")?;
                Seconds::parse(&secs)
                    .filter(|s| s.0 <= 60)
                    .map(Restriction::Sleep)
                    .ok_or_else(|| format!("`sleep {secs}`: expected seconds from 0 to 60 (Postfix gives a policy service 100 s in all)"))
            }
            "greylist" | "check_greylist" => no_arg(Restriction::Greylist),
            "reject_banned_client" => no_arg(Restriction::RejectBannedClient),
            "rate_limit" => parse_rate_limit(rest),
            _ => Err(format!(
                "unknown restriction `{word}`; known: permit, reject, dunno, defer, defer_if_permit, permit_mynetworks, permit_sasl_authenticated, check_{{client,helo,sender,recipient}}_access, reject_unknown_client_hostname, reject_unknown_reverse_client_hostname, reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, reject_unknown_helo_hostname, reject_non_fqdn_sender, reject_unknown_sender_domain, reject_rbl_client, reject_rhsbl_{{client,sender,helo}}, sleep, greylist, rate_limit, reject_banned_client"
            )),
        }
    }
}

fn parse_rate_limit(rest: &str) -> Result<Restriction, String> {
    let usage = "expected `rate_limit KEY COUNT/WINDOW [ACTION]`, KEY one of client_ip, sender, sasl_username, recipient, e.g. `rate_limit client_ip 30/1m DEFER`";
    let mut it = rest.splitn(3, char::is_whitespace);
    let key = match it.next().unwrap_or("") {
        "client_ip" | "client_address" => RateKey::ClientIp,
        "sender" => RateKey::Sender,
        "sasl_username" | "user" => RateKey::SaslUsername,
        "recipient" => RateKey::Recipient,
        _ => return Err(usage.into()),
    };
    let (count, window) = it.next().and_then(|cw| cw.split_once('/')).ok_or(usage)?;
    let count: u64 = count.parse().map_err(|_| usage.to_string())?;
    let window = Seconds::parse(window).filter(|w| w.0 > 0).ok_or(usage)?;
    let action = it
        .next()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("DEFER_IF_PERMIT Rate limit exceeded, try again later");
    Ok(Restriction::RateLimit {
        key,
        count,
        window,
        action: action.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_words_parse() {
        // `defer` and `defer_if_permit` are two different Postfix actions.
        assert_eq!(
            Restriction::parse("defer come back later").unwrap(),
            Restriction::Defer(Some("come back later".into()))
        );
        assert_eq!(
            Restriction::parse("DEFER_IF_PERMIT").unwrap(),
            Restriction::DeferIfPermit(None)
        );
        assert_eq!(
            Restriction::parse("check_client_access hash:/etc/postfix/client_access").unwrap(),
            Restriction::CheckAccess {
                target: AccessTarget::Client,
                map: "/etc/postfix/client_access".into()
            }
        );
        assert_eq!(
            Restriction::parse("sleep 10").unwrap(),
            Restriction::Sleep(Seconds(10))
        );
        assert_eq!(
            Restriction::parse("reject_unknown_helo_hostname").unwrap(),
            Restriction::RejectUnknownHeloHostname
        );
        let r = Restriction::parse("reject_rbl_client zen.example=127.0.0.[2..11]").unwrap();
        let Restriction::DnsList {
            zone,
            filter,
            target,
        } = r
        else {
            panic!()
        };
        assert_eq!(
            (zone.as_str(), target),
            ("zen.example", DnsListTarget::ClientIp)
        );
        assert!(filter.matches("127.0.0.4".parse().unwrap()));
        assert!(!filter.matches("127.0.0.12".parse().unwrap()));
        let Restriction::DnsList { filter, .. } =
            Restriction::parse("reject_rhsbl_sender dbl.example=127.0.1.[2;4]").unwrap()
        else {
            panic!()
        };
        assert!(
            filter.matches("127.0.1.4".parse().unwrap())
                && !filter.matches("127.0.1.3".parse().unwrap())
        );
        assert_eq!(
            Restriction::parse("rate_limit sasl_username 500/1d REJECT too much").unwrap(),
            Restriction::RateLimit {
                key: RateKey::SaslUsername,
                count: 500,
                window: Seconds(86400),
                action: "REJECT too much".into()
            }
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for bad in [
            "sleep",
            "sleep forever",
            "sleep 100",
            "reject_rbl_client",
            "reject_rbl_client zen=127.0.0",
            "permit_mynetworks now",
            "rate_limit ip 3/1m",
            "rate_limit sender 3",
            "frobnicate",
        ] {
            assert!(Restriction::parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
