//! `[policy]`, `[greylist]` and `[dns]`: the policy server, postgrey-compatible
//! greylisting and the shared DNS resolver.

use super::units::{Millis, Seconds};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use toml::Spanned;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub enabled: bool,
    /// `host:port`, or an absolute path for a unix socket.
    pub listen: String,
    /// Permissions of a unix socket, octal, e.g. "0666".
    pub socket_mode: String,
    /// Idle connections are closed after this long (Postfix reconnects).
    pub idle_timeout: Seconds,
    /// Networks that `permit_mynetworks` accepts.
    pub mynetworks: Vec<String>,
    /// What a DNS failure in a DNS-based restriction leads to: `dunno`
    /// (skip the restriction) or `defer` (try again later).
    pub dns_failure: DnsFailure,
    /// What a store that cannot be read or written leads to in greylisting,
    /// `reject_banned_client` and rate limits: `dunno` (let the request
    /// through unchecked, as a daemon with no state would) or `defer` (try
    /// again later). The same whether the fault began before or after start.
    pub store_failure: StoreFailure,
    /// At most this many Postfix connections at once. At the cap, the
    /// connection idle longest is closed to make room (Postfix reconnects
    /// without a warning); when none is idle, the new one is closed at once
    /// (Postfix tries once more, then answers
    /// `smtpd_policy_service_default_action`, 451 4.3.5 by default). Read
    /// at start; lowered (with a warning) to fit the open-file limit.
    pub max_connections: usize,
    /// At most this many greylist updates answered before they are queued
    /// in the store (triplets, pool records, auto-whitelist counts). Once
    /// queued they are committed as relaxed writes, made durable within
    /// about a second: a crash can lose that second, which only costs the
    /// sender one more deferral. Past the cap, a request waits for its own
    /// write. 0: strict, every answer waits until its write is on disk.
    pub max_pending_writes: usize,
    pub restrictions: RestrictionLists,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            enabled: true,
            listen: "127.0.0.1:10023".into(),
            socket_mode: "0666".into(),
            idle_timeout: Seconds(300),
            mynetworks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            dns_failure: DnsFailure::Dunno,
            store_failure: StoreFailure::Dunno,
            max_connections: 500,
            max_pending_writes: 1024,
            restrictions: RestrictionLists::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsFailure {
    Dunno,
    Defer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreFailure {
    Dunno,
    Defer,
}

/// One list per protocol stage, in Postfix's vocabulary, evaluated in order
/// like `smtpd_*_restrictions`; the first decisive result wins. A request is
/// judged by the list of its `protocol_state`, so put mxguard's
/// `check_policy_service` in the Postfix restriction list of that stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestrictionLists {
    /// CONNECT (smtpd_client_restrictions).
    pub client: Vec<Spanned<String>>,
    /// HELO/EHLO (smtpd_helo_restrictions).
    pub helo: Vec<Spanned<String>>,
    /// MAIL FROM (smtpd_sender_restrictions).
    pub sender: Vec<Spanned<String>>,
    /// RCPT TO (smtpd_recipient_restrictions): where postgrey sits.
    pub recipient: Vec<Spanned<String>>,
    /// DATA (smtpd_data_restrictions).
    pub data: Vec<Spanned<String>>,
    /// END-OF-MESSAGE (smtpd_end_of_data_restrictions).
    pub end_of_data: Vec<Spanned<String>>,
}

impl Default for RestrictionLists {
    fn default() -> Self {
        let s = |v: &str| Spanned::new(0..0, v.to_string());
        RestrictionLists {
            client: vec![],
            helo: vec![],
            sender: vec![],
            recipient: vec![
                s("reject_banned_client"),
                s("permit_mynetworks"),
                s("greylist"),
            ],
            data: vec![],
            end_of_data: vec![],
        }
    }
}

