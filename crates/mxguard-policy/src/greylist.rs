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

/// Decides for one attempt at `now`, returning the entry to store; as
/// postgrey 1.37 (`smtpd_access_policy`):
///
/// - a triplet whose last attempt was successful (`passed`, or, as postgrey
///   has it, `last - first >= delay`, with a delay above 0) keeps its
///   first-seen time;
/// - otherwise a retry more than `retry_window` after the first attempt
///   starts over (first-seen is now): the window counts from the first
///   attempt, so a retry passes from `delay` to `retry_window` seconds after
///   it, both included;
/// - a first-seen time in the future (clock stepped back, or a forged
///   value) is taken as now;
/// - the attempt passes once `delay` seconds have gone by since first seen,
///   and the stored entry is always (first-seen, now).
///
/// A new (or restarted) triplet is deferred even with a zero delay (postgrey
/// has no zero delay: it takes `--delay=0` as its default, 300).
pub fn decide(entry: Option<Entry>, now: u64, cfg: &GreylistConfig) -> (Decision, Entry) {
    let delay = cfg.delay.0;
    // `restarted`: first-seen was set to now here, not read from the store.
    let (first, was_successful, restarted) = match entry {
        None => (now, false, true),
        Some(e) => {
            let successful = e.passed || (delay > 0 && e.last.saturating_sub(e.first) >= delay);
            if (!successful && now.saturating_sub(e.first) > cfg.retry_window.0) || e.first > now {
                (now, successful, true)
            } else {
                (e.first, successful, false)
            }
        }
    };
    let age = now - first;
    if age < delay || restarted {
        (
            Decision::Greylist {
                remaining: delay - age,
            },
            Entry {
                first,
                last: now,
                passed: false,
            },
        )
    } else {
        (
            Decision::Pass {
                delayed: (!was_successful).then_some(age),
            },
            Entry {
                first,
                last: now,
                passed: true,
            },
        )
    }
}

/// The client part of the triplet: the network (/24, /64) or the address.
pub fn client_key(ip: IpAddr, cfg: &GreylistConfig) -> String {
    if !cfg.lookup_by_subnet {
        return ip_text(ip);
    }
    let ip = mxguard_core::iptable::canonical(ip);
    let len = if ip.is_ipv4() {
        cfg.ipv4_prefix
    } else {
        cfg.ipv6_prefix
    };
    let mut key = ip_text(mask(ip, len));
    key.push('/');
    push_decimal(&mut key, u64::from(len));
    key
}

/// An address as `Display` writes it; IPv4 without the formatting
/// machinery, which costs more than the rest of a request's key building.
pub(crate) fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(18);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_decimal(&mut s, u64::from(octet));
            }
            s
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// postgrey 1.37's sender normalisation (`do_sender_substitutions`), so a
/// bounce-tagged or VERP sender retrying with a new tag is the same sender,
/// then lower case (postgrey lower-cases the whole key, after the
/// substitutions, ASCII letters only). Only the local part, up to the
/// first `@`, changes:
///
/// - BATV: a local part starting `prvs=` (case as sent) with exactly three
///   `=`-separated fields (trailing empty fields dropped, as Perl's `split`
///   does) becomes the third field, or the second when only the third
///   starts with ten `[0-9a-z]` (a tag written after the address);
/// - everything from the first `+` on is dropped (to the end of the line);
/// - each whole number (digits between ASCII word boundaries: a digit run
///   with no letter, digit or `_` next to it) becomes `#`.
///
/// Nothing else: no other tag scheme (SRS, `btv1=`, `msprvs1=`), no
/// angle brackets or white space removed.
pub fn normalize_sender(sender: &str) -> String {
    let mut out = String::with_capacity(sender.len());
    push_normalized_sender(&mut out, sender);
    out
}

/// [`normalize_sender`], appended to `out`.
fn push_normalized_sender(out: &mut String, sender: &str) {
    let start = out.len();
    match sender.split_once('@') {
        None => out.push_str(sender),
        Some((user, domain)) => {
            let user = strip_extension(batv_address(user));
            push_hashed_numbers(out, &user);
            out.push('@');
            out.push_str(domain);
        }
    }
    out[start..].make_ascii_lowercase();
}

