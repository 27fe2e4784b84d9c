//! IP address tables: single addresses, CIDR networks and Postfix-style
//! partial IPv4 addresses (`192.168.1` = 192.168.1.0/24), looked up by
//! longest prefix. Shared by the scanner's lists and the policy server's
//! access maps.

use std::collections::HashMap;
use std::net::IpAddr;

/// Parses `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32`, `[::1]`, or `10.1.2`,
/// into a network address (host bits cleared) and a prefix length.
pub fn parse_network(s: &str) -> Result<(IpAddr, u8), String> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let bad = || format!("`{s}` is not an IP address, CIDR network or partial IPv4 address");
    let ip: IpAddr = match addr.parse() {
        Ok(ip) => ip,
        Err(_) if len.is_none() => {
            let octets: Vec<&str> = addr.trim_end_matches('.').split('.').collect();
            if octets.is_empty() || octets.len() > 3 {
                return Err(bad());
            }
            let mut b = [0u8; 4];
            for (i, o) in octets.iter().enumerate() {
                b[i] = o.parse().map_err(|_| bad())?;
            }
            return Ok((IpAddr::from(b), (octets.len() * 8) as u8));
        }
        Err(_) => return Err(bad()),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(bad)?,
        None => max,
    };
    Ok((mask(ip, len), len))
}

/// Clears the host bits of `ip` beyond `len`.
pub fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32) as u32)
            };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128) as u32)
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// IPv4-mapped IPv6 addresses are looked up as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses and networks with a value each.
#[derive(Debug, Clone)]
pub struct IpTable<V> {
    exact: HashMap<IpAddr, V>,
    /// (is IPv4, prefix length) → networks, longest prefix first.
    nets: Vec<((bool, u8), HashMap<IpAddr, V>)>,
}

impl<V> Default for IpTable<V> {
    fn default() -> Self {
        IpTable {
            exact: HashMap::new(),
            nets: Vec::new(),
        }
    }
}

impl<V> IpTable<V> {
    /// Adds a network; a later entry for the same network replaces it.
    pub fn insert(&mut self, (ip, len): (IpAddr, u8), value: V) {
        let ip = canonical(ip);
        let full = if ip.is_ipv4() { 32 } else { 128 };
        if len >= full {
            self.exact.insert(ip, value);
            return;
        }
        let key = (ip.is_ipv4(), len);
        let pos = match self.nets.iter().position(|(k, _)| *k == key) {
            Some(p) => p,
            None => {
                self.nets.push((key, HashMap::new()));
                self.nets.sort_by_key(|(k, _)| std::cmp::Reverse(k.1));
                self.nets.iter().position(|(k, _)| *k == key).unwrap_or(0)
            }
        };
        self.nets[pos].1.insert(mask(ip, len), value);
    }

    /// The value of the most specific entry holding `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&V> {
        let ip = canonical(ip);
        if let Some(v) = self.exact.get(&ip) {
            return Some(v);
        }
        self.nets
            .iter()
            .filter(|((v4, _), _)| *v4 == ip.is_ipv4())
            .find_map(|((_, len), nets)| nets.get(&mask(ip, *len)))
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.nets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_families_stay_apart() {
        let mut t = IpTable::default();
        t.insert(parse_network("10.0.0.0/8").unwrap(), "eight");
        t.insert(parse_network("10.1.2").unwrap(), "prefix");
        t.insert(parse_network("10.1.2.3").unwrap(), "host");
        t.insert(parse_network("2001:db8::/32").unwrap(), "six");
        t.insert(parse_network("0.0.0.0/0").unwrap(), "any4");
        let l = |s: &str| t.lookup(s.parse().unwrap()).copied();
        assert_eq!(l("10.1.2.3"), Some("host"));
        assert_eq!(l("10.1.2.4"), Some("prefix"));
        assert_eq!(l("10.9.9.9"), Some("eight"));
        assert_eq!(l("192.0.2.1"), Some("any4"));
        assert_eq!(l("::ffff:10.1.2.3"), Some("host"));
        assert_eq!(l("2001:db8:5::1"), Some("six"));
        assert_eq!(l("2001:db9::1"), None);
        assert!(parse_network("10.1.1.1/33").is_err());
        assert!(parse_network("1.2.3.4.5").is_err());
        assert!(parse_network("host.example").is_err());
    }
}
