//! rspamd's phishing module: a link whose shown text is one site and whose
//! target is another (PHISHING), and the message's URLs against the
//! openphish and phishtank feeds (PHISHED_OPENPHISH, PHISHED_PHISHTANK).
//!
//! Both are in-memory work, so the check runs inline: the feeds are sets
//! held by [`mxguard_feeds`], fetched by `serve` on a schedule and swapped
//! under the scan without a pause.
//!
//! What counts as a shown site: link text that is a URL (`https://…`), a
//! `www.` host, an IP address, or a single word that is a name under a
//! known public suffix (`paypal.com`, `paypal.com/login`), possibly with a
//! path, or an e-mail address (its domain). Sentences and button text
//! ("Click here") are not. The two sides
//! are compared by organisational domain (public suffix list), so a link
//! shown as `www.example.com` that goes to `click.example.com` (the same
//! organisation's tracking host) does not count, while `www.paypal.com`
//! going to `paypal.com.evil.example` does. Links to the sender's own
//! organisation (From's domain) and to the domains listed in
//! `redirectors` (mailing services that wrap every link) do not count
//! either: rspamd's REDIRECTOR_FALSE exception, as a list in the config.

use super::{BuildError, BuildReport, Check};
use crate::Task;
use crate::services::Services;
use mail_parser::PartType;
use mxguard_core::config::{ByteSize, Config, Millis, Seconds, Section};
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_feeds::{Feed, Format, Limits};
use mxguard_message::anchor::anchors;
use mxguard_message::domain::{has_known_suffix, organisational};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

/// At most this many listed URLs are named in a feed symbol's options.
const MAX_OPTIONS: usize = 5;

/// `[phishing]`, with rspamd's phishing.conf keys for the feeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhishingConfig {
    pub enabled: bool,
    /// Link targets in these organisational domains never give PHISHING:
    /// mailing services whose every link goes through their tracker.
    pub redirectors: Vec<String>,
    pub openphish_enabled: bool,
    /// An http(s) URL, `file:///path` or an absolute path.
    pub openphish_map: String,
    pub phishtank_enabled: bool,
    /// phishtank's online-valid list, CSV or JSON (an http(s) URL with
    /// your application key, `file:///path` or an absolute path).
    pub phishtank_map: String,
    /// How often `serve` fetches each feed (a file is re-read only when it
    /// changed).
    pub refresh_interval: Seconds,
    /// The whole of one fetch; past it the last good copy stays.
    pub fetch_timeout: Millis,
    /// Largest feed accepted.
    pub max_feed_size: ByteSize,
}

impl Default for PhishingConfig {
    fn default() -> Self {
        PhishingConfig {
            enabled: true,
            redirectors: Vec::new(),
            openphish_enabled: false,
            openphish_map: "https://www.openphish.com/feed.txt".into(),
            phishtank_enabled: false,
            phishtank_map: "http://data.phishtank.com/data/online-valid.csv".into(),
            refresh_interval: Seconds(3600),
            fetch_timeout: Millis(60_000),
            max_feed_size: ByteSize(64 << 20),
        }
    }
}

impl Section for PhishingConfig {
    const KEY: &'static str = "phishing";

    fn validate(&self, problems: &mut mxguard_core::config::Problems) {
        for (on, key, value) in [
            (self.openphish_enabled, "openphish_map", &self.openphish_map),
            (self.phishtank_enabled, "phishtank_map", &self.phishtank_map),
        ] {
            if on && let Err(e) = mxguard_feeds::Source::parse(value) {
                problems.at(key, e);
            }
        }
        if self.refresh_interval.0 < 60 {
            problems.at(
                "refresh_interval",
                "at least 60 seconds: feed publishers throttle clients that poll faster",
            );
        }
        if self.fetch_timeout.0 == 0 {
            problems.at("fetch_timeout", "must be above 0");
        }
    }
}

pub struct Phishing {
    redirectors: HashSet<String>,
    openphish: Option<Arc<Feed>>,
    phishtank: Option<Arc<Feed>>,
}

impl Phishing {
    pub fn new(config: &Config, services: &Services, report: &mut BuildReport) -> Phishing {
        let c = config.section::<PhishingConfig>();
        let limits = Limits {
            max_size: c.max_feed_size.0,
            timeout: c.fetch_timeout.as_duration(),
        };
        let interval = c.refresh_interval.as_duration();
        let mut feed = |on: bool, key: &str, source: &str, format: Format| {
            if !on {
                return None;
            }
            let name = format!("phishing.{key}");
            match services.feeds.feed(&name, source, format, interval, limits) {
                Ok(f) => Some(f),
                Err(message) => {
                    report.errors.push(BuildError {
                        key: name,
                        span: None,
                        message,
                    });
                    None
                }
            }
        };
        let openphish = feed(
            c.openphish_enabled,
            "openphish_map",
            &c.openphish_map,
            Format::OpenPhish,
        );
        let phishtank = feed(
            c.phishtank_enabled,
            "phishtank_map",
            &c.phishtank_map,
            Format::PhishTank,
        );
        Phishing {
            redirectors: c
                .redirectors
                .iter()
                .map(|d| organisational(d.trim()))
                .collect(),
            openphish,
            phishtank,
        }
    }

