//! Postfix access maps (access(5)), as `check_*_access` uses them: the same
//! files, the same lookup order, the same actions, reloaded on change.
//!
//! Lookup order, as Postfix does it for smtpd access maps:
//! - an address `user@domain`: the whole address, then the domain and its
//!   parent domains (`example.com` matches `a.example.com`; `.example.com`
//!   matches subdomains only), then `user@`;
//! - a host name: the name, then its parent domains;
//! - an IP address: the address, then CIDR networks and partial addresses
//!   (`192.168.1`) from the most specific.

use mxguard_core::iptable::{IpTable, parse_network};
use mxguard_core::maps::{LineError, MapData, logical_lines};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// An access-map action, kept as written: the policy server hands it to
/// Postfix as is, since both speak the same vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessAction {
    /// The action text, e.g. `REJECT no thanks`, `OK`, `450 4.7.1 later`.
    pub text: String,
}

impl AccessAction {
    /// DUNNO means "as if not found": the next restriction decides.
    pub fn is_dunno(&self) -> bool {
        self.text
            .split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("DUNNO"))
    }
}

/// Action words Postfix's access(5) defines (besides NNN codes).
const ACTION_WORDS: &[&str] = &[
    "OK",
    "PERMIT",
    "REJECT",
    "DEFER",
    "DEFER_IF_REJECT",
    "DEFER_IF_PERMIT",
    "DUNNO",
    "HOLD",
    "DISCARD",
    "WARN",
    "INFO",
    "PREPEND",
    "FILTER",
    "REDIRECT",
    "BCC",
    "SLEEP",
];

fn check_action(text: &str) -> Result<(), String> {
    let word = text.split_whitespace().next().unwrap_or("");
    let upper = word.to_ascii_uppercase();
    if ACTION_WORDS.contains(&upper.as_str()) {
        return Ok(());
    }
    if word.len() == 3
        && word.bytes().all(|b| b.is_ascii_digit())
        && matches!(word.as_bytes()[0], b'4' | b'5')
    {
        return Ok(());
    }
    Err(format!(
        "`{word}` is not an access(5) action (OK, REJECT [text], DUNNO, DEFER [text], 4xx/5xx text, HOLD, DISCARD, WARN, PREPEND, …)"
    ))
}

/// A parsed access map.
#[derive(Debug, Default)]
pub struct AccessMap {
    names: HashMap<String, AccessAction>,
    ips: IpTable<AccessAction>,
}

impl MapData for AccessMap {
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
        let mut map = AccessMap::default();
        for (line, content) in logical_lines(text) {
            let err = |message: String| LineError {
                file: path.to_path_buf(),
                line,
                message,
            };
            let Some((key, action)) = content.split_once(char::is_whitespace) else {
                errors.push(err(format!(
                    "`{content}` has no action; expected `pattern ACTION [text]`"
                )));
                continue;
            };
            let action = action.trim();
            if let Err(e) = check_action(action) {
                errors.push(err(e));
                continue;
            }
            let action = AccessAction {
                text: action.to_string(),
            };
            let looks_ip = key.contains('/')
                || key.contains(':')
                || key.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if looks_ip {
                match parse_network(key) {
                    Ok(net) => map.ips.insert(net, action),
                    Err(e) => errors.push(err(e)),
                }
            } else {
                map.names.insert(key.to_lowercase(), action);
            }
        }
        map
    }
}

impl AccessMap {
    /// Looks up an envelope address (sender or recipient).
    pub fn lookup_address(&self, address: &str) -> Option<&AccessAction> {
        let a = address
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_lowercase();
        if a.is_empty() {
            // The null sender is looked up as Postfix's smtpd_null_access_lookup_key.
            return self.names.get("<>");
        }
        if let Some(v) = self.names.get(&a) {
            return Some(v);
        }
        match a.rsplit_once('@') {
            Some((local, domain)) => self
                .lookup_domain(domain)
                .or_else(|| self.names.get(&format!("{local}@"))),
            None => self.lookup_domain(&a),
        }
    }

    /// Looks up a host or domain name, then its parent domains.
    pub fn lookup_domain(&self, name: &str) -> Option<&AccessAction> {
        let name = name.trim().trim_end_matches('.').to_lowercase();
        if name.is_empty() {
            return None;
        }
        if let Some(v) = self.names.get(&name) {
            return Some(v);
        }
        let mut rest = name.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.is_empty() {
                break;
            }
            if let Some(v) = self
                .names
                .get(parent)
                .or_else(|| self.names.get(&format!(".{parent}")))
            {
                return Some(v);
            }
            rest = parent;
        }
        None
    }

    pub fn lookup_ip(&self, ip: IpAddr) -> Option<&AccessAction> {
        self.ips.lookup(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> (AccessMap, Vec<LineError>) {
        let mut e = Vec::new();
        (AccessMap::parse(Path::new("access"), text, &mut e), e)
    }

    #[test]
    fn postfix_lookup_order() {
        let (m, e) = map(
            "spammer@example.com REJECT go away\nexample.com OK\n.sub.example.org DUNNO\npostmaster@ OK\n\
             192.0.2 REJECT net\n198.51.100.0/24 450 4.7.1 later\n203.0.113.5 HOLD\n<> REJECT no bounces\n",
        );
        assert!(e.is_empty(), "{e:?}");
        let t = |o: Option<&AccessAction>| o.map(|a| a.text.clone());
        assert_eq!(
            t(m.lookup_address("<Spammer@Example.com>")).as_deref(),
            Some("REJECT go away")
        );
        assert_eq!(t(m.lookup_address("x@example.com")).as_deref(), Some("OK"));
        assert_eq!(
            t(m.lookup_address("x@a.b.example.com")).as_deref(),
            Some("OK")
        );
        assert_eq!(
            t(m.lookup_address("x@sub.example.org")),
            None,
            ".sub matches subdomains only"
        );
        assert!(
            m.lookup_address("x@deep.sub.example.org")
                .unwrap()
                .is_dunno()
        );
        assert_eq!(
            t(m.lookup_address("postmaster@anywhere.net")).as_deref(),
            Some("OK")
        );
        assert_eq!(
            t(m.lookup_address("")).as_deref(),
            Some("REJECT no bounces")
        );
        assert_eq!(
            t(m.lookup_domain("mail.example.com")).as_deref(),
            Some("OK")
        );
        assert_eq!(
            t(m.lookup_ip("192.0.2.77".parse().unwrap())).as_deref(),
            Some("REJECT net")
        );
        assert_eq!(
            t(m.lookup_ip("198.51.100.1".parse().unwrap())).as_deref(),
            Some("450 4.7.1 later")
        );
        assert_eq!(
            t(m.lookup_ip("203.0.113.5".parse().unwrap())).as_deref(),
            Some("HOLD")
        );
        assert_eq!(t(m.lookup_ip("203.0.113.6".parse().unwrap())), None);
    }

    #[test]
    fn broken_lines_are_reported() {
        let (_, e) = map(
            "lonely\nexample.com FROBNICATE\n300.1.1.1/8 REJECT\nexample.net 250 ok\nfine.example OK\n",
        );
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4], "{e:?}");
    }
}
