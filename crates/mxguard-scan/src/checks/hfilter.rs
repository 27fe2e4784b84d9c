//! HELO, client host name and envelope-sender anomalies, and messages that
//! are nothing but a link: rspamd's hfilter symbols that need no DNS.
//!
//! The HELO, the client's reverse-DNS name and the envelope sender come
//! from the envelope (the MTA); when they are unknown (`mxguard scan` of a
//! file) those rules stay silent rather than guess from Received fields
//! another server wrote. The lookups rspamd's hfilter makes (HELO and
//! sender domain resolving) are network checks and are not here.

use super::Check;
use crate::Task;
use mxguard_core::config::Section;
use mxguard_core::envelope::domain_of;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `[hfilter]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HfilterConfig {
    pub enabled: bool,
    /// HFILTER_URL_ONLY / HFILTER_URL_ONELINE look at text parts up to this
    /// many characters: a message that is only a link is short.
    pub url_only_max_chars: usize,
}

impl Default for HfilterConfig {
    fn default() -> Self {
        HfilterConfig {
            enabled: true,
            url_only_max_chars: 500,
        }
    }
}

impl Section for HfilterConfig {
    const KEY: &'static str = "hfilter";
}

const GROUP: &str = "hfilter";

/// Words that mark an address-pool (dynamic, consumer) host name.
const POOL_WORDS: [&str; 14] = [
    "dsl",
    "dial",
    "dyn",
    "pool",
    "ppp",
    "dhcp",
    "cable",
    "broadband",
    "client",
    "customer",
    "pppoe",
    "adsl",
    "cpe",
    "residential",
];

pub struct Hfilter {
    url_only_max_chars: usize,
}

impl Hfilter {
    pub fn new(config: &HfilterConfig) -> Hfilter {
        Hfilter {
            url_only_max_chars: config.url_only_max_chars,
        }
    }
}

impl Check for Hfilter {
    fn name(&self) -> &'static str {
        "hfilter"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let s = |n, w, d| SymbolDef::new(n, w, GROUP, d);
        vec![
            s("HFILTER_HELO_BAREIP", 3.0, "HELO is a bare IP address"),
            s(
                "HFILTER_HELO_BADIP",
                4.5,
                "HELO is a private, loopback or other reserved address from a public client",
            ),
            s("HFILTER_HELO_NOT_FQDN", 2.0, "HELO is not a domain name"),
            s(
                "HFILTER_HELO_5",
                3.0,
                "HELO looks like an address-pool host: the client's IP and a pool word",
            ),
            s(
                "HFILTER_HELO_3",
                1.5,
                "HELO looks like an address-pool host: the client's IP",
            ),
            s(
                "HFILTER_HOSTNAME_UNKNOWN",
                2.5,
                "The client has no reverse DNS name",
            ),
            s(
                "HFILTER_HOSTNAME_5",
                3.0,
                "The client's name looks like an address-pool host: its IP and a pool word",
            ),
            s(
                "HFILTER_HOSTNAME_3",
                1.5,
                "The client's name looks like an address-pool host: its IP",
            ),
            s(
                "HFILTER_FROMHOST_NOT_FQDN",
                3.0,
                "The envelope sender's domain is not a domain name",
            ),
            s(
                "HFILTER_URL_ONLY",
                2.2,
                "The message text is little more than a link",
            ),
            s(
                "HFILTER_URL_ONELINE",
                2.5,
                "The message text is one line with a link",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        let env = task.envelope;
        if task.is_authenticated() {
            return;
        }
        // A client on a loopback or private address is our own network
        // (local submission, an internal relay): its names are its admin's
        // business, not evidence.
        let public_client = env.ip.is_some_and(|ip| !is_reserved(ip));
        if let Some(helo) = env
            .helo
            .as_deref()
            .map(str::trim)
            .filter(|h| public_client && !h.is_empty())
        {
            let bare = helo.trim_start_matches('[').trim_end_matches(']');
            let bare = bare
                .strip_prefix("IPv6:")
                .or_else(|| bare.strip_prefix("ipv6:"))
                .unwrap_or(bare);
            if let Ok(ip) = bare.parse::<IpAddr>() {
                if public_client && is_reserved(ip) {
                    results.insert("HFILTER_HELO_BADIP", vec![]);
                } else if !helo.starts_with('[') {
                    results.insert("HFILTER_HELO_BAREIP", vec![]);
                }
            } else if !is_fqdn(helo) {
                results.insert("HFILTER_HELO_NOT_FQDN", vec![]);
            } else if let Some(ip) = env.ip {
                match pool_host(helo, ip) {
                    Pool::IpAndWord => results.insert("HFILTER_HELO_5", vec![]),
                    Pool::Ip => results.insert("HFILTER_HELO_3", vec![]),
                    Pool::No => {}
                }
            }
        }
        if let Some(ip) = env.ip.filter(|_| public_client) {
            // The milter gives no name for a client Postfix could not
            // resolve (its `unknown`); without a HELO the envelope is not
            // an SMTP session's, and nothing is known.
            let session = env.helo.as_deref().is_some_and(|h| !h.trim().is_empty());
            match env.hostname.as_deref().map(str::trim) {
                Some("unknown") => results.insert("HFILTER_HOSTNAME_UNKNOWN", vec![]),
                None | Some("") if session => results.insert("HFILTER_HOSTNAME_UNKNOWN", vec![]),
                Some(name) if !name.is_empty() => match pool_host(name, ip) {
                    Pool::IpAndWord => results.insert("HFILTER_HOSTNAME_5", vec![]),
                    Pool::Ip => results.insert("HFILTER_HOSTNAME_3", vec![]),
                    Pool::No => {}
                },
                _ => {}
            }
        }
        if let Some(domain) = env.mail_from.as_deref().and_then(domain_of)
            && public_client
            && !is_fqdn(&domain)
        {
            results.insert("HFILTER_FROMHOST_NOT_FQDN", vec![]);
        }
        if task.parsed {
            self.url_only(task, results);
        }
    }
}

impl Hfilter {
    /// A short text whose words are mostly a link: nothing to read but
    /// the invitation to click.
    fn url_only(&self, task: &Task<'_>, results: &mut ScanResults) {
        // Cheapest first: most messages are longer than a link.
        let parts = task.text_parts();
        if parts.iter().map(|p| p.len()).sum::<usize>() > self.url_only_max_chars * 4 {
            return;
        }
        let mut text = String::new();
        for p in &parts {
            if p.len() > self.url_only_max_chars {
                return;
            }
            text.push_str(p);
            text.push('\n');
        }
        let text = text.trim();
        if text.is_empty() || text.chars().count() > self.url_only_max_chars {
            return;
        }
        let url_chars: usize = text
            .split_whitespace()
            .filter(|w| w.contains("://") || w.starts_with("www."))
            .map(str::len)
            .sum();
        let all_chars: usize = text.split_whitespace().map(str::len).sum();
        if url_chars == 0 || task.urls().is_empty() || task.attachments().len() > 0 {
            return;
        }
        if url_chars * 10 >= all_chars * 8 {
            results.insert("HFILTER_URL_ONLY", vec![]);
        } else if !text.contains('\n') {
            results.insert("HFILTER_URL_ONELINE", vec![]);
        }
    }
}

enum Pool {
    No,
    Ip,
    IpAndWord,
}

/// Whether a host name carries the client's IPv4 address (its octets in
/// either order, joined by any separator or none), and a pool word.
fn pool_host(name: &str, ip: IpAddr) -> Pool {
    let IpAddr::V4(v4) = ip else {
        return Pool::No;
    };
    let lower = name.to_ascii_lowercase();
    let first = lower.split('.').next().unwrap_or("");
    let digits: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let o = v4.octets().map(|b| b.to_string());
    let has = |seq: [&String; 4]| {
        digits
            .windows(4)
            .any(|w| w.iter().zip(seq).all(|(a, b)| *a == b.as_str()))
            || first.contains(&format!("{}{}{}{}", seq[0], seq[1], seq[2], seq[3]))
    };
    let ip_in = has([&o[0], &o[1], &o[2], &o[3]]) || has([&o[3], &o[2], &o[1], &o[0]]);
    if !ip_in {
        return Pool::No;
    }
    if POOL_WORDS.iter().any(|w| lower.contains(w)) {
        Pool::IpAndWord
    } else {
        Pool::Ip
    }
}

fn is_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_documentation()
                || v.octets()[0] == 0
                || (v.octets()[0] == 100 && (64..128).contains(&v.octets()[1]))
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Two labels at least, a letter in the last, only host-name characters.
fn is_fqdn(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    let Some(tld) = s.rsplit('.').next() else {
        return false;
    };
    s.contains('.')
        && tld.chars().any(|c| c.is_ascii_alphabetic())
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    const MSG: &str = "From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nA few words about the meeting tomorrow and the agenda we agreed on.\r\n";

    fn scan(env: &Envelope, raw: &str) -> Vec<String> {
        let task = Task::new(env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        Hfilter::new(&HfilterConfig::default()).run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    fn env(ip: &str, hostname: &str, helo: &str) -> Envelope {
        Envelope {
            ip: Some(ip.parse().unwrap()),
            hostname: Some(hostname.into()),
            helo: Some(helo.into()),
            mail_from: Some("a@example.com".into()),
            ..Envelope::default()
        }
    }

    #[test]
    fn silent_when_the_envelope_is_unknown() {
        assert!(scan(&Envelope::default(), MSG).is_empty());
    }

    #[test]
    fn a_proper_server_is_clean() {
        let e = env("81.2.69.161", "mail.example.com", "mail.example.com");
        assert!(scan(&e, MSG).is_empty(), "{:?}", scan(&e, MSG));
    }

    #[test]
    fn helo_anomalies() {
        let pub_ip = "81.2.69.160";
        assert_eq!(
            scan(&env("8.8.4.4", "mail.example.com", "8.8.4.4"), MSG),
            vec!["HFILTER_HELO_BAREIP"]
        );
        assert_eq!(
            scan(&env("8.8.4.4", "mail.example.com", "[192.168.1.2]"), MSG),
            vec!["HFILTER_HELO_BADIP"]
        );
        assert_eq!(
            scan(&env("8.8.4.4", "mail.example.com", "127.0.0.1"), MSG),
            vec!["HFILTER_HELO_BADIP"]
        );
        assert!(scan(&env("8.8.4.4", "mail.example.com", "[8.8.4.4]"), MSG).is_empty());
        assert_eq!(
            scan(&env(pub_ip, "mail.example.com", "DESKTOP-1234"), MSG),
            vec!["HFILTER_HELO_NOT_FQDN"]
        );
        assert_eq!(
            scan(
                &env("8.8.4.4", "mail.example.com", "dsl-8-8-4-4.isp.example"),
                MSG
            ),
            vec!["HFILTER_HELO_5"]
        );
        assert_eq!(
            scan(
                &env("8.8.4.4", "mail.example.com", "4.4.8.8.isp.example"),
                MSG
            ),
            vec!["HFILTER_HELO_3"]
        );
    }

    #[test]
    fn client_name_anomalies() {
        let mut e = env("8.8.4.4", "x", "mail.example.com");
        e.hostname = None;
        assert_eq!(scan(&e, MSG), vec!["HFILTER_HOSTNAME_UNKNOWN"]);
        e.helo = None;
        assert!(scan(&e, MSG).is_empty(), "no session, nothing known");
        assert_eq!(
            scan(&env("8.8.4.4", "unknown", "mail.example.com"), MSG),
            vec!["HFILTER_HOSTNAME_UNKNOWN"]
        );
        assert_eq!(
            scan(
                &env("8.8.4.4", "pool-8-8-4-4.isp.example", "mail.example.com"),
                MSG
            ),
            vec!["HFILTER_HOSTNAME_5"]
        );
        // A local client without a name, a bare HELO or a local sender is ordinary.
        assert!(scan(&env("127.0.0.1", "unknown", "localhost.localdomain"), MSG).is_empty());
        let mut local = env("10.1.2.3", "unknown", "vm");
        local.mail_from = Some("root@vm".into());
        assert!(scan(&local, MSG).is_empty());
        let mut e = env("8.8.4.4", "mail.example.com", "mail.example.com");
        e.mail_from = Some("root@localhost".into());
        assert_eq!(scan(&e, MSG), vec!["HFILTER_FROMHOST_NOT_FQDN"]);
        e.user = Some("root".into());
        assert!(scan(&e, MSG).is_empty(), "authenticated");
    }

    #[test]
    fn link_only_messages() {
        let e = Envelope::default();
        let only = "From: a@example.com\r\nSubject: hi\r\n\r\nhttps://click.example.net/abc?id=123456789\r\n";
        assert_eq!(scan(&e, only), vec!["HFILTER_URL_ONLY"]);
        let one = "From: a@example.com\r\nSubject: hi\r\n\r\nLook here https://x.example.net/a\r\n";
        assert_eq!(scan(&e, one), vec!["HFILTER_URL_ONELINE"]);
        let long = format!(
            "From: a@example.com\r\nSubject: hi\r\n\r\n{}\r\nhttps://x.example.net/a\r\n",
            "words and more words ".repeat(40)
        );
        assert!(scan(&e, &long).is_empty());
    }
}
