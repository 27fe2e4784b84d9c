//! postgrey-compatible greylisting: the decision for a triplet (client
//! network, sender, recipient), kept free of I/O so it can be tested with
//! any clock; the server stores the entries in the Store.

use mxguard_core::config::GreylistConfig;
use mxguard_core::iptable::mask;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// What the store keeps per triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds of the first attempt (of the current round).
    pub first: u64,
    /// Unix seconds of the latest attempt.
    pub last: u64,
    /// Whether this triplet has passed once (so it counts for auto-whitelisting once).
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Defer, with the seconds left before a retry will pass.
    Greylist { remaining: u64 },
    /// Let it through. `delayed` is set on the first pass after greylisting:
    /// how long the message was held, for the X-Greylist header.
    Pass { delayed: Option<u64> },
}

/// Decides for one attempt at `now`, returning the entry to store.
pub fn decide(entry: Option<Entry>, now: u64, cfg: &GreylistConfig) -> (Decision, Entry) {
    let delay = cfg.delay.0;
    match entry {
        Some(e)
            if now.saturating_sub(e.first) >= delay
                && (e.passed || now.saturating_sub(e.first) <= cfg.retry_window.0 + delay) =>
        {
            let delayed = (!e.passed).then(|| now.saturating_sub(e.first));
            (
                Decision::Pass { delayed },
                Entry {
                    first: e.first,
                    last: now,
                    passed: true,
                },
            )
        }
        Some(e) if now.saturating_sub(e.first) < delay => (
            Decision::Greylist {
                remaining: delay - now.saturating_sub(e.first),
            },
            Entry { last: now, ..e },
        ),
        // New, or a retry that came after the retry window: start over.
        _ => (
            Decision::Greylist { remaining: delay },
            Entry {
                first: now,
                last: now,
                passed: false,
            },
        ),
    }
}

/// The client part of the triplet: the network (/24, /64) or the address.
pub fn client_key(ip: IpAddr, cfg: &GreylistConfig) -> String {
    if !cfg.lookup_by_subnet {
        return ip.to_string();
    }
    let ip = mxguard_core::iptable::canonical(ip);
    let len = if ip.is_ipv4() {
        cfg.ipv4_prefix
    } else {
        cfg.ipv6_prefix
    };
    format!("{}/{len}", mask(ip, len))
}

/// postgrey's sender normalisation, so a bounce-tagged or VERP sender
/// retrying with a new tag is the same sender: lower case, BATV `prvs=`
/// tags removed, `+extension` removed, digit runs in the local part as `#`.
pub fn normalize_sender(sender: &str) -> String {
    let s = sender
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_lowercase();
    let Some((local, domain)) = s.rsplit_once('@') else {
        return s;
    };
    let mut local = local.to_string();
    for tag in ["prvs=", "msprvs1=", "btv1="] {
        if let Some(rest) = local.strip_prefix(tag) {
            // prvs=TAGVALUE=user
            local = rest
                .split_once('=')
                .map_or(rest.to_string(), |(_, u)| u.to_string());
        }
    }
    if let Some((base, _)) = local.split_once('+') {
        local = base.to_string();
    }
    let mut out = String::with_capacity(local.len());
    let mut in_digits = false;
    for c in local.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    format!("{out}@{domain}")
}

/// The store key of a triplet; hashed in privacy mode.
pub fn triplet_key(client: &str, sender: &str, recipient: &str, privacy: bool) -> String {
    let raw = format!(
        "{client}/{}/{}",
        normalize_sender(sender),
        recipient.trim().to_lowercase()
    );
    if privacy {
        format!("grey:{}", hex(&Sha256::digest(raw.as_bytes())))
    } else {
        format!("grey:{raw}")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `%s` seconds left and `%r` recipient domain in the deferral text.
pub fn expand_text(template: &str, remaining: u64, recipient: &str) -> String {
    let domain = recipient
        .rsplit_once('@')
        .map_or("", |(_, d)| d.trim_end_matches('>'));
    template
        .replace("%s", &remaining.to_string())
        .replace("%r", domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::config::Seconds;

    fn cfg() -> GreylistConfig {
        GreylistConfig {
            delay: Seconds(60),
            retry_window: Seconds(3600),
            ..Default::default()
        }
    }

    #[test]
    fn first_attempt_early_retry_then_pass() {
        let c = cfg();
        let (d, e) = decide(None, 1000, &c);
        assert_eq!(d, Decision::Greylist { remaining: 60 });
        let (d, e) = decide(Some(e), 1030, &c);
        assert_eq!(d, Decision::Greylist { remaining: 30 }, "too early");
        assert_eq!(e.first, 1000, "an early retry does not restart the clock");
        let (d, e) = decide(Some(e), 1061, &c);
        assert_eq!(d, Decision::Pass { delayed: Some(61) });
        let (d, _) = decide(Some(e), 5000, &c);
        assert_eq!(
            d,
            Decision::Pass { delayed: None },
            "a passed triplet keeps passing"
        );
    }

    #[test]
    fn a_retry_after_the_window_starts_over() {
        let c = cfg();
        let (_, e) = decide(None, 0, &c);
        let (d, e) = decide(Some(e), 60 + 3600 + 1, &c);
        assert_eq!(d, Decision::Greylist { remaining: 60 });
        assert_eq!(e.first, 3661);
    }

    #[test]
    fn keys_and_normalisation() {
        let c = GreylistConfig::default();
        assert_eq!(
            client_key("192.0.2.77".parse().unwrap(), &c),
            "192.0.2.0/24"
        );
        assert_eq!(
            client_key("2001:db8:1:2:3::9".parse().unwrap(), &c),
            "2001:db8:1:2::/64"
        );
        let by_host = GreylistConfig {
            lookup_by_subnet: false,
            ..Default::default()
        };
        assert_eq!(
            client_key("192.0.2.77".parse().unwrap(), &by_host),
            "192.0.2.77"
        );
        assert_eq!(
            normalize_sender("<prvs=1234abcd=Bounce@Example.com>"),
            "bounce@example.com"
        );
        assert_eq!(
            normalize_sender("list+bounces-123-456@lists.example"),
            "list@lists.example"
        );
        assert_eq!(
            normalize_sender("bounce-12345-67@news.example"),
            "bounce-#-#@news.example"
        );
        assert_eq!(normalize_sender(""), "");
        let k = triplet_key("192.0.2.0/24", "A@x.example", "B@y.example", false);
        assert_eq!(k, "grey:192.0.2.0/24/a@x.example/b@y.example");
        let h = triplet_key("192.0.2.0/24", "A@x.example", "B@y.example", true);
        assert!(h.starts_with("grey:") && h.len() == 5 + 64 && !h.contains("example"));
        assert_eq!(
            expand_text("wait %s s for %r", 42, "u@dom.example"),
            "wait 42 s for dom.example"
        );
    }
}