    /// The organisational domains of the header From addresses.
    fn sender_domains(task: &Task<'_>) -> Vec<String> {
        task.message
            .from()
            .map(|a| {
                a.iter()
                    .filter_map(|a| a.address())
                    .filter_map(|a| a.rsplit_once('@'))
                    .map(|(_, d)| organisational(d))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (shown domain, target domain) of each deceptive link, each pair once.
    fn deceptive_links(&self, task: &Task<'_>) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = Vec::new();
        let mut senders = None;
        for part in &task.message.parts {
            let PartType::Html(html) = &part.body else {
                continue;
            };
            for a in anchors(html) {
                let Some(target) = url_host(&a.href) else {
                    continue;
                };
                let Some(shown) = shown_host(&a.text) else {
                    continue;
                };
                let (shown_org, target_org) = (organisational(&shown), organisational(&target));
                if shown_org == target_org
                    || self.redirectors.contains(&target_org)
                    || found
                        .iter()
                        .any(|(s, t)| *s == shown_org && *t == target_org)
                {
                    continue;
                }
                let senders = senders.get_or_insert_with(|| Phishing::sender_domains(task));
                if senders.contains(&target_org) {
                    continue;
                }
                found.push((shown_org, target_org));
            }
        }
        found
    }
}

/// The host of an http(s) URL, lowercased; `None` for other schemes
/// (`mailto:`, `tel:`, `#top`) and relative links.
fn url_host(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    host_of(rest)
}

/// The host at the start of `rest` (after the scheme): user info, port
/// and trailing dots removed.
fn host_of(rest: &str) -> Option<String> {
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    let host = host.trim_end_matches('.').to_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The host a link's text shows, if it shows one (see the module doc).
fn shown_host(text: &str) -> Option<String> {
    let t = text.trim_matches(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '<' | '>' | '(' | ')' | '[' | ']' | '"' | '\'' | ',' | ';'
            )
    });
    // A sentence is not a site. An e-mail address shows its domain: a web
    // link under `support@paypal.com` that goes elsewhere deceives too
    // (a `mailto:` link is not compared at all).
    if t.is_empty() || t.contains(char::is_whitespace) {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return url_host(t);
    }
    let host = host_of(t.trim_end_matches('.'))?;
    if host.parse::<IpAddr>().is_ok() {
        return Some(host);
    }
    if host.starts_with("www.") || has_known_suffix(&host) {
        // A name must also look like one: letters, digits, dots, hyphens.
        if host
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            && has_known_suffix(&host)
        {
            return Some(host);
        }
    }
    None
}

impl Check for Phishing {
    fn name(&self) -> &'static str {
        "phishing"
    }

    /// rspamd's default weights (phishing group).
    fn symbols(&self) -> Vec<SymbolDef> {
        let g = "phishing";
        vec![
            SymbolDef::new(
                "PHISHING",
                4.0,
                g,
                "Link text shows one site, the link goes to another",
            ),
            SymbolDef::new(
                "PHISHED_OPENPHISH",
                7.0,
                g,
                "Phished URL found in openphish.com",
            ),
            SymbolDef::new(
                "PHISHED_PHISHTANK",
                7.0,
                g,
                "Phished URL found in phishtank.com",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if let Some((shown, target)) = self.deceptive_links(task).into_iter().next() {
            results.insert("PHISHING", vec![shown, target]);
        }
        for (feed, symbol) in [
            (&self.openphish, "PHISHED_OPENPHISH"),
            (&self.phishtank, "PHISHED_PHISHTANK"),
        ] {
            let Some(feed) = feed else { continue };
            let set = feed.set();
            if set.is_empty() {
                continue;
            }
            let listed: Vec<String> = task
                .urls()
                .iter()
                .filter(|u| set.contains(&u.url))
                .take(MAX_OPTIONS)
                .map(|u| u.url.clone())
                .collect();
            if !listed.is_empty() {
                results.insert(symbol, listed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    #[test]
    fn what_a_link_text_shows() {
        for (text, want) in [
            ("www.paypal.com", Some("www.paypal.com")),
            ("https://PayPal.com/login", Some("paypal.com")),
            ("paypal.com", Some("paypal.com")),
            ("paypal.com/signin?x=1", Some("paypal.com")),
            ("(192.0.2.7)", Some("192.0.2.7")),
            ("http://192.0.2.7:8080/x", Some("192.0.2.7")),
            ("Click here", None),
            ("report.pdf", None),
            ("Visit www.paypal.com now", None),
            ("", None),
            ("support@paypal.com", Some("paypal.com")),
        ] {
            assert_eq!(shown_host(text).as_deref(), want, "{text:?}");
        }
    }

    fn options(r: &ScanResults, name: &str) -> Vec<String> {
        let hit = r.hits.iter().find(|h| h.name == name);
        hit.unwrap_or_else(|| panic!("{name} missing: {r:?}"))
            .options
            .clone()
    }

    fn scan(config: PhishingConfig, html: &str) -> ScanResults {
        let config = Config::default().with_section(config);
        let mut report = BuildReport::default();
        let check = Phishing::new(&config, &Services::default(), &mut report);
        assert!(report.errors.is_empty());
        let raw =
            format!("From: Bank <news@bank.co.uk>\r\nContent-Type: text/html\r\n\r\n{html}\r\n");
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut results = ScanResults::default();
        check.run(&task, &mut results);
        results
    }

    #[test]
    fn deceptive_links() {
        let c = PhishingConfig::default;
        let r = scan(
            c(),
            r#"<a href="https://paypal.com.evil-site.net/x">www.paypal.com</a>"#,
        );
        assert_eq!(options(&r, "PHISHING"), ["paypal.com", "evil-site.net"]);
        for html in [
            // Same organisation: tracking host, other subdomain.
            r#"<a href="https://click.paypal.com/t/1">www.paypal.com</a>"#,
            // Not a shown site.
            r#"<a href="https://evil-site.net/">Log in</a>"#,
            // The sender's own organisation.
            r#"<a href="https://track.bank.co.uk/?u=1">www.shop.de</a>"#,
            r#"<a href="mailto:x@evil-site.net">www.paypal.com</a>"#,
        ] {
            assert!(!scan(c(), html).has("PHISHING"), "{html}");
        }
        // A redirect that names the shown site is not excused: a sender
        // can write any destination into a query.
        let r = scan(
            c(),
            r#"<a href="https://evil-site.net/r?u=https%3A%2F%2Fwww.paypal.com%2F">www.paypal.com</a>"#,
        );
        assert!(r.has("PHISHING"));
        let r = scan(
            PhishingConfig {
                redirectors: vec!["esp-mail.com".into()],
                ..c()
            },
            r#"<a href="https://links.esp-mail.com/c/1">www.shop.de</a>"#,
        );
        assert!(!r.has("PHISHING"));
        let r = scan(
            c(),
            r#"<a href="http://198.51.100.9/paypal/">https://www.paypal.com/</a>"#,
        );
        assert_eq!(options(&r, "PHISHING"), ["paypal.com", "198.51.100.9"]);
    }

    #[test]
    fn feed_urls() {
        let dir = tempfile::tempdir().unwrap();
        let op = dir.path().join("openphish.txt");
        std::fs::write(&op, "https://evil.example/login\n").unwrap();
        let pt = dir.path().join("online-valid.json");
        std::fs::write(&pt, r#"[{"url":"http://other.example/"}]"#).unwrap();
        let r = scan(
            PhishingConfig {
                openphish_enabled: true,
                openphish_map: op.display().to_string(),
                phishtank_enabled: true,
                phishtank_map: format!("file://{}", pt.display()),
                ..Default::default()
            },
            r#"<a href="http://EVIL.example/login/?a=1">Log in</a> https://safe.example/ <a href="https://other.example/any">x</a>"#,
        );
        assert_eq!(
            options(&r, "PHISHED_OPENPHISH"),
            ["http://EVIL.example/login/?a=1"]
        );
        assert_eq!(
            options(&r, "PHISHED_PHISHTANK"),
            ["https://other.example/any"]
        );
    }

    #[test]
    fn a_missing_feed_file_is_a_build_error_naming_the_key() {
        let config = Config::default().with_section(PhishingConfig {
            openphish_enabled: true,
            openphish_map: "/nonexistent/feed.txt".into(),
            ..Default::default()
        });
        let mut report = BuildReport::default();
        Phishing::new(&config, &Services::default(), &mut report);
        assert_eq!(report.errors[0].key, "phishing.openphish_map");
        assert!(report.errors[0].message.contains("/nonexistent/feed.txt"));
    }
}
