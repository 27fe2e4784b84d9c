//! mxguard-dns: the one DNS resolver every lookup goes through (PTR, A/AAAA,
//! MX, TXT, DNS lists, and the authentication protocols of `mxguard-auth`,
//! which borrow this resolver through [`Dns::resolver`]), with the name
//! servers, time-out and cache of `[dns]`, defaulting to the system's
//! resolv.conf. It only answers lookups: what a record means (SPF, DKIM,
//! DMARC) is `mxguard-auth`'s business.
//!
//! Answers are split three ways, because callers must treat them
//! differently: records found, a definite "no such name or record", and a
//! failure (time-out, SERVFAIL, refused) whose outcome the admin chooses.
//! Every lookup is bounded by an overall time-out: a slow server never
//! hangs a caller.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use mxguard_core::config::DnsConfig;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod front;
use front::{FrontCache, Hit};

/// At most this many PTR names of an address are followed (forward
/// lookups) when looking for a verified name: the limit RFC 7208 (4.6.4,
/// 5.5) sets for SPF's `ptr`, so a hostile PTR set of hundreds of names
/// costs no more than ten.
pub const MAX_PTR_NAMES: usize = 10;

/// A lookup that could not be answered: the answer is unknown, not "no".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFailure(pub String);

impl std::fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Found records (possibly none: the name or record type does not exist),
/// or a failure.
pub type DnsResult<T> = Result<Vec<T>, DnsFailure>;

/// A TXT record (its strings joined) longer than this is dropped as
/// hostile: real SPF, DKIM and DMARC records stay far below it.
pub const MAX_TXT_LEN: usize = 4096;

/// At most this many TXT records of one name are looked at.
pub const MAX_TXT_RECORDS: usize = 32;

#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    deadline: Duration,
    /// Answers asked again, in front of hickory's cache (see `front`).
    front: Arc<FrontCache>,
}

/// Parses `ip` or `ip:port` or `[v6]:port`.
fn parse_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("dns.nameservers: `{s}` is not an address like 127.0.0.1 or 127.0.0.1:5353")
        })
}

/// How long one lookup may take in all: every attempt's timeout, and one
/// more. Saturates rather than overflowing on values the config check
/// refuses (`attempts` above 5, `timeout` above 30s).
fn deadline_for(config: &DnsConfig) -> Duration {
    let tries = config.attempts.clamp(1, u32::MAX - 1) + 1;
    config.timeout.as_duration().saturating_mul(tries)
}