/// Greylisting, with postgrey's options and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreylistConfig {
    /// How long a new triplet is deferred (0: any retry passes).
    pub delay: Seconds,
    /// Triplets unseen for this long are forgotten; must be longer than
    /// `delay`.
    pub max_age: Seconds,
    /// A retry later than this after the first attempt starts over (as in
    /// postgrey, counted from the first attempt, delay included); longer
    /// than `delay`.
    pub retry_window: Seconds,
    /// Greylist by client network (IPv4 /24, IPv6 /64) rather than address.
    pub lookup_by_subnet: bool,
    /// The network prefix for `lookup_by_subnet`, 0 to 32.
    pub ipv4_prefix: u8,
    /// The network prefix for `lookup_by_subnet`, 0 to 128.
    pub ipv6_prefix: u8,
    /// A client that passed this many times is no longer greylisted (0: never).
    pub auto_whitelist_clients: u32,
    /// The answer to a greylisted request (postgrey's default,
    /// `DEFER_IF_PERMIT`; `DEFER` defers even mail Postfix would reject).
    pub greylist_action: String,
    /// Text of that answer: the first `%s` is the seconds left, the first
    /// `%r` the recipient domain; `4.2.0 ` is put in front unless it starts
    /// with a digit (as postgrey does with Postfix 2.3 and later).
    pub greylist_text: String,
    /// Add `X-Greylist:` to mail that was delayed (PREPEND by the policy
    /// server; added by the milter after score greylisting).
    pub x_greylist_header: bool,
    /// Store triplets hashed, not in clear.
    pub privacy: bool,
    /// postgrey-format whitelist files.
    pub whitelist_clients: Vec<Spanned<PathBuf>>,
    pub whitelist_recipients: Vec<Spanned<PathBuf>>,
    /// Let a retry from another IP of the same sender's pool pass when that
    /// IP is SPF-authorised for the sender domain or shares its verified
    /// PTR domain with the first.
    pub sender_pools: bool,
    /// Score greylisting: a message the scan scores in the greylist band
    /// (`[actions] greylist` up to `add_header`) is deferred at its first
    /// attempt and delivered, with `X-Greylist:`, when retried after
    /// `delay` (within `retry_window`; remembered `max_age`). Off: such a
    /// message is answered 451 at every attempt, whatever came before.
    pub score_greylisting: bool,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            delay: Seconds(300),
            max_age: Seconds(35 * 86400),
            retry_window: Seconds(2 * 86400),
            lookup_by_subnet: true,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            auto_whitelist_clients: 5,
            greylist_action: "DEFER_IF_PERMIT".into(),
            greylist_text: "Greylisted, see http://postgrey.schweikert.ch/help/%r.html".into(),
            x_greylist_header: true,
            privacy: false,
            whitelist_clients: vec![],
            whitelist_recipients: vec![],
            sender_pools: true,
            score_greylisting: true,
        }
    }
}

impl GreylistConfig {
    /// Checks what the types alone cannot. Returns `(key path, message)`
    /// pairs; empty when all is well.
    ///
    /// Only settings that stop greylisted mail from ever passing are refused.
    /// A zero `delay` is fine: the first attempt is still deferred, and any
    /// retry passes.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut err =
            |key: &str, message: String| errors.push((format!("greylist.{key}"), message));
        let (delay, max_age) = (self.delay.0, self.max_age.0);
        if max_age == 0 {
            err(
                "max_age",
                "0 forgets every triplet at once, so each retry is greylisted again and \
                 mail never passes; postgrey's default is \"35d\""
                    .into(),
            );
        } else if max_age <= delay {
            err(
                "max_age",
                format!(
                    "{max_age} seconds forgets a triplet before its delay ({delay} seconds) is \
                     over, so the retry is greylisted again and mail never passes; make it \
                     longer than delay (postgrey's default is \"35d\")"
                ),
            );
        }
        let window = self.retry_window.0;
        if window <= delay {
            err(
                "retry_window",
                format!(
                    "{window} seconds is not longer than delay ({delay} seconds): a retry \
                     passes only from delay to retry_window seconds after the first attempt \
                     (as in postgrey), so mail practically never passes; postgrey's default \
                     is \"2d\""
                ),
            );
        }
        for (key, v, max, family, default) in [
            ("ipv4_prefix", self.ipv4_prefix, 32, "IPv4", 24),
            ("ipv6_prefix", self.ipv6_prefix, 128, "IPv6", 64),
        ] {
            if v > max {
                err(
                    key,
                    format!(
                        "{v} is outside 0..={max}: an {family} prefix has at most {max} bits \
                         (postgrey's default is {default})"
                    ),
                );
            }
        }
        errors
    }
}