/// The address part of a `prvs=` BATV local part, else the local part.
fn batv_address(user: &str) -> &str {
    if !user.starts_with("prvs=") {
        return user;
    }
    let mut fields: Vec<&str> = user.split('=').collect();
    while fields.last() == Some(&"") {
        fields.pop();
    }
    let [_, a, b] = fields[..] else {
        return user;
    };
    let tag = |f: &str| {
        f.as_bytes().get(..10).is_some_and(|t| {
            t.iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        })
    };
    if tag(b) && !tag(a) { a } else { b }
}

/// Perl's `s/\+.*//`: from the first `+` to the end of its line.
fn strip_extension(user: &str) -> std::borrow::Cow<'_, str> {
    match user.split_once('+') {
        None => user.into(),
        Some((base, rest)) => match rest.find('\n') {
            Some(nl) => format!("{base}{}", &rest[nl..]).into(),
            None => base.into(),
        },
    }
}

/// Perl's `s/\b\d+\b/#/g` on a byte string: a run of ASCII digits with no
/// word character (ASCII letter, digit, `_`) on either side becomes `#`.
fn push_hashed_numbers(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let word = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !word(i - 1)) {
            let end = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if !word(end) {
                out.push_str(&s[start..i]);
                out.push('#');
                start = end;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[start..]);
}

/// The store key of a triplet; hashed in privacy mode. As postgrey's key,
/// lower case (ASCII) as a whole, the recipient as sent.
pub fn triplet_key(client: &str, sender: &str, recipient: &str, privacy: bool) -> String {
    const PREFIX: &str = "grey:";
    let mut key =
        String::with_capacity(PREFIX.len() + client.len() + sender.len() + recipient.len() + 2);
    key.push_str(PREFIX);
    key.push_str(client);
    key.push('/');
    push_normalized_sender(&mut key, sender);
    key.push('/');
    key.push_str(recipient);
    key.make_ascii_lowercase();
    if privacy {
        let digest = Sha256::digest(&key.as_bytes()[PREFIX.len()..]);
        key.truncate(PREFIX.len());
        key.push_str(&hex(&digest));
    }
    key
}

