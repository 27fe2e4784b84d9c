//! A compact SPF evaluator (RFC 7208 `check_host`) over the shared
//! resolver, for the checks that only need a yes/no answer: does this
//! domain authorise this IP? Supported: `all`, `ip4`, `ip6`, `a`, `mx`,
//! `include`, `exists`, `redirect=`, qualifiers, CIDR suffixes, the
//! 10-lookup and 2-void-lookup limits. Macros and `ptr` give `PermError`
//! (`ptr` is deprecated; macros are rare in the records that matter here).

use crate::Dns;
use hickory_resolver::proto::rr::{RData, RecordType};
use mxguard_core::iptable::mask;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

struct State {
    lookups: u32,
    voids: u32,
}

const MAX_LOOKUPS: u32 = 10;
const MAX_VOIDS: u32 = 2;

/// Whether `domain` authorises `ip` to send mail as `sender`.
pub async fn check_host(dns: &Dns, ip: IpAddr, domain: &str, _sender: &str) -> SpfResult {
    let mut st = State {
        lookups: 0,
        voids: 0,
    };
    check(
        dns,
        ip,
        domain.trim_end_matches('.').to_ascii_lowercase(),
        &mut st,
        0,
    )
    .await
}

async fn spf_record(dns: &Dns, domain: &str) -> Result<Option<String>, SpfResult> {
    let records = dns
        .records(domain, RecordType::TXT)
        .await
        .map_err(|_| SpfResult::TempError)?;
    let mut found: Vec<String> = records
        .into_iter()
        .filter_map(|r| match r {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .filter(|t| {
            let l = t.to_ascii_lowercase();
            l == "v=spf1" || l.starts_with("v=spf1 ")
        })
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(SpfResult::PermError),
    }
}

fn check<'a>(
    dns: &'a Dns,
    ip: IpAddr,
    domain: String,
    st: &'a mut State,
    depth: u32,
) -> Pin<Box<dyn Future<Output = SpfResult> + Send + 'a>> {
    Box::pin(async move {
        if depth > MAX_LOOKUPS {
            return SpfResult::PermError;
        }
        let record = match spf_record(dns, &domain).await {
            Ok(Some(r)) => r,
            Ok(None) => return SpfResult::None,
            Err(e) => return e,
        };
        let mut redirect = None;
        for term in record.split_whitespace().skip(1) {
            let lower = term.to_ascii_lowercase();
            if let Some(target) = lower.strip_prefix("redirect=") {
                redirect = Some(target.to_string());
                continue;
            }
            if lower.contains('=') {
                continue; // unknown modifier (exp= and others)
            }
            let (qualifier, mech) = match lower.chars().next() {
                Some(q @ ('+' | '-' | '~' | '?')) => (q, &lower[1..]),
                _ => ('+', lower.as_str()),
            };
            let matched = match matches(dns, ip, &domain, mech, st, depth).await {
                Ok(m) => m,
                Err(e) => return e,
            };
            if matched {
                return match qualifier {
                    '+' => SpfResult::Pass,
                    '-' => SpfResult::Fail,
                    '~' => SpfResult::SoftFail,
                    _ => SpfResult::Neutral,
                };
            }
        }
        if let Some(target) = redirect {
            st.lookups += 1;
            if st.lookups > MAX_LOOKUPS {
                return SpfResult::PermError;
            }
            return match check(dns, ip, target, st, depth + 1).await {
                SpfResult::None => SpfResult::PermError,
                r => r,
            };
        }
        SpfResult::Neutral
    })
}

/// Splits `name:domain/cidr4//cidr6` style arguments.
fn target_and_cidr<'t>(
    arg: &'t str,
    default_domain: &'t str,
) -> Result<(&'t str, u8, u8), SpfResult> {
    let (rest, v6) = match arg.split_once("//") {
        Some((r, c)) => (r, c.parse().map_err(|_| SpfResult::PermError)?),
        None => (arg, 128),
    };
    let (name, v4) = match rest.split_once('/') {
        Some((n, c)) => (n, c.parse().map_err(|_| SpfResult::PermError)?),
        None => (rest, 32),
    };
    let name = name.strip_prefix(':').unwrap_or(name);
    if v4 > 32 || v6 > 128 {
        return Err(SpfResult::PermError);
    }
    Ok((
        if name.is_empty() {
            default_domain
        } else {
            name
        },
        v4,
        v6,
    ))
}

