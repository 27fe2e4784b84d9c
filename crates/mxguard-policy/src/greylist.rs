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

/// What the store keeps per client for auto-whitelisting (postgrey's
/// clients database): counted deliveries and when the client was last seen.
/// The entry lives `max_age` after `last`; `last` moves while the client is
/// active, so an active client stays whitelisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Awl {
    /// Deliveries that passed greylisting (at most one an hour), and, once
    /// whitelisted, hours with mail (postgrey keeps counting, for statistics).
    pub count: u64,
    /// Unix seconds the client was last counted or refreshed.
    pub last: u64,
}

/// postgrey counts at most one delivery an hour and refreshes a whitelisted
/// client's last-seen time at most once an hour.
pub const AWL_INTERVAL: u64 = 3600;

impl Awl {
    /// Reads a stored value; anything unreadable is no entry. A bare count
    /// (what earlier versions stored, with the entry dying `max_age` after
    /// its creation) is kept, taken as last seen an hour ago: alive, and
    /// rewritten in this form when the client next counts or is refreshed.
    pub fn decode(bytes: &[u8], now: u64, cfg: &GreylistConfig) -> Option<Awl> {
        if let Ok(awl) = serde_json::from_slice::<Awl>(bytes) {
            return Some(awl);
        }
        let count = std::str::from_utf8(bytes)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(Awl {
            count,
            last: now.saturating_sub(AWL_INTERVAL.min(cfg.max_age.0)),
        })
    }

    /// Not seen for longer than `max_age`: forgotten.
    fn live(self, now: u64, cfg: &GreylistConfig) -> bool {
        now.saturating_sub(self.last) <= cfg.max_age.0
    }

    /// An hour since `last`, or `last` in the future (a clock stepped back,
    /// or a forged value that must not keep the entry alive).
    fn due(self, now: u64) -> bool {
        now >= self.last.saturating_add(AWL_INTERVAL) || self.last > now
    }

    fn bumped(self, now: u64) -> Awl {
        Awl {
            count: self.count.saturating_add(1),
            last: now,
        }
    }
}

/// Before greylisting: whether the client is auto-whitelisted (its live
/// entry has `auto_whitelist_clients` counts), and the refreshed entry to
/// store when a whitelisted client's last-seen time is due for an update.
pub fn awl_check(awl: Option<Awl>, now: u64, cfg: &GreylistConfig) -> (bool, Option<Awl>) {
    let n = u64::from(cfg.auto_whitelist_clients);
    match awl {
        Some(a) if n > 0 && a.live(now, cfg) && a.count >= n => {
            (true, a.due(now).then(|| a.bumped(now)))
        }
        _ => (false, None),
    }
}