/// The store key of a sender pool: the triplet key of client `pool`,
/// sender `@domain` and the recipient (what `triplet_key("pool",
/// "@domain", recipient, privacy)` gives: an empty local part has nothing
/// to normalise), without building the sender first.
pub fn pool_key(domain: &str, recipient: &str, privacy: bool) -> String {
    const PREFIX: &str = "grey:pool/@";
    let mut key = String::with_capacity(PREFIX.len() + domain.len() + recipient.len() + 1);
    key.push_str(PREFIX);
    key.push_str(domain);
    key.push('/');
    key.push_str(recipient);
    key.make_ascii_lowercase();
    if privacy {
        let digest = Sha256::digest(&key.as_bytes()["grey:".len()..]);
        key.truncate("grey:".len());
        key.push_str(&hex(&digest));
    }
    key
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

/// The text of a greylist deferral, as postgrey 1.37 builds it: `4.2.0 `
/// put in front when Postfix sent `etrn_domain` (Postfix 2.3 and later
/// always do, even empty) and the template does not start with a digit
/// (postgrey's work-around for Exchange, which gives up on 4.7.1); then
/// the first `%s` is the seconds left and the first `%r` the recipient
/// domain (what follows the last `@`; the whole recipient without one).
pub fn expand_text(template: &str, remaining: u64, recipient: &str, dsn_420: bool) -> String {
    let mut text = String::with_capacity(template.len() + recipient.len() + 26);
    push_expanded_text(&mut text, template, remaining, recipient, dsn_420);
    text
}

/// [`expand_text`], appended to `out` in one pass over the template (no
/// intermediate strings). Replacing the first `%s` first and then the
/// first `%r` of the result finds the same `%r` as the template's first:
/// the seconds are digits, so they neither hold nor complete a `%r`.
pub(crate) fn push_expanded_text(
    out: &mut String,
    template: &str,
    remaining: u64,
    recipient: &str,
    dsn_420: bool,
) {
    if dsn_420 && !template.starts_with(|c: char| c.is_ascii_digit()) {
        out.push_str("4.2.0 ");
    }
    let domain = recipient.rsplit_once('@').map_or(recipient, |(_, d)| d);
    let seconds = template.find("%s");
    let domain_at = template.find("%r");
    let mut rest = 0;
    let mut put = |out: &mut String, at: usize, what: Option<u64>| {
        out.push_str(&template[rest..at]);
        match what {
            Some(n) => push_decimal(out, n),
            None => out.push_str(domain),
        }
        rest = at + 2;
    };
    match (seconds, domain_at) {
        (Some(s), Some(r)) if s < r => {
            put(out, s, Some(remaining));
            put(out, r, None);
        }
        (Some(s), Some(r)) => {
            put(out, r, None);
            put(out, s, Some(remaining));
        }
        (Some(s), None) => put(out, s, Some(remaining)),
        (None, Some(r)) => put(out, r, None),
        (None, None) => {}
    }
    out.push_str(&template[rest..]);
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
    fn pool_keys_are_the_triplet_keys_of_the_pool() {
        for (domain, rcpt) in [
            ("d.example", "r@x.example"),
            ("mx1.web.de", "Bob+Tag@R.Example"),
            ("12.example", "1234@x"),
            ("prvs=x=y.example", "a/b@c"),
            ("ünï.example", "ÜSER@x"),
        ] {
            for privacy in [false, true] {
                assert_eq!(
                    pool_key(domain, rcpt, privacy),
                    triplet_key("pool", &format!("@{domain}"), rcpt, privacy),
                    "{domain} {rcpt} {privacy}"
                );
            }
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
            normalize_sender("prvs=1234abcd=Bounce@Example.com"),
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
            expand_text("wait %s s for %r", 42, "u@dom.example", false),
            "wait 42 s for dom.example"
        );
    }

    /// postgrey 1.37's do_sender_substitutions, rule by rule, on senders
    /// where mxguard used to differ.
    #[test]
    fn sender_normalisation_is_postgrey_s() {
        for (sender, postgrey) in [
            // Whole numbers only (`\b\d+\b`): digits inside a word stay.
            ("user123@x.example", "user123@x.example"),
            ("a1b2@x.example", "a1b2@x.example"),
            ("bounce_42@x.example", "bounce_42@x.example"),
            ("42_x@x.example", "42_x@x.example"),
            ("bounce-42-x9@x.example", "bounce-#-x9@x.example"),
            ("12345@x.example", "#@x.example"),
            ("n.1.2@x.example", "n.#.#@x.example"),
            // Non-ASCII letters are no word characters to postgrey (bytes).
            ("j\u{f6}2@x.example", "j\u{f6}#@x.example"),
            // SRS is not postgrey's: only whole numbers change.
            (
                "SRS0=abCd=2Q=example.com=alice@fwd.example",
                "srs0=abcd=2q=example.com=alice@fwd.example",
            ),
            (
                "SRS0=hh=12=example.com=alice@fwd.example",
                "srs0=hh=#=example.com=alice@fwd.example",
            ),
            // Nor btv1= or msprvs1=.
            (
                "btv1==0123456789a==user@x.example",
                "btv1==0123456789a==user@x.example",
            ),
            (
                "msprvs1=17001abcde=bounces-99@x.example",
                "msprvs1=17001abcde=bounces-#@x.example",
            ),
            // prvs=: exactly three fields; the address is the third, or the
            // second when only the third looks like a tag (ten [0-9a-z]).
            ("prvs=0123456789=user@x.example", "user@x.example"),
            ("prvs=user=0123456789@x.example", "user@x.example"),
            (
                "prvs=0123456789=abcdefghij@x.example",
                "abcdefghij@x.example",
            ),
            ("prvs=short=user@x.example", "user@x.example"),
            ("prvs=a=b=c@x.example", "prvs=a=b=c@x.example"),
            ("prvs=tag@x.example", "prvs=tag@x.example"),
            // Trailing empty fields do not count (Perl's split).
            ("prvs=tag=user==@x.example", "user@x.example"),
            ("prvs==user@x.example", "user@x.example"),
            // The tag test is on the sender as sent, before lower-casing.
            ("prvs=user=0123456789@x.example", "user@x.example"),
            ("prvs=user=0123456ABC@x.example", "0123456abc@x.example"),
            ("PRVS=0123456789=user@x.example", "prvs=#=user@x.example"),
            // The extension goes from the first +, after the BATV rule.
            ("prvs=0123456789=list+tag@x.example", "list@x.example"),
            (
                "prvs=0123456789=list+tag=1@x.example",
                "prvs=#=list@x.example",
            ),
            ("a+b+c@x.example", "a@x.example"),
            ("+x@x.example", "@x.example"),
            // The local part ends at the first @.
            ("a@b@c.example", "a@b@c.example"),
            ("a1@2@c.example", "a1@2@c.example"),
            ("7@7.example", "#@7.example"),
            // Not an address: unchanged but for the case.
            ("NoAt+123", "noat+123"),
            // No trimming, no angle brackets removed: Postfix sends neither.
            ("<prvs=1234abcd=x@y.example>", "<prvs=1234abcd=x@y.example>"),
        ] {
            assert_eq!(normalize_sender(sender), postgrey, "{sender}");
        }
        // Lower case as Perl's lc on bytes: ASCII letters only.
        assert_eq!(normalize_sender("\u{c4}B@X.example"), "\u{c4}b@x.example");
        assert_eq!(
            triplet_key("192.0.2.0/24", "A@x", "\u{c4}B@Y.example", false),
            "grey:192.0.2.0/24/a@x/\u{c4}b@y.example"
        );
    }

    fn window_cfg() -> GreylistConfig {
        GreylistConfig {
            delay: Seconds(300),
            retry_window: Seconds(3600),
            ..Default::default()
        }
    }

    /// postgrey: a retry passes from `delay` to `retry_window` seconds after
    /// the first attempt, both included; later, first-seen starts over.
    #[test]
    fn the_retry_window_counts_from_the_first_attempt() {
        let c = window_cfg();
        let (_, e) = decide(None, 1000, &c);
        assert_eq!(
            e,
            Entry {
                first: 1000,
                last: 1000,
                passed: false
            }
        );
        let (d, e2) = decide(Some(e), 1000 + 3600, &c);
        assert_eq!(
            d,
            Decision::Pass {
                delayed: Some(3600)
            },
            "the last second"
        );
        assert_eq!(
            e2,
            Entry {
                first: 1000,
                last: 4600,
                passed: true
            }
        );
        let (d, e2) = decide(Some(e), 1000 + 3601, &c);
        assert_eq!(d, Decision::Greylist { remaining: 300 }, "a second late");
        assert_eq!(
            e2,
            Entry {
                first: 4601,
                last: 4601,
                passed: false
            },
            "first-seen starts over"
        );
        // Between delay and delay + window: too late (mxguard let it pass).
        let (d, _) = decide(Some(e), 1000 + 3600 + 300, &c);
        assert_eq!(d, Decision::Greylist { remaining: 300 });
        // Early retries do not move first-seen, and a retry after the window
        // restarts even after early retries.
        let (d, e) = decide(Some(e), 1299, &c);
        assert_eq!(d, Decision::Greylist { remaining: 1 });
        assert_eq!(
            e,
            Entry {
                first: 1000,
                last: 1299,
                passed: false
            }
        );
        let (d, _) = decide(Some(e), 1300, &c);
        assert_eq!(
            d,
            Decision::Pass { delayed: Some(300) },
            "delay to the second"
        );
        let (d, e) = decide(Some(e), 4601, &c);
        assert_eq!(d, Decision::Greylist { remaining: 300 });
        assert_eq!(e.first, 4601);
    }

    #[test]
    fn a_successful_triplet_ignores_the_retry_window() {
        let c = window_cfg();
        let passed = Entry {
            first: 1000,
            last: 1300,
            passed: true,
        };
        let (d, e) = decide(Some(passed), 1000 + 30 * 86400, &c);
        assert_eq!(d, Decision::Pass { delayed: None });
        assert_eq!(
            e,
            Entry {
                first: 1000,
                last: 1000 + 30 * 86400,
                passed: true
            }
        );
        // postgrey has no flag: last - first >= delay is a successful entry.
        let by_times = Entry {
            first: 1000,
            last: 1300,
            passed: false,
        };
        let (d, _) = decide(Some(by_times), 1000 + 30 * 86400, &c);
        assert_eq!(d, Decision::Pass { delayed: None });
        let not_yet = Entry {
            first: 1000,
            last: 1299,
            passed: false,
        };
        let (d, _) = decide(Some(not_yet), 1000 + 30 * 86400, &c);
        assert_eq!(d, Decision::Greylist { remaining: 300 });
    }

    #[test]
    fn stored_times_from_the_future_or_forged_are_taken_as_now() {
        let c = window_cfg();
        for e in [
            Entry {
                first: 5000,
                last: 5000,
                passed: false,
            },
            Entry {
                first: u64::MAX,
                last: 0,
                passed: false,
            },
            Entry {
                first: u64::MAX,
                last: u64::MAX,
                passed: true,
            },
            Entry {
                first: 4000,
                last: 0,
                passed: false,
            },
        ] {
            let now = 3000;
            let (d, stored) = decide(Some(e), now, &c);
            assert_eq!(d, Decision::Greylist { remaining: 300 }, "{e:?}");
            assert_eq!(
                stored,
                Entry {
                    first: now,
                    last: now,
                    passed: false
                },
                "{e:?}"
            );
            let (d, _) = decide(Some(stored), now + 300, &c);
            assert_eq!(d, Decision::Pass { delayed: Some(300) }, "{e:?}");
        }
        // A last-seen time before first-seen is no success.
        let odd = Entry {
            first: 3000,
            last: 0,
            passed: false,
        };
        assert_eq!(
            decide(Some(odd), 3100, &c).0,
            Decision::Greylist { remaining: 200 }
        );
    }

    #[test]
    fn a_zero_delay_still_defers_the_first_attempt() {
        let c = GreylistConfig {
            delay: Seconds(0),
            retry_window: Seconds(60),
            ..Default::default()
        };
        let (d, e) = decide(None, 100, &c);
        assert_eq!(d, Decision::Greylist { remaining: 0 });
        assert_eq!(
            decide(Some(e), 100, &c).0,
            Decision::Pass { delayed: Some(0) }
        );
    }

    /// postgrey's greylist text: `4.2.0 ` with Postfix 2.3+, first `%s` and
    /// first `%r` only, the domain after the last `@`.
    /// The one-pass expansion gives what replacing the first `%s`, then
    /// the first `%r` of the result, gives (postgrey's two substitutions).
    #[test]
    fn one_pass_expansion_is_the_two_substitutions() {
        fn two_steps(t: &str, secs: u64, rcpt: &str, dsn: bool) -> String {
            let mut text = String::new();
            if dsn && !t.starts_with(|c: char| c.is_ascii_digit()) {
                text.push_str("4.2.0 ");
            }
            text.push_str(t);
            let text = text.replacen("%s", &secs.to_string(), 1);
            let domain = rcpt.rsplit_once('@').map_or(rcpt, |(_, d)| d);
            text.replacen("%r", domain, 1)
        }
        let parts = ["%s", "%r", "%", "s", "r", "x", "%%", "4", " ", "é"];
        let mut templates = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for t in &templates {
                for p in parts {
                    next.push(format!("{t}{p}"));
                }
            }
            templates.extend(next);
        }
        for t in &templates {
            for (secs, rcpt) in [(0, "u@d.example"), (42, "%s@%r"), (7, "none")] {
                for dsn in [false, true] {
                    assert_eq!(
                        expand_text(t, secs, rcpt, dsn),
                        two_steps(t, secs, rcpt, dsn),
                        "{t:?} {secs} {rcpt:?} {dsn}"
                    );
                }
            }
        }
    }

    #[test]
    fn greylist_text_as_postgrey_builds_it() {
        let t = "Greylisted, see http://postgrey.schweikert.ch/help/%r.html";
        assert_eq!(
            expand_text(t, 300, "bob@rcpt.example", true),
            "4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/rcpt.example.html"
        );
        assert_eq!(
            expand_text(t, 300, "bob@rcpt.example", false),
            "Greylisted, see http://postgrey.schweikert.ch/help/rcpt.example.html"
        );
        assert_eq!(
            expand_text("450 4.7.1 wait %s", 12, "b@r", true),
            "450 4.7.1 wait 12",
            "a text with its own code is left alone"
        );
        assert_eq!(
            expand_text("%s %s %r %r", 7, "a@b@c.example", false),
            "7 %s c.example %r"
        );
        assert_eq!(
            expand_text("to %r", 7, "postmaster", false),
            "to postmaster"
        );
        assert_eq!(
            expand_text("to %r", 7, "u@d.example>", false),
            "to d.example>"
        );
        assert_eq!(
            expand_text("%r %s", 7, "u@%s.example", false),
            "%s.example 7"
        );
    }
}