fn in_net(ip: IpAddr, addr: IpAddr, v4: u8, v6: u8) -> bool {
    match (ip, addr) {
        (IpAddr::V4(_), IpAddr::V4(_)) => mask(ip, v4) == mask(addr, v4),
        (IpAddr::V6(_), IpAddr::V6(_)) => mask(ip, v6) == mask(addr, v6),
        _ => false,
    }
}

fn count(st: &mut State) -> Result<(), SpfResult> {
    st.lookups += 1;
    if st.lookups > MAX_LOOKUPS {
        Err(SpfResult::PermError)
    } else {
        Ok(())
    }
}

fn void(st: &mut State, empty: bool) -> Result<(), SpfResult> {
    if empty {
        st.voids += 1;
        if st.voids > MAX_VOIDS {
            return Err(SpfResult::PermError);
        }
    }
    Ok(())
}

async fn matches(
    dns: &Dns,
    ip: IpAddr,
    domain: &str,
    mech: &str,
    st: &mut State,
    depth: u32,
) -> Result<bool, SpfResult> {
    if mech.contains('%') {
        return Err(SpfResult::PermError);
    }
    let ip = mxguard_core::iptable::canonical(ip);
    if mech == "all" {
        return Ok(true);
    }
    if let Some(net) = mech
        .strip_prefix("ip4:")
        .or_else(|| mech.strip_prefix("ip6:"))
    {
        let (addr, len) = match net.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (net, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| SpfResult::PermError)?;
        let len: u8 = match len {
            Some(l) => l.parse().map_err(|_| SpfResult::PermError)?,
            None => {
                if addr.is_ipv4() {
                    32
                } else {
                    128
                }
            }
        };
        return Ok(in_net(ip, addr, len, len));
    }
    if let Some(target) = mech.strip_prefix("include:") {
        count(st)?;
        return match check(dns, ip, target.to_string(), st, depth + 1).await {
            SpfResult::Pass => Ok(true),
            SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
            SpfResult::TempError => Err(SpfResult::TempError),
            SpfResult::PermError | SpfResult::None => Err(SpfResult::PermError),
        };
    }
    if let Some(target) = mech.strip_prefix("exists:") {
        count(st)?;
        let a = dns.a(target).await.map_err(|_| SpfResult::TempError)?;
        void(st, a.is_empty())?;
        return Ok(!a.is_empty());
    }
    if mech == "a" || mech.starts_with("a:") || mech.starts_with("a/") {
        count(st)?;
        let (name, v4, v6) = target_and_cidr(&mech[1..], domain)?;
        let addrs = dns
            .addresses(name)
            .await
            .map_err(|_| SpfResult::TempError)?;
        void(st, addrs.is_empty())?;
        return Ok(addrs.into_iter().any(|a| in_net(ip, a, v4, v6)));
    }
    if mech == "mx" || mech.starts_with("mx:") || mech.starts_with("mx/") {
        count(st)?;
        let (name, v4, v6) = target_and_cidr(&mech[2..], domain)?;
        let hosts = dns.mx(name).await.map_err(|_| SpfResult::TempError)?;
        void(st, hosts.is_empty())?;
        for h in hosts.iter().take(10) {
            let addrs = dns.addresses(h).await.map_err(|_| SpfResult::TempError)?;
            if addrs.into_iter().any(|a| in_net(ip, a, v4, v6)) {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    Err(SpfResult::PermError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_suffixes() {
        assert_eq!(
            target_and_cidr("", "d.example").unwrap(),
            ("d.example", 32, 128)
        );
        assert_eq!(
            target_and_cidr(":mx.example/24//64", "d").unwrap(),
            ("mx.example", 24, 64)
        );
        assert!(target_and_cidr("/33", "d").is_err());
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(in_net(ip, "192.0.2.1".parse().unwrap(), 24, 128));
        assert!(!in_net(ip, "192.0.3.1".parse().unwrap(), 24, 128));
    }
}
