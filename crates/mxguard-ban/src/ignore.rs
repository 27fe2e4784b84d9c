//! `ignoreip`: addresses a jail never bans — single addresses, CIDR
//! ranges, `file:PATH` (one entry a line, `#` comments), and, unless
//! `ignoreself = false`, the host's own addresses (loopback and every
//! interface's, read from /proc: no DNS, no unsafe).
//!
//! Host names are refused: resolving them would let whoever controls
//! their DNS decide who is never banned.

use std::net::IpAddr;
use std::path::Path;

/// A network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = crate::host::parse_ip(a.trim())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The addresses a jail ignores.
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    nets: Vec<Net>,
}

impl IgnoreList {
    /// Builds the list; an error names the entry (and file line) at fault.
    pub fn new(entries: &[String], ignoreself: bool) -> Result<IgnoreList, String> {
        let mut nets = Vec::new();
        for entry in entries {
            for word in entry.split([' ', ',']).filter(|w| !w.is_empty()) {
                if let Some(path) = word.strip_prefix("file:") {
                    nets.extend(read_file(Path::new(path))?);
                } else {
                    nets.push(Net::parse(word).ok_or_else(|| {
                        format!(
                            "ignoreip entry `{word}` is not an address or CIDR range \
                             (host names are not resolved: write the address)"
                        )
                    })?);
                }
            }
        }
        if ignoreself {
            nets.extend(own_addresses());
        }
        Ok(IgnoreList { nets })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    pub fn len(&self) -> usize {
        self.nets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

fn read_file(path: &Path) -> Result<Vec<Net>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("ignoreip file:{}: cannot read it: {e}", path.display()))?;
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        nets.push(Net::parse(line).ok_or_else(|| {
            format!(
                "ignoreip file:{} line {}: `{line}` is not an address or CIDR range",
                path.display(),
                i + 1
            )
        })?);
    }
    Ok(nets)
}

/// Loopback and the addresses of this host's interfaces.
pub fn own_addresses() -> Vec<Net> {
    let mut nets = vec![
        Net::parse("127.0.0.0/8").unwrap(),
        Net::parse("::1").unwrap(),
    ];
    // IPv4: /proc/net/fib_trie lists `|-- ADDR` then `/32 host LOCAL`.
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<&str> = None;
        for line in trie.lines() {
            let t = line.trim_start();
            if let Some(a) = t.strip_prefix("|-- ") {
                last = Some(a.trim());
            } else if t.contains("/32 host LOCAL")
                && let Some(n) = last.and_then(Net::parse)
                && !nets.contains(&n)
            {
                nets.push(n);
            }
        }
    }
    // IPv6: /proc/net/if_inet6, first column 32 hex digits.
    if let Ok(v6) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in v6.lines() {
            if let Some(hex) = line.split_whitespace().next()
                && let Ok(n) = u128::from_str_radix(hex, 16)
            {
                let net = Net {
                    addr: IpAddr::V6(n.into()),
                    prefix: 128,
                };
                if !nets.contains(&net) {
                    nets.push(net);
                }
            }
        }
    }
    nets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_files_and_self() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("allow");
        std::fs::write(&f, "# ours\n198.51.100.0/24\n2001:db8::/32 # v6\n").unwrap();
        let l = IgnoreList::new(
            &[
                "192.0.2.7 10.0.0.0/8".into(),
                format!("file:{}", f.display()),
            ],
            true,
        )
        .unwrap();
        for yes in [
            "192.0.2.7",
            "10.9.9.9",
            "198.51.100.200",
            "2001:db8::5",
            "127.0.0.2",
            "::1",
        ] {
            assert!(l.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["192.0.2.8", "11.0.0.1", "2001:db9::1"] {
            assert!(!l.contains(no.parse().unwrap()), "{no}");
        }
        let e = IgnoreList::new(&["mail.example.com".into()], false).unwrap_err();
        assert!(e.contains("not resolved"), "{e}");
        std::fs::write(&f, "1.2.3.4\nbad\n").unwrap();
        let e = IgnoreList::new(&[format!("file:{}", f.display())], false).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(
            !IgnoreList::new(&[], false)
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