/// After the first pass of a greylisted triplet: the entry to store, if this
/// delivery counts (the first one, or an hour after the last counted one).
/// An expired entry starts over.
pub fn awl_count(awl: Option<Awl>, now: u64, cfg: &GreylistConfig) -> Option<Awl> {
    if cfg.auto_whitelist_clients == 0 {
        return None;
    }
    match awl.filter(|a| a.live(now, cfg)) {
        None => Some(Awl {
            count: 1,
            last: now,
        }),
        Some(a) if a.due(now) => Some(a.bumped(now)),
        Some(_) => None,
    }
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

    fn awl_cfg() -> GreylistConfig {
        GreylistConfig {
            auto_whitelist_clients: 3,
            max_age: Seconds(10 * 86400),
            ..Default::default()
        }
    }

    #[test]
    fn awl_counts_one_delivery_an_hour_and_whitelists_at_n() {
        let c = awl_cfg();
        let a = awl_count(None, 1000, &c).unwrap();
        assert_eq!(
            a,
            Awl {
                count: 1,
                last: 1000
            }
        );
        assert_eq!(awl_count(Some(a), 1000 + 3599, &c), None, "same hour");
        let a = awl_count(Some(a), 1000 + 3600, &c).unwrap();
        assert_eq!(
            a,
            Awl {
                count: 2,
                last: 4600
            }
        );
        assert_eq!(awl_check(Some(a), 4601, &c), (false, None));
        let a = awl_count(Some(a), 4600 + 3600, &c).unwrap();
        assert_eq!(a.count, 3);
        assert_eq!(
            awl_check(Some(a), 8201, &c),
            (true, None),
            "refreshed an hour later at most"
        );
        let off = GreylistConfig {
            auto_whitelist_clients: 0,
            ..awl_cfg()
        };
        assert_eq!(awl_check(Some(a), 8201, &off), (false, None));
        assert_eq!(awl_count(Some(a), 9 * 3600, &off), None);
    }

    #[test]
    fn awl_lives_max_age_after_last_seen() {
        let c = awl_cfg();
        let day = 86400;
        let mut a = Awl { count: 3, last: 0 };
        // Seen every 4 days for 40 days: whitelisted throughout, refreshed each time.
        for t in (4 * day..=40 * day).step_by(4 * day as usize) {
            let (ok, refresh) = awl_check(Some(a), t, &c);
            assert!(ok, "day {}", t / day);
            a = refresh.expect("an hour has passed: refreshed");
            assert_eq!(a.last, t);
        }
        assert_eq!(a.count, 13, "postgrey keeps counting whitelisted visits");
        let last = a.last;
        assert!(
            awl_check(Some(a), last + 10 * day, &c).0,
            "max_age to the second"
        );
        assert_eq!(awl_check(Some(a), last + 10 * day + 1, &c), (false, None));
        // An expired entry starts over when the client passes greylisting again.
        assert_eq!(
            awl_count(Some(a), last + 11 * day, &c),
            Some(Awl {
                count: 1,
                last: last + 11 * day
            })
        );
    }

    #[test]
    fn awl_stored_values_old_malformed_or_forged() {
        let c = awl_cfg();
        let now = 1_000_000;
        let json = serde_json::to_vec(&Awl {
            count: 4,
            last: 900,
        })
        .unwrap();
        assert_eq!(
            Awl::decode(&json, now, &c),
            Some(Awl {
                count: 4,
                last: 900
            })
        );
        // Earlier versions stored a bare count: kept, due for a rewrite.
        let old = Awl::decode(b"7", now, &c).unwrap();
        assert_eq!(
            old,
            Awl {
                count: 7,
                last: now - AWL_INTERVAL
            }
        );
        assert_eq!(
            awl_check(Some(old), now, &c),
            (
                true,
                Some(Awl {
                    count: 8,
                    last: now
                })
            )
        );
        assert_eq!(Awl::decode(b" 2\n", now, &c).map(|a| a.count), Some(2));
        let tiny = GreylistConfig {
            max_age: Seconds(60),
            ..awl_cfg()
        };
        let old = Awl::decode(b"7", now, &tiny).unwrap();
        assert!(
            awl_check(Some(old), now, &tiny).0,
            "alive under any max_age"
        );
        for bad in [
            &b""[..],
            b"-1",
            b"99999999999999999999999",
            b"\xff\x00",
            b"{\"count\":1}",
            b"{\"count\":-1,\"last\":0}",
            b"null",
        ] {
            assert_eq!(Awl::decode(bad, now, &c), None, "{bad:?}");
        }
        // A last-seen time in the future is brought back to now, not trusted.
        let forged = Awl {
            count: u64::MAX,
            last: u64::MAX,
        };
        assert_eq!(
            awl_check(Some(forged), now, &c),
            (
                true,
                Some(Awl {
                    count: u64::MAX,
                    last: now
                })
            )
        );
        let skewed = Awl {
            count: 1,
            last: now + 10,
        };
        assert_eq!(
            awl_count(Some(skewed), now, &c),
            Some(Awl {
                count: 2,
                last: now
            })
        );
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