impl Dns {
    /// Builds the resolver. Must be called inside a tokio runtime.
    pub fn new(config: &DnsConfig) -> Result<Dns, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = config.timeout.as_duration();
        opts.attempts = config.attempts.max(1) as usize;
        opts.cache_size = u64::from(config.cache_size);
        // TTL floors and caps: hickory caches a negative answer for its
        // SOA's TTL, and for the floor when the server sends no SOA
        // (dnsmasq's `address=/#/`, some DNS lists); without a floor such
        // answers are not cached at all. Identical queries in flight at
        // once are sent once (hickory's name-server pool shares them).
        opts.positive_min_ttl = Some(config.positive_min_ttl.as_duration());
        opts.positive_max_ttl = Some(config.positive_max_ttl.as_duration());
        opts.negative_min_ttl = Some(config.negative_min_ttl.as_duration());
        opts.negative_max_ttl = Some(config.negative_max_ttl.as_duration());
        opts.ndots = 0;
        let builder = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration (/etc/resolv.conf): {e}; set [dns] nameservers"))?
        } else {
            let mut servers = Vec::new();
            for s in &config.nameservers {
                let addr = parse_server(s)?;
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                servers.push(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let resolver = builder
            .with_options(opts)
            .build()
            .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
        let deadline = deadline_for(config);
        let front = Arc::new(FrontCache::new(
            config.cache_size as usize,
            config.positive_max_ttl.as_duration(),
            config.negative_min_ttl.as_duration(),
            config.negative_max_ttl.as_duration(),
        ));
        Ok(Dns {
            resolver,
            deadline,
            front,
        })
    }

    /// The underlying resolver (same servers, time-outs, cache), for the
    /// protocol code of `mxguard-auth` that speaks hickory itself. Callers
    /// bound their own waits: see [`Dns::lookup_deadline`].
    pub fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    /// TXT records of a name, each record's strings joined without a
    /// separator (RFC 7208 3.3), lossily decoded. Records over
    /// [`MAX_TXT_LEN`] are dropped, and at most [`MAX_TXT_RECORDS`] kept.
    pub async fn txt(&self, name: &str) -> DnsResult<String> {
        Ok(txt_strings(
            &self.answer(name, RecordType::TXT).await?.records,
        ))
    }

    /// What `parse` makes of the TXT records of a name (as [`Dns::txt`]
    /// gives them), made once per cached answer and kept beside it: as
    /// long as the answer is kept and no longer (its TTL), nothing with
    /// `cache_size = 0`. For records read again and again (a sender's SPF
    /// record, its `_dmarc` record), parsing is what a cache hit would
    /// still cost. `parse` must depend on the records alone. A failure is
    /// never kept, as in the answer cache.
    pub async fn txt_parsed<T: Send + Sync + 'static>(
        &self,
        name: &str,
        parse: impl FnOnce(&[String]) -> T,
    ) -> Result<Arc<T>, DnsFailure> {
        let hit = self.answer(name, RecordType::TXT).await?;
        if let Some(done) = hit.parsed.and_then(|p| p.downcast::<T>().ok()) {
            return Ok(done);
        }
        let parsed = Arc::new(parse(&txt_strings(&hit.records)));
        self.front
            .attach(name, RecordType::TXT, &hit.records, parsed.clone());
        Ok(parsed)
    }

    /// Whether a name exists at all (RFC 8020): `false` only on NXDOMAIN;
    /// a name with no A record (NODATA) exists. DMARC's `np` rests on it.
    pub async fn name_exists(&self, name: &str) -> Result<bool, DnsFailure> {
        let name = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let lookup = tokio::time::timeout(
            self.deadline,
            self.resolver.lookup(name.as_str(), RecordType::A),
        )
        .await;
        match lookup {
            Err(_) => Err(DnsFailure(format!("DNS lookup of {name} A timed out"))),
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if e.is_nx_domain() => Ok(false),
            Ok(Err(e)) if e.is_no_records_found() => Ok(true),
            Ok(Err(e)) => Err(DnsFailure(format!("DNS lookup of {name} A failed: {e}"))),
        }
    }

    /// The records of `name` (none: no such name or record), from the
    /// front cache when it holds them, with what was made of them.
    async fn answer(&self, name: &str, rtype: RecordType) -> Result<Hit, DnsFailure> {
        if let Some(hit) = self.front.get(name, rtype, Instant::now()) {
            return Ok(hit);
        }
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        // Labels go on the wire as they are: a label may hold any octet
        // (RFC 2181 11; SPF macros make names with `:`, `/`, spaces). A
        // name that cannot be put on the wire (an empty or overlong label,
        // from a hostile record or macro) does not exist: no records.
        let labels = fqdn.trim_end_matches('.').split('.').map(str::as_bytes);
        let Ok(wire) = hickory_resolver::proto::rr::Name::from_labels(labels) else {
            return Ok(Hit::empty());
        };
        let lookup = tokio::time::timeout(self.deadline, self.resolver.lookup(wire, rtype)).await;
        match lookup {
            Err(_) => Err(DnsFailure(format!(
                "DNS lookup of {fqdn} {rtype} timed out"
            ))),
            Ok(Err(e)) if e.is_no_records_found() => {
                let negative_ttl = match &e {
                    hickory_resolver::net::NetError::Dns(
                        hickory_resolver::net::DnsError::NoRecordsFound(n),
                    ) => n.negative_ttl,
                    _ => None,
                };
                Ok(Hit {
                    records: self.front.none(name, rtype, negative_ttl, Instant::now()),
                    parsed: None,
                })
            }
            Ok(Err(e)) => Err(DnsFailure(format!(
                "DNS lookup of {fqdn} {rtype} failed: {e}"
            ))),
            Ok(Ok(l)) => {
                let records: Arc<[RData]> = l
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                self.front.found(
                    name,
                    rtype,
                    records.clone(),
                    l.valid_until(),
                    Instant::now(),
                );
                Ok(Hit {
                    records,
                    parsed: None,
                })
            }
        }
    }

    pub async fn a(&self, name: &str) -> DnsResult<Ipv4Addr> {
        Ok(self
            .answer(name, RecordType::A)
            .await?
            .records
            .iter()
            .filter_map(|r| match r {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    pub async fn aaaa(&self, name: &str) -> DnsResult<std::net::Ipv6Addr> {
        Ok(self
            .answer(name, RecordType::AAAA)
            .await?
            .records
            .iter()
            .filter_map(|r| match r {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    /// A and AAAA addresses of a name.
    pub async fn addresses(&self, name: &str) -> DnsResult<IpAddr> {
        let (v4, v6) = tokio::join!(
            self.answer(name, RecordType::A),
            self.answer(name, RecordType::AAAA)
        );
        let mut out = Vec::new();
        let mut failure = None;
        for r in [v4, v6] {
            match r {
                Ok(hit) => out.extend(hit.records.iter().filter_map(|r| match r {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    pub async fn mx(&self, name: &str) -> DnsResult<String> {
        Ok(self
            .answer(name, RecordType::MX)
            .await?
            .records
            .iter()
            .filter_map(|r| match r {
                // The labels as they are (`to_string` escapes `:`, spaces...):
                // they are asked again as they are (see `answer`).
                RData::MX(mx) => Some(
                    mx.exchange
                        .iter()
                        .map(String::from_utf8_lossy)
                        .collect::<Vec<_>>()
                        .join("."),
                ),
                _ => None,
            })
            .collect())
    }

    /// Host names of an address (PTR).
    pub async fn ptr(&self, ip: IpAddr) -> DnsResult<String> {
        Ok(self
            .answer(&reverse_name(ip), RecordType::PTR)
            .await?
            .records
            .iter()
            .filter_map(|r| match r {
                RData::PTR(p) => Some(p.0.to_string().trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect())
    }

    /// Whether a domain can receive mail or be resolved: any A, AAAA or MX.
    pub async fn domain_exists(&self, name: &str) -> Result<bool, DnsFailure> {
        let (mx, addrs) = tokio::join!(self.mx(name), self.addresses(name));
        match (mx, addrs) {
            (Ok(m), _) if !m.is_empty() => Ok(true),
            (_, Ok(a)) if !a.is_empty() => Ok(true),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(false),
        }
    }

    /// The cache's bounds, for what other crates keep of its answers
    /// (mxguard-auth's parsed DKIM keys): at most this many entries (0:
    /// no caching), a found answer no longer than this (`positive_max_ttl`).
    pub fn cache_limits(&self) -> (usize, Duration) {
        (self.front.capacity(), self.front.positive_max())
    }

    /// How long one lookup may take at most: `timeout` × (`attempts` + 1).
    pub fn lookup_deadline(&self) -> Duration {
        self.deadline
    }

    /// The forward-confirmed host name of `ip`: a PTR name whose A/AAAA
    /// records include `ip`. `Ok(None)` when there is none.
    ///
    /// Bounded whatever the answers: only the first [`MAX_PTR_NAMES`] PTR
    /// names are followed, and their forward lookups run side by side, so
    /// the whole takes at most two lookups' time. The first confirmed name
    /// in answer order wins; a failure counts only when no name confirms.
    pub async fn verified_name(&self, ip: IpAddr) -> Result<Option<String>, DnsFailure> {
        let names = self.ptr(ip).await?;
        if names.len() > MAX_PTR_NAMES {
            tracing::debug!(
                %ip,
                names = names.len(),
                "DNS: more than {MAX_PTR_NAMES} PTR names; following the first {MAX_PTR_NAMES}"
            );
        }
        let mut lookups = tokio::task::JoinSet::new();
        for (i, name) in names.into_iter().take(MAX_PTR_NAMES).enumerate() {
            let dns = self.clone();
            lookups.spawn(async move {
                let addrs = dns.addresses(&name).await;
                (i, name, addrs)
            });
        }
        let mut confirmed: Option<(usize, String)> = None;
        let mut failure = None;
        // Dropping the set (a caller's deadline) aborts the lookups left.
        while let Some(done) = lookups.join_next().await {
            let Ok((i, name, addrs)) = done else {
                continue;
            };
            match addrs {
                Ok(a) if a.contains(&ip) => {
                    if confirmed.as_ref().is_none_or(|(j, _)| i < *j) {
                        confirmed = Some((i, name));
                    }
                }
                Ok(_) => {}
                Err(e) => failure = Some(e),
            }
        }
        match (confirmed, failure) {
            (Some((_, name)), _) => Ok(Some(name)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }
}

/// TXT records as [`Dns::txt`] gives them: each record's strings joined,
/// lossily decoded, over-long ones dropped, at most [`MAX_TXT_RECORDS`].
fn txt_strings(records: &[RData]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            RData::TXT(t) => {
                let len: usize = t.txt_data.iter().map(|p| p.len()).sum();
                (len <= MAX_TXT_LEN).then(|| {
                    t.txt_data
                        .iter()
                        .map(|p| String::from_utf8_lossy(p))
                        .collect::<String>()
                })
            }
            _ => None,
        })
        .take(MAX_TXT_RECORDS)
        .collect()
}

/// `4.3.2.1.in-addr.arpa` / nibble form for IPv6.
pub fn reverse_name(ip: IpAddr) -> String {
    format!(
        "{}.{}",
        reversed(ip),
        if ip.is_ipv4() {
            "in-addr.arpa"
        } else {
            "ip6.arpa"
        }
    )
}

/// The address part of a DNS list query: octets or nibbles, reversed.
pub fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v) => {
            let mut parts = Vec::with_capacity(32);
            for b in v.octets().iter().rev() {
                parts.push(format!("{:x}", b & 0xf));
                parts.push(format!("{:x}", b >> 4));
            }
            parts.join(".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.7".parse().unwrap()),
            "7.2.0.192.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0"), "{v6}");
        assert!(v6.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
        assert_eq!(parse_server("127.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(parse_server("::1").unwrap().port(), 53);
        assert!(parse_server("dns.example").is_err());
    }

    #[test]
    fn deadline_never_overflows() {
        use mxguard_core::config::Millis;
        let cfg = |timeout, attempts| DnsConfig {
            timeout: Millis(timeout),
            attempts,
            ..DnsConfig::default()
        };
        assert_eq!(deadline_for(&cfg(2000, 2)), Duration::from_secs(6));
        assert_eq!(deadline_for(&cfg(2000, 0)), Duration::from_secs(4));
        assert_eq!(
            deadline_for(&cfg(2000, u32::MAX)),
            Duration::from_millis(2000 * u64::from(u32::MAX))
        );
        assert_eq!(deadline_for(&cfg(u64::MAX, u32::MAX)), Duration::MAX);
    }
}