/// The one resolver every DNS lookup goes through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// `ip` or `ip:port`; empty means the system's resolv.conf.
    pub nameservers: Vec<String>,
    /// How long to wait for one name server's answer before the next try:
    /// more than 0, at most 30 seconds (resolv.conf's cap). A bare number
    /// is seconds: write "500ms" for milliseconds.
    pub timeout: Millis,
    /// How many times a query is sent before giving up, 1 to 5 (as
    /// resolv.conf's `attempts:`).
    pub attempts: u32,
    /// Cached answers; 0 disables the cache.
    pub cache_size: u32,
    /// Shortest time a found record is cached, whatever its TTL says (0:
    /// the TTL as served).
    pub positive_min_ttl: Seconds,
    /// Longest time a found record is cached, whatever its TTL says.
    pub positive_max_ttl: Seconds,
    /// Shortest time a "no such name" or "no such record" answer is
    /// cached. Servers that answer NXDOMAIN/NODATA without an SOA give no
    /// TTL at all, and without this floor every repeat of the question
    /// (each `_dmarc.<label>` of a DMARC tree walk, each DKIM key of a
    /// bulk sender) would go to the wire again.
    pub negative_min_ttl: Seconds,
    /// Longest time a negative answer is cached (RFC 2308 suggests at
    /// most a few hours), so a record published later is seen.
    pub negative_max_ttl: Seconds,
}

/// resolv.conf(5) silently caps `timeout:` at 30 seconds and `attempts:`
/// at 5; larger values here are refused instead.
const DNS_MAX_TIMEOUT_MS: u64 = 30_000;
const DNS_MAX_ATTEMPTS: u32 = 5;
/// RFC 8767's cap on how long a record may be cached: one week.
const DNS_MAX_TTL_SECS: u64 = 604_800;

impl DnsConfig {
    /// Checks what the types alone cannot. Returns `(key path, message)`
    /// pairs; empty when all is well.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut err = |key: &str, message: String| errors.push((format!("dns.{key}"), message));
        if !(1..=DNS_MAX_ATTEMPTS).contains(&self.attempts) {
            err(
                "attempts",
                format!(
                    "{} is outside 1..={DNS_MAX_ATTEMPTS}: it is how many times a query is \
                     sent before giving up (resolv.conf's attempts:, default 2)",
                    self.attempts
                ),
            );
        }
        for (kind, min_key, min, max_key, max) in [
            (
                "found records",
                "positive_min_ttl",
                self.positive_min_ttl.0,
                "positive_max_ttl",
                self.positive_max_ttl.0,
            ),
            (
                "negative answers",
                "negative_min_ttl",
                self.negative_min_ttl.0,
                "negative_max_ttl",
                self.negative_max_ttl.0,
            ),
        ] {
            if max > DNS_MAX_TTL_SECS {
                err(
                    max_key,
                    format!(
                        "{max} seconds is longer than the week a record may be cached at most \
                         (RFC 8767); write a time like \"1d\" or \"1h\""
                    ),
                );
            } else if min > max {
                err(
                    min_key,
                    format!(
                        "{min} seconds is longer than {max_key} ({max} seconds): {kind} would be \
                         cached longer than the cap; lower {min_key} or raise {max_key}"
                    ),
                );
            }
        }
        let ms = self.timeout.0;
        if ms == 0 {
            err(
                "timeout",
                "0 gives up on every query at once; write a time like \"2s\" or \"500ms\"".into(),
            );
        } else if ms > DNS_MAX_TIMEOUT_MS {
            let secs = ms / 1000;
            err(
                "timeout",
                format!(
                    "{secs} seconds is longer than the 30 seconds a resolver waits at most \
                     (resolv.conf's cap); a bare number means seconds, so for milliseconds \
                     write \"{secs}ms\""
                ),
            );
        }
        errors
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: vec![],
            timeout: Millis(2000),
            attempts: 2,
            cache_size: 4096,
            positive_min_ttl: Seconds(0),
            positive_max_ttl: Seconds(86_400),
            negative_min_ttl: Seconds(60),
            negative_max_ttl: Seconds(3_600),
        }
    }
}
