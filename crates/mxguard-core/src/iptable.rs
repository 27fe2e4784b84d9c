//! IP address tables: single addresses, CIDR networks and Postfix-style
//! partial IPv4 addresses (`192.168.1` = 192.168.1.0/24), looked up by
//! longest prefix. Shared by the scanner's lists and the policy server's
//! access maps.

use std::collections::HashMap;
use std::net::IpAddr;

/// Parses `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32`, `[::1]`, `[::1]/128`
/// (Postfix's form) or `10.1.2`, into a network address (host bits
/// cleared) and a prefix length. A prefix longer than the address (`/33`
/// for IPv4, `/129` for IPv6) is an error. An IPv4-mapped IPv6 network
/// (`::ffff:10.0.0.0/104`) comes back as the IPv4 network it covers
/// (`10.0.0.0/8`), since lookups treat mapped addresses as IPv4.
pub fn parse_network(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
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
    let (max, family) = if ip.is_ipv4() { (32, 4) } else { (128, 6) };
    let len = match len {
        None => max,
        Some(l) => {
            let n = (!l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
                .then(|| l.parse::<u32>().unwrap_or(u32::MAX))
                .ok_or_else(|| {
                    format!("`{s}`: prefix /{l} is not a number; write /0 to /{max} for an IPv{family} network")
                })?;
            if n > u32::from(max) {
                return Err(format!(
                    "`{s}`: prefix /{l} is longer than the {max} bits of an IPv{family} address; write /0 to /{max}"
                ));
            }
            n as u8
        }
    };
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = v6.to_ipv4_mapped()
        && len >= 96
    {
        let len = len - 96;
        return Ok((mask(IpAddr::V4(v4), len), len));
    }
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
        let mapped = canonical(ip);
        // An IPv4-mapped network's prefix counts the 96 bits of `::ffff:`.
        let (ip, len) = if mapped != ip {
            (mapped, len.saturating_sub(96))
        } else {
            (ip, len)
        };
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
    }

    #[test]
    fn prefixes_longer_than_the_address_are_errors_that_say_so() {
        for (net, bits) in [
            ("10.0.0.0/40", "32"),
            ("10.0.0.0/256", "32"),
            ("10.0.0.0/99999999999", "32"),
            ("2001:db8::/129", "128"),
            ("2001:db8::/300", "128"),
        ] {
            let e = parse_network(net).expect_err(net);
            assert!(e.contains(net) && e.contains(bits), "{e}");
        }
        for net in ["10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/-1", "10.0.0.0/8.0"] {
            let e = parse_network(net).expect_err(net);
            assert!(e.contains("not a number"), "{net}: {e}");
        }
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(parse_network("10.0.0.0/32"), Ok((ip("10.0.0.0"), 32)));
        assert_eq!(parse_network("::/0"), Ok((ip("::"), 0)));
        assert_eq!(parse_network("[::1]/128"), Ok((ip("::1"), 128)));
        assert_eq!(parse_network("[2001:db8::1]"), Ok((ip("2001:db8::1"), 128)));
    }

    #[test]
    fn ipv4_mapped_networks_match_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            parse_network("::ffff:10.1.2.3/104"),
            Ok((ip("10.0.0.0"), 8))
        );
        assert_eq!(parse_network("::ffff:10.1.2.3"), Ok((ip("10.1.2.3"), 32)));
        // Even given the raw tuple, the table counts the mapped prefix right.
        let mut t = IpTable::default();
        t.insert((ip("::ffff:10.0.0.0"), 104), "ten");
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(&"ten"));
        assert_eq!(t.lookup(ip("11.0.0.1")), None);
        assert!(parse_network("1.2.3.4.5").is_err());
        assert!(parse_network("host.example").is_err());
    }
}
