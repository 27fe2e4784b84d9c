//! postgrey's whitelist files, read unchanged: `whitelist_clients` and
//! `whitelist_recipients`.
//!
//! Client entries: a domain (matches the client's host name and its
//! subdomains), an IP address, a partial IPv4 address (`192.168.1`), a CIDR
//! network, or `/regexp/` matched against the host name.
//! Recipient entries: `name@domain`, `name@` (any domain), a domain (and its
//! subdomains), or `/regexp/`.

use mxguard_core::iptable::{IpTable, parse_network};
use mxguard_core::maps::{LineError, MapData, logical_lines};
use mxguard_core::rules::compile_pattern;
use regex::Regex;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, Default)]
pub struct Whitelist {
    ips: IpTable<()>,
    domains: HashSet<String>,
    addresses: HashSet<String>,
    locals: HashSet<String>,
    regexes: Vec<Regex>,
}

fn is_ip_like(s: &str) -> bool {
    s.contains('/') || s.contains(':') || s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl MapData for Whitelist {
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
        let mut w = Whitelist::default();
        for (line, content) in logical_lines(text) {
            let err = |message: String| LineError {
                file: path.to_path_buf(),
                line,
                message,
            };
            let entry = content.split_whitespace().next().unwrap_or("");
            if entry.starts_with('/') {
                // postgrey regexps are Perl, case-insensitive.
                let lit = if entry.len() > 1 && entry.ends_with('/') {
                    format!("{entry}i")
                } else {
                    content.clone()
                };
                match compile_pattern(&lit, false) {
                    Ok(r) => w.regexes.push(r),
                    Err(e) => errors.push(err(e)),
                }
            } else if is_ip_like(entry) {
                match parse_network(entry) {
                    Ok(net) => w.ips.insert(net, ()),
                    Err(e) => errors.push(err(e)),
                }
            } else if let Some((local, domain)) = entry.to_lowercase().split_once('@') {
                match (local.is_empty(), domain.is_empty()) {
                    (false, true) => {
                        w.locals.insert(local.to_string());
                    }
                    (false, false) => {
                        w.addresses.insert(format!("{local}@{domain}"));
                    }
                    (true, false) => {
                        w.domains.insert(domain.to_string());
                    }
                    (true, true) => errors.push(err("`@` alone is not an entry".into())),
                }
            } else if entry.contains(|c: char| c.is_alphanumeric()) {
                w.domains.insert(entry.trim_matches('.').to_lowercase());
            } else {
                errors.push(err(format!("`{entry}` is not a host, address or /regexp/")));
            }
        }
        w
    }
}

impl Whitelist {
    fn domain_match(&self, name: &str) -> bool {
        let mut d = name.trim_end_matches('.');
        loop {
            if self.domains.contains(d) {
                return true;
            }
            match d.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => d = parent,
                _ => return false,
            }
        }
    }

    /// A client by address and (verified) host name.
    pub fn matches_client(&self, ip: Option<IpAddr>, name: Option<&str>) -> bool {
        if ip.is_some_and(|ip| self.ips.lookup(ip).is_some()) {
            return true;
        }
        let Some(name) = name.map(str::to_lowercase) else {
            return false;
        };
        self.domain_match(&name) || self.regexes.iter().any(|r| r.is_match(&name))
    }

    pub fn matches_recipient(&self, rcpt: &str) -> bool {
        let r = rcpt
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_lowercase();
        if self.addresses.contains(&r) || self.regexes.iter().any(|re| re.is_match(&r)) {
            return true;
        }
        match r.rsplit_once('@') {
            Some((local, domain)) => self.locals.contains(local) || self.domain_match(domain),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgrey_formats() {
        let mut e = Vec::new();
        let clients = "# postgrey whitelist_clients\nmail.example.com\n.gmx.net\n192.0.2.15\n198.51.100\n203.0.113.0/25\n/^mail\\d+\\.big\\.example$/\n";
        let w = Whitelist::parse(Path::new("wc"), clients, &mut e);
        assert!(e.is_empty(), "{e:?}");
        let ip = |s: &str| Some(s.parse().unwrap());
        assert!(w.matches_client(ip("192.0.2.15"), None));
        assert!(w.matches_client(ip("198.51.100.200"), None));
        assert!(w.matches_client(ip("203.0.113.100"), None));
        assert!(!w.matches_client(ip("203.0.113.200"), None));
        assert!(w.matches_client(None, Some("out.mail.example.com")));
        assert!(w.matches_client(None, Some("MAIL42.big.example")));
        assert!(w.matches_client(None, Some("mx01.gmx.net")));
        assert!(!w.matches_client(None, Some("mail42.big.example.evil")));
        let recips = "postmaster@\nabuse@\nvip@example.org\nnogrey.example\n";
        let w = Whitelist::parse(Path::new("wr"), recips, &mut e);
        assert!(e.is_empty());
        assert!(w.matches_recipient("<Postmaster@any.example>"));
        assert!(w.matches_recipient("vip@example.org"));
        assert!(!w.matches_recipient("other@example.org"));
        assert!(w.matches_recipient("x@sub.nogrey.example"));
    }
}
