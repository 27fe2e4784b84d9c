//! The host a filter captured: the text as the log wrote it, and the
//! address to ban when it is one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Regex fragments for the tags (ASCII only: log hosts are never more).
pub const IP4: &str = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}";
pub const IP6: &str =
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?";
/// A host name or an IPv4 address (both are dotted words).
pub const DNS: &str = r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?";
/// The IPv4-mapped prefix some daemons write before an IPv4 address.
pub const MAPPED: &str = r"(?:::[fF]{4,6}:)?";

/// A captured host: `text` is what the annotation and `ban test` show
/// (an IPv4-mapped prefix and brackets removed), `ip` the address when
/// the text is one (a name stays unresolved: we never ban on a DNS
/// answer an attacker may control).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub text: String,
    pub ip: Option<IpAddr>,
}

impl Host {
    pub fn parse(captured: &str) -> Host {
        let t = captured.trim_matches(|c| c == '[' || c == ']');
        let t = strip_mapped(t);
        Host {
            text: t.to_string(),
            ip: parse_ip(t),
        }
    }
}

fn strip_mapped(t: &str) -> &str {
    let b = t.as_bytes();
    if b.len() > 7 && b[0] == b':' && b[1] == b':' {
        let rest = &t[2..];
        if let Some(colon) = rest.find(':') {
            let ff = &rest[..colon];
            if (4..=6).contains(&ff.len()) && ff.bytes().all(|c| c == b'f' || c == b'F') {
                let v4 = &rest[colon + 1..];
                if v4.contains('.') {
                    return v4;
                }
            }
        }
    }
    t
}

/// An address as logs write it: IPv4 may carry leading zeros
/// (`192.030.0.6`, read as decimal as fail2ban does), IPv6 as usual.
pub fn parse_ip(t: &str) -> Option<IpAddr> {
    if t.contains(':') {
        return t
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            });
    }
    let mut octets = [0u8; 4];
    let mut n = 0;
    for part in t.split('.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        octets[n] = part.parse().ok()?;
        n += 1;
    }
    (n == 4).then(|| IpAddr::V4(Ipv4Addr::from(octets)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            Host::parse("192.030.0.6").ip,
            Some("192.30.0.6".parse().unwrap())
        );
        assert_eq!(Host::parse("192.030.0.6").text, "192.030.0.6");
        assert_eq!(Host::parse("::ffff:1.2.3.4").text, "1.2.3.4");
        assert_eq!(Host::parse("[::1]").ip, Some("::1".parse().unwrap()));
        assert_eq!(Host::parse("example.com").ip, None);
        assert_eq!(parse_ip("1.2.3.256"), None);
        assert_eq!(parse_ip("1.2.3"), None);
        assert_eq!(parse_ip("21:50:19"), None);
    }
}
