//! The restriction engine: one request, the list of its stage, in order;
//! the first decisive result is the answer.

use crate::access::AccessMap;
use crate::greylist::{self, Decision, Entry};
use crate::protocol::{Request, Stage};
use crate::whitelist::Whitelist;
use mxguard_core::config::{
    Config, ConfigError, DnsFailure, GreylistConfig, LoadedConfig, StoreFailure,
};
use mxguard_core::iptable::{IpTable, parse_network};
use mxguard_core::maps::{LineError, MapFile, MapLimits};
use mxguard_core::restriction::{AccessTarget, DnsListTarget, RateKey, ReplyFilter, Restriction};
use mxguard_dns::{Dns, reversed};
use mxguard_message::domain::organisational;
use mxguard_net::burst::{Burst, Report};
use mxguard_store::{Clock, Durability, Store, SystemClock};
use std::collections::{HashMap, hash_map};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

/// Counters the server exposes (and tests read).
#[derive(Default, Debug)]
pub struct Stats {
    pub requests: AtomicU64,
    pub greylisted: AtomicU64,
    pub rejected: AtomicU64,
    pub dns_errors: AtomicU64,
    pub store_errors: AtomicU64,
}

/// The outcome of one restriction.
enum Step {
    /// Go on with the next restriction.
    Next,
    /// Go on; answer this if nothing decides (a PREPEND, WARN or INFO,
    /// which Postfix treats as non-decisive too). The first one is kept.
    Pending(String),
    /// The answer.
    Decide(String),
}

pub struct Engine {
    lists: HashMap<Stage, List>,
    maps: HashMap<PathBuf, MapFile<AccessMap>>,
    whitelist_clients: Vec<MapFile<Whitelist>>,
    whitelist_recipients: Vec<MapFile<Whitelist>>,
    mynetworks: IpTable<()>,
    greylist: GreylistConfig,
    dns_failure: DnsFailure,
    store_failure: StoreFailure,
    dns: Option<Dns>,
    store: Arc<dyn Store>,
    /// Whether the store works, and its faults counted per burst.
    health: Arc<StoreHealth>,
    /// Writes on their way to the store, read before it, so a request that
    /// follows at once sees them: the newest value of each key, kept until
    /// that value has landed, and the queue one flushing task writes them
    /// from. At most `max_pending` keys; past it a request waits for its
    /// writes.
    pending: Arc<PendingMap>,
    max_pending: usize,
    /// Stamps each pending value, so a write task can tell whether a newer
    /// value came while it was writing.
    write_seq: AtomicU64,
    hostname: String,
    /// Greylisting, rate-limit buckets and header dates go by this clock
    /// (the system's, or a hand-moved one in tests; give the store the same).
    clock: Arc<dyn Clock>,
    pub stats: Arc<Stats>,
    /// Where rejects and rate-limit hits are told, by client address (the
    /// ban engine's jails count them); the policy crate knows nothing more
    /// of who listens.
    events: Option<EventHook>,
}

/// Receives one of the engine's own events: `policy_reject` (a restriction
/// rejected the client) or `rate_limit` (a rate limit's action was taken),
/// with the client's address. Called inline: it must not block.
pub type EventHook = Arc<dyn Fn(&'static str, IpAddr) + Send + Sync>;

/// How long a request waits for its own writes past `max_pending_writes`
/// before it is answered by `store_failure`. Postfix waits 100 s
/// (`smtpd_policy_service_timeout`) for the whole answer.
pub const WRITE_WAIT: Duration = Duration::from_secs(5);

/// How long the flushing task lets write-behind values gather before it
/// writes them as one round (relaxed mode only). One store write per round
/// instead of one per request or two: at a steady rate, a larger round
/// means fewer commits, fewer writer-thread and task wake-ups per request,
/// and B-tree pages copied once for the many keys a round puts in them.
/// The round starts at once when a quarter of `max_pending_writes` is
/// queued or a request waits for its write: the keys being written count
/// against the cap too, so rounds are kept well below it and requests do
/// not reach it and wait. A crash can lose what is queued, as before: at
/// most `max_pending_writes` keys, each costing one more deferral of a
/// retry, never a message.
pub const WRITE_GATHER: Duration = Duration::from_millis(5);

/// Whether the store can be written, from the outcome of the last write;
/// its errors are logged once per burst.
struct StoreHealth {
    /// The last write failed (or did not finish in time): until one
    /// succeeds, a greylisting that needs a new record answers by
    /// `store_failure`, since that record could never be kept.
    failing: AtomicBool,
    /// A fault was logged and no write has landed since.
    faulty: AtomicBool,
    faults: std::sync::Mutex<Burst>,
    stats: Arc<Stats>,
    /// The configured answer, for the log.
    answer: StoreFailure,
}

impl StoreHealth {
    /// A write failed: new records cannot be kept.
    fn write_failed(&self, e: &dyn std::fmt::Display) {
        self.failing.store(true, Ordering::Release);
        self.failed(e);
    }

    /// A read (or a write) failed.
    fn failed(&self, e: &dyn std::fmt::Display) {
        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
        self.faulty.store(true, Ordering::Release);
        let report = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .fault();
        let answer = match self.answer {
            StoreFailure::Dunno => "dunno: checks that need it let requests through",
            StoreFailure::Defer => "defer: checks that need it answer try again later",
        };
        match report {
            Report::First => tracing::error!(
                "store: {e}; until it works again, policy.store_failure = {answer} (further \
                 errors counted, reported once a minute)"
            ),
            Report::Ongoing { count, since } => tracing::error!(
                store_errors = count,
                "store: still failing, {count} errors in {}s; last: {e}",
                since.as_secs()
            ),
            Report::Quiet => {}
        }
    }

    /// A write landed: the store works.
    fn wrote(&self) {
        self.failing.store(false, Ordering::Release);
        if !self.faulty.swap(false, Ordering::AcqRel) {
            return;
        }
        let ended = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        if let Some(ended) = ended {
            tracing::warn!(
                store_errors = ended.count,
                "store: working again after {} errors in {:.1}s",
                ended.count,
                ended.lasted.as_secs_f64()
            );
        }
    }

    fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }
}

impl Engine {
    /// Builds the engine: parses the lists and loads every file they name.
    /// `dns` is `None` only where no restriction needs it.
    pub fn new(
        loaded: &LoadedConfig,
        store: Arc<dyn Store>,
        dns: Option<Dns>,
    ) -> Result<(Engine, Vec<LineError>), Vec<ConfigError>> {
        let config: &Config = &loaded.config;
        let limits = MapLimits::of(&config.scan);
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut lists = HashMap::new();
        let mut maps = HashMap::new();
        let r = &config.policy.restrictions;
        for (stage, name, list) in [
            (Stage::Connect, "client", &r.client),
            (Stage::Helo, "helo", &r.helo),
            (Stage::Mail, "sender", &r.sender),
            (Stage::Rcpt, "recipient", &r.recipient),
            (Stage::Data, "data", &r.data),
            (Stage::EndOfMessage, "end_of_data", &r.end_of_data),
        ] {
            let mut parsed = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let key = format!("policy.restrictions.{name}[{i}]");
                match Restriction::parse(item.get_ref()) {
                    Ok(res) => {
                        if let Restriction::CheckAccess { map, .. } = &res
                            && !maps.contains_key(map)
                        {
                            match MapFile::<AccessMap>::load(map, limits) {
                                Ok((m, w)) => {
                                    warnings.extend(w);
                                    maps.insert(map.clone(), m);
                                }
                                Err(e) => errors.push(loaded.error_at(Some(item.span()), &key, &e)),
                            }
                        }
                        parsed.push(res);
                    }
                    Err(e) => errors.push(loaded.error_at(Some(item.span()), &key, &e)),
                }
            }
            lists.insert(stage, List::new(parsed));
        }
        let mut load_wl = |files: &Vec<toml::Spanned<PathBuf>>, key: &str| {
            let mut out = Vec::new();
            for (i, f) in files.iter().enumerate() {
                match MapFile::<Whitelist>::load(f.get_ref(), limits) {
                    Ok((m, w)) => {
                        warnings.extend(w);
                        out.push(m);
                    }
                    Err(e) => errors.push(loaded.error_at(
                        Some(f.span()),
                        &format!("greylist.{key}[{i}]"),
                        &e,
                    )),
                }
            }
            out
        };
        let whitelist_clients = load_wl(&config.greylist.whitelist_clients, "whitelist_clients");
        let whitelist_recipients = load_wl(
            &config.greylist.whitelist_recipients,
            "whitelist_recipients",
        );
        let mut mynetworks = IpTable::default();
        for n in &config.policy.mynetworks {
            match parse_network(n) {
                Ok(net) => mynetworks.insert(net, ()),
                Err(e) => errors.push(loaded.error_at(None, "policy.mynetworks", &e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let stats = Arc::new(Stats::default());
        let health = Arc::new(StoreHealth {
            failing: AtomicBool::new(false),
            faulty: AtomicBool::new(false),
            faults: Default::default(),
            stats: stats.clone(),
            answer: config.policy.store_failure,
        });
        let hostname = std::fs::read_to_string("/etc/mailname")
            .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Ok((
            Engine {
                lists,
                maps,
                whitelist_clients,
                whitelist_recipients,
                mynetworks,
                greylist: config.greylist.clone(),
                dns_failure: config.policy.dns_failure,
                store_failure: config.policy.store_failure,
                dns,
                store,
                health,
                pending: Arc::default(),
                max_pending: config.policy.max_pending_writes,
                write_seq: AtomicU64::new(0),
                hostname,
                clock: Arc::new(SystemClock),
                stats,
                events: None,
            },
            warnings,
        ))
    }

    /// The engine with another clock (tests move time by hand with it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.clock = clock;
        self
    }

    /// The engine telling its rejects and rate-limit hits to `hook`.
    pub fn with_events(mut self, hook: EventHook) -> Engine {
        self.events = Some(hook);
        self
    }

    /// Tells the hook of an event by this request's client, if it has a
    /// valid address.
    fn report(&self, kind: &'static str, req: &Request) {
        if let Some(hook) = &self.events
            && let Ok(ip) = req.get("client_address").parse::<IpAddr>()
        {
            hook(kind, ip);
        }
    }

    /// Unix seconds by the engine's clock.
    fn now(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Whether any list uses DNS, so the server knows to build a resolver.
    pub fn needs_dns(config: &Config) -> bool {
        let r = &config.policy.restrictions;
        [
            &r.client,
            &r.helo,
            &r.sender,
            &r.recipient,
            &r.data,
            &r.end_of_data,
        ]
        .iter()
        .flat_map(|l| l.iter())
        .filter_map(|s| Restriction::parse(s.get_ref()).ok())
        .any(|r| {
            matches!(
                r,
                Restriction::RejectUnknownClientHostname
                    | Restriction::RejectUnknownReverseClientHostname
                    | Restriction::RejectUnknownHeloHostname
                    | Restriction::RejectUnknownSenderDomain
                    | Restriction::DnsList { .. }
            ) || (matches!(r, Restriction::Greylist) && config.greylist.sender_pools)
        })
    }

    /// Answers one request: the text after `action=`.
    pub async fn decide(&self, req: &Request) -> String {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let Some(list) = self.lists.get(&req.stage()) else {
            return "DUNNO".into();
        };
        let mut pending: Option<String> = None;
        // The greylist state read with the ban record, for the greylist
        // restriction later in this list.
        let mut read_ahead: Option<GreyRead> = None;
        for (i, r) in list.items.iter().enumerate() {
            let step = match r {
                Restriction::RejectBannedClient if list.ban_reads_greylist == Some(i) => {
                    self.banned_and_greylist_state(req, &mut read_ahead).await
                }
                Restriction::Greylist => self.greylist(req, read_ahead.take()).await,
                r => self.apply(r, req).await,
            };
            match step {
                Step::Next => {}
                Step::Pending(a) => {
                    pending.get_or_insert(a);
                }
                Step::Decide(answer) => {
                    let first = answer.split_whitespace().next().unwrap_or("");
                    let rejected = first.eq_ignore_ascii_case("REJECT") || first.starts_with('5');
                    if rejected {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    // A banned client's own refusals do not count again.
                    match r {
                        Restriction::RateLimit { .. } => self.report("rate_limit", req),
                        Restriction::RejectBannedClient => {}
                        _ if rejected => self.report("policy_reject", req),
                        _ => {}
                    }
                    return answer;
                }
            }
        }
        pending.unwrap_or_else(|| "DUNNO".into())
    }

    fn dns_failed(&self, what: &str, e: &mxguard_dns::DnsFailure) -> Step {
        self.stats.dns_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{what}: {e}");
        match self.dns_failure {
            DnsFailure::Dunno => Step::Next,
            DnsFailure::Defer => Step::Decide(format!(
                "DEFER_IF_PERMIT 4.4.3 {what}: temporary DNS failure, try again later"
            )),
        }
    }

    fn access_answer(text: &str) -> Step {
        let first = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match first.as_str() {
            "DUNNO" => Step::Next,
            // Never answer OK to Postfix: in smtpd_recipient_restrictions it
            // would skip reject_unauth_destination. A whitelisted client
            // ends mxguard's list, and Postfix's own list goes on.
            "OK" | "PERMIT" => Step::Decide("DUNNO".into()),
            "WARN" | "INFO" | "PREPEND" => Step::Pending(text.to_string()),
            _ => Step::Decide(text.to_string()),
        }
    }

    async fn apply(&self, r: &Restriction, req: &Request) -> Step {
        match r {
            Restriction::Permit => Step::Decide("DUNNO".into()),
            Restriction::Dunno => Step::Next,
            Restriction::Reject(t) => Step::Decide(
                format!("REJECT {}", t.as_deref().unwrap_or("Access denied"))
                    .trim()
                    .to_string(),
            ),
            // Postfix's words: `defer` defers at once, `defer_if_permit`
            // only if nothing later in Postfix's list rejects.
            Restriction::Defer(t) => Step::Decide(format!(
                "DEFER {}",
                t.as_deref().unwrap_or("Try again later")
            )),
            Restriction::DeferIfPermit(t) => Step::Decide(format!(
                "DEFER_IF_PERMIT {}",
                t.as_deref().unwrap_or("Try again later")
            )),
            Restriction::PermitMynetworks => match req.client_ip() {
                Some(ip) if self.mynetworks.lookup(ip).is_some() => Step::Decide("DUNNO".into()),
                _ => Step::Next,
            },
            Restriction::PermitSaslAuthenticated => {
                if req.sasl_username().is_empty() {
                    Step::Next
                } else {
                    Step::Decide("DUNNO".into())
                }
            }
            Restriction::CheckAccess { target, map } => {
                let Some(m) = self.maps.get(map) else {
                    return Step::Next;
                };
                let m = m.get();
                let found = match target {
                    // Postfix looks up the host name (and parents) first, then the address.
                    AccessTarget::Client => req
                        .client_name()
                        .and_then(|n| m.lookup_domain(n))
                        .or_else(|| req.client_ip().and_then(|ip| m.lookup_ip(ip))),
                    AccessTarget::Helo => m.lookup_domain(req.helo()),
                    AccessTarget::Sender => m.lookup_address(req.sender()),
                    AccessTarget::Recipient => m.lookup_address(req.recipient()),
                };
                found.map_or(Step::Next, |a| Self::access_answer(&a.text))
            }
            Restriction::Sleep(s) => {
                tokio::time::sleep(s.as_duration()).await;
                Step::Next
            }
            Restriction::RejectBannedClient => self.banned(req).await,
            Restriction::RateLimit {
                key,
                count,
                window,
                action,
            } => self.rate_limit(req, *key, *count, window.0, action).await,
            Restriction::Greylist => self.greylist(req, None).await,
            Restriction::RejectInvalidHeloHostname => {
                let h = req.helo();
                if h.is_empty() || valid_helo(h) {
                    Step::Next
                } else {
                    Step::Decide(format!(
                        "501 5.5.2 <{h}>: Helo command rejected: Invalid name"
                    ))
                }
            }
            Restriction::RejectNonFqdnHeloHostname => {
                let h = req.helo();
                if h.is_empty() || is_address_literal(h) || is_fqdn(h) {
                    Step::Next
                } else {
                    Step::Decide(format!(
                        "504 5.5.2 <{h}>: Helo command rejected: need fully-qualified hostname"
                    ))
                }
            }
            Restriction::RejectNonFqdnSender => {
                let s = req.sender();
                match s.rsplit_once('@') {
                    Some((_, d)) if !is_fqdn(d) && !is_address_literal(d) => Step::Decide(format!(
                        "504 5.5.2 <{s}>: Sender address rejected: need fully-qualified address"
                    )),
                    _ => Step::Next,
                }
            }
            Restriction::RejectUnknownClientHostname => self.unknown_client(req, false).await,
            Restriction::RejectUnknownReverseClientHostname => self.unknown_client(req, true).await,
            Restriction::RejectUnknownHeloHostname => {
                let h = req.helo();
                if h.is_empty() || is_address_literal(h) {
                    return Step::Next;
                }
                let Some(dns) = &self.dns else {
                    return Step::Next;
                };
                match dns.domain_exists(h).await {
                    Ok(true) => Step::Next,
                    Ok(false) => Step::Decide(format!(
                        "450 4.7.1 <{h}>: Helo command rejected: Host not found"
                    )),
                    Err(e) => self.dns_failed("reject_unknown_helo_hostname", &e),
                }
            }
            Restriction::RejectUnknownSenderDomain => {
                let s = req.sender();
                let Some((_, domain)) = s.rsplit_once('@') else {
                    return Step::Next;
                };
                if is_address_literal(domain) {
                    return Step::Next;
                }
                let Some(dns) = &self.dns else {
                    return Step::Next;
                };
                match dns.domain_exists(domain).await {
                    Ok(true) => Step::Next,
                    Ok(false) => Step::Decide(format!(
                        "450 4.1.8 <{s}>: Sender address rejected: Domain not found"
                    )),
                    Err(e) => self.dns_failed("reject_unknown_sender_domain", &e),
                }
            }
            Restriction::DnsList {
                target,
                zone,
                filter,
            } => self.dns_list(req, *target, zone, filter).await,
        }
    }

    async fn unknown_client(&self, req: &Request, reverse_only: bool) -> Step {
        let Some(ip) = req.client_ip() else {
            return Step::Next;
        };
        if ip.is_loopback() {
            return Step::Next;
        }
        let attr = if reverse_only {
            "reverse_client_name"
        } else {
            "client_name"
        };
        let known = if req.contains(attr) {
            // Postfix has done the lookups: `unknown` means they failed.
            if reverse_only {
                req.reverse_client_name().is_some()
            } else {
                req.client_name().is_some()
            }
        } else {
            let Some(dns) = &self.dns else {
                return Step::Next;
            };
            let r = if reverse_only {
                dns.ptr(ip).await.map(|v| !v.is_empty())
            } else {
                dns.verified_name(ip).await.map(|n| n.is_some())
            };
            match r {
                Ok(k) => k,
                Err(e) => return self.dns_failed(attr, &e),
            }
        };
        if known {
            Step::Next
        } else {
            let name = req.get("client_name");
            let name = if name.is_empty() { "unknown" } else { name };
            Step::Decide(format!(
                "450 4.7.25 Client host rejected: cannot find your {}hostname, [{ip}] ({name})",
                if reverse_only { "reverse " } else { "" }
            ))
        }
    }

    async fn dns_list(
        &self,
        req: &Request,
        target: DnsListTarget,
        zone: &str,
        filter: &ReplyFilter,
    ) -> Step {
        let Some(dns) = &self.dns else {
            return Step::Next;
        };
        let (query_part, what) = match target {
            DnsListTarget::ClientIp => match req.client_ip() {
                Some(ip) => (reversed(ip), format!("Client host [{ip}]")),
                None => return Step::Next,
            },
            DnsListTarget::ClientName => match req.client_name() {
                Some(n) => (n.to_string(), format!("Client host {n}")),
                None => return Step::Next,
            },
            DnsListTarget::SenderDomain => match req.sender().rsplit_once('@') {
                Some((_, d)) if !d.is_empty() => (
                    d.to_lowercase(),
                    format!("Sender address <{}>", req.sender()),
                ),
                _ => return Step::Next,
            },
            DnsListTarget::Helo => {
                let h = req.helo();
                if h.is_empty() || is_address_literal(h) {
                    return Step::Next;
                }
                (h.to_lowercase(), format!("Helo command <{h}>"))
            }
        };
        let name = format!("{query_part}.{zone}");
        match dns.a(&name).await {
            Err(e) => self.dns_failed(&format!("DNS list {zone}"), &e),
            Ok(answers) => {
                let listed = answers.iter().any(|a| {
                    if !is_listing_code(*a) {
                        self.stats.dns_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(zone, answer = %a, "DNS list answered with an error code or a non-127/8 address; not counted as a listing (is the resolver blocked by the list?)");
                        return false;
                    }
                    filter.matches(*a)
                });
                if listed {
                    Step::Decide(format!(
                        "554 5.7.1 Service unavailable; {what} blocked using {zone}"
                    ))
                } else {
                    Step::Next
                }
            }
        }
    }

    async fn banned(&self, req: &Request) -> Step {
        let Some(ip) = req.client_ip() else {
            return Step::Next;
        };
        match self.store.get(&ban_key(ip)).await {
            Ok(Some(_)) => Step::Decide(format!("554 5.7.1 Client host [{ip}] is banned")),
            Ok(None) => Step::Next,
            Err(e) => {
                self.health.failed(&e);
                self.store_failed("reject_banned_client")
            }
        }
    }

    /// `reject_banned_client` followed by `greylist` with nothing that
    /// waits in between ([`List::ban_reads_greylist`]): the ban record and
    /// the greylist state (auto-whitelist entry, triplet, pool record) in
    /// one store read, one read transaction instead of two. The greylist
    /// part is left in `read_ahead` for the greylist restriction; it is the
    /// state it would have read itself, since nothing between the two
    /// restrictions waits or writes. A failed read is answered as before:
    /// `store_failure` here, and the greylist restriction reads again.
    async fn banned_and_greylist_state(
        &self,
        req: &Request,
        read_ahead: &mut Option<GreyRead>,
    ) -> Step {
        let Some(ip) = req.client_ip() else {
            return Step::Next;
        };
        let Some(keys) = self.greylist_keys(req, ip) else {
            // Whitelisted: the greylist reads nothing.
            return self.banned(req).await;
        };
        let ban = ban_key(ip);
        let read = match &keys.pool {
            Some((_, pool_key)) => self
                .read_keys([&ban, &keys.awl_key, &keys.key, pool_key])
                .await
                .map(|[b, awl, entry, previous]| (b, awl, entry, previous)),
            None => self
                .read_keys([&ban, &keys.awl_key, &keys.key])
                .await
                .map(|[b, awl, entry]| (b, awl, entry, None)),
        };
        let (banned, awl, entry, previous) = match read {
            Ok(r) => r,
            Err(e) => {
                self.health.failed(&e);
                return self.store_failed("reject_banned_client");
            }
        };
        if banned.is_some() {
            return Step::Decide(format!("554 5.7.1 Client host [{ip}] is banned"));
        }
        let pool = keys.pool.map(|(domain, key)| PoolLookup {
            domain,
            key,
            previous,
        });
        *read_ahead = Some(GreyRead {
            ip,
            awl_key: keys.awl_key,
            key: keys.key,
            awl,
            entry,
            pool,
        });
        Step::Next
    }

    /// The answer of a check that cannot read or keep its state
    /// (`policy.store_failure`).
    fn store_failed(&self, what: &str) -> Step {
        match self.store_failure {
            StoreFailure::Dunno => Step::Next,
            StoreFailure::Defer => Step::Decide(format!(
                "DEFER_IF_PERMIT 4.3.0 {what}: temporary server error, try again later"
            )),
        }
    }

    async fn rate_limit(
        &self,
        req: &Request,
        key: RateKey,
        count: u64,
        window: u64,
        action: &str,
    ) -> Step {
        let (name, value) = match key {
            RateKey::ClientIp => ("ip", req.get("client_address")),
            RateKey::Sender => ("sender", req.sender()),
            RateKey::SaslUsername => ("user", req.sasl_username()),
            RateKey::Recipient => ("rcpt", req.recipient()),
        };
        if value.is_empty() {
            return Step::Next;
        }
        let bucket = self.now() / window.max(1);
        let k = format!("rate:{name}:{}:{window}:{bucket}", value.to_lowercase());
        match self
            .store
            .incr(&k, 1, Some(Duration::from_secs(window)))
            .await
        {
            Ok(n) if n as u64 > count => Step::Decide(action.to_string()),
            Ok(_) => Step::Next,
            Err(e) => {
                self.health.write_failed(&e);
                self.store_failed("rate_limit")
            }
        }
    }

    /// The keys a greylisting of this request reads, or `None` when the
    /// client or the recipient is whitelisted (nothing to read).
    fn greylist_keys(&self, req: &Request, ip: IpAddr) -> Option<GreyKeys> {
        let name = req.client_name();
        if self
            .whitelist_clients
            .iter()
            .any(|w| w.get().matches_client(Some(ip), name))
            || self
                .whitelist_recipients
                .iter()
                .any(|w| w.get().matches_recipient(req.recipient()))
        {
            return None;
        }
        let cfg = &self.greylist;
        let client = greylist::client_key(ip, cfg);
        let mut awl_key = String::with_capacity(8 + client.len());
        awl_key.push_str("greyawl:");
        awl_key.push_str(&client);
        let key = greylist::triplet_key(&client, req.sender(), req.recipient(), cfg.privacy);
        Some(GreyKeys {
            awl_key,
            key,
            pool: self.pool_key(req),
        })
    }

    /// `read_ahead`: the state already read with the ban record.
    async fn greylist(&self, req: &Request, read_ahead: Option<GreyRead>) -> Step {
        let cfg = &self.greylist;
        let GreyRead {
            ip,
            awl_key,
            key,
            awl,
            entry,
            pool,
        } = match read_ahead {
            Some(read) => read,
            None => {
                let Some(ip) = req.client_ip() else {
                    return Step::Next;
                };
                let Some(keys) = self.greylist_keys(req, ip) else {
                    return Step::Next;
                };
                // One store round trip for the client's auto-whitelist entry,
                // the triplet and, with sender pools, the pool record a new
                // triplet needs.
                let (awl, entry, pool) = match self
                    .read_greylist_state(&keys.awl_key, &keys.key, keys.pool)
                    .await
                {
                    Ok(state) => state,
                    Err(e) => {
                        self.health.failed(&e);
                        return self.store_failed("greylist");
                    }
                };
                GreyRead {
                    ip,
                    awl_key: keys.awl_key,
                    key: keys.key,
                    awl,
                    entry,
                    pool,
                }
            }
        };
        let now = self.now();
        let awl = awl.and_then(|b| greylist::Awl::decode(&b, now, cfg));
        let (whitelisted, refresh) = greylist::awl_check(awl, now, cfg);
        if let Some(refreshed) = refresh {
            // An active client's entry lives on, max_age after it was last seen.
            self.store_values(vec![(awl_key.clone(), json(&refreshed))])
                .await;
        }
        if whitelisted {
            return Step::Next;
        }
        let entry = entry.and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
        let (decision, new_entry) = greylist::decide(entry, now, cfg);
        // Everything this attempt changes goes to the store as one write:
        // the pool record a new triplet starts, the triplet, the client's
        // auto-whitelist count.
        let mut writes = Vec::with_capacity(2);
        let (decision, new_entry) = match decision {
            Decision::Greylist { .. } if entry.is_none() && cfg.sender_pools => {
                let (pass, record) = self.sender_pool(req, ip, now, pool).await;
                writes.extend(record);
                match pass {
                    // A pool pass counts as a passed triplet from now on:
                    // stored as one first seen `delay` ago, so it is one
                    // by postgrey's rule too (`last - first >= delay`).
                    Some(pass) => (
                        pass,
                        Entry {
                            first: now.saturating_sub(cfg.delay.0),
                            last: now,
                            passed: true,
                        },
                    ),
                    None => (decision, new_entry),
                }
            }
            d => (d, new_entry),
        };
        writes.push((key, json(&new_entry)));
        if let Decision::Pass { delayed: Some(_) } = decision
            && let Some(counted) = greylist::awl_count(awl, now, cfg)
        {
            writes.push((awl_key, json(&counted)));
        }
        let kept = self.store_values(writes).await;
        match decision {
            // A deferral the store cannot remember would be repeated at
            // every retry, forever.
            Decision::Greylist { .. } if !kept => self.store_failed("greylist"),
            Decision::Greylist { remaining } => {
                self.stats.greylisted.fetch_add(1, Ordering::Relaxed);
                // Read back by `mxguard report` (mxguard_report::events).
                tracing::info!(client = %greylist::ip_text(ip), "policy greylist: deferred");
                let recipient = req.recipient();
                let mut answer = String::with_capacity(
                    cfg.greylist_action.len() + cfg.greylist_text.len() + recipient.len() + 32,
                );
                answer.push_str(&cfg.greylist_action);
                answer.push(' ');
                greylist::push_expanded_text(
                    &mut answer,
                    &cfg.greylist_text,
                    remaining,
                    recipient,
                    req.contains("etrn_domain"),
                );
                Step::Decide(answer)
            }
            Decision::Pass { delayed } => {
                if let Some(secs) = delayed {
                    tracing::info!(client = %greylist::ip_text(ip), delayed = secs, "policy greylist: passed");
                }
                if let Some(secs) = delayed
                    && cfg.x_greylist_header
                {
                    return Step::Pending(format!(
                        "PREPEND X-Greylist: delayed {secs} seconds by mxguard at {}; {}",
                        self.hostname,
                        rfc2822(now)
                    ));
                }
                Step::Next
            }
        }
    }

    /// A first attempt from a new IP of a sender whose mail to this
    /// recipient was already greylisted from another IP of the same pool.
    ///
    /// No DNS at all until a pool record exists and is older than the
    /// greylist delay; then the verified PTR names of both IPs and the SPF
    /// check share one deadline, one lookup's (`dns.timeout` times
    /// `attempts` plus one), however many lookups hostile answers ask for.
    /// A failure or time-out only means no pool pass: the attempt is
    /// greylisted like any other.
    ///
    /// Returns the pass, if any, and the pool record to store when there
    /// was none (the caller writes it with the triplet, in one write).
    async fn sender_pool(
        &self,
        req: &Request,
        ip: IpAddr,
        now: u64,
        pool: Option<PoolLookup>,
    ) -> (Option<Decision>, Option<(String, Vec<u8>)>) {
        let (Some(dns), Some(pool)) = (self.dns.as_ref(), pool) else {
            return (None, None);
        };
        let PoolLookup {
            domain,
            key: pool_key,
            previous,
        } = pool;
        let Some(prev) = previous.and_then(|b| serde_json::from_slice::<PoolRecord>(&b).ok())
        else {
            let record = PoolRecord {
                first: now,
                ip: Some(ip),
                ptr_domain: None,
            };
            return (None, Some((pool_key, json(&record))));
        };
        if now.saturating_sub(prev.first) < self.greylist.delay.0 {
            return (None, None);
        }
        (
            self.pool_pass(dns, req, ip, now, &domain, &prev).await,
            None,
        )
    }

    /// Whether a retry from `ip` passes as the pool of the first attempt
    /// (`prev`): same verified PTR domain, or SPF pass.
    async fn pool_pass(
        &self,
        dns: &Dns,
        req: &Request,
        ip: IpAddr,
        now: u64,
        domain: &str,
        prev: &PoolRecord,
    ) -> Option<Decision> {
        let deadline = dns.lookup_deadline();
        let checked = tokio::time::timeout(deadline, async {
            let verified = |a: IpAddr| async move {
                dns.verified_name(a)
                    .await
                    .ok()
                    .flatten()
                    .map(|n| organisational(&n))
            };
            let (my_ptr, first_ptr) = match (&prev.ptr_domain, prev.ip) {
                // A record from before the first IP was kept.
                (Some(d), _) => (verified(ip).await, Some(d.clone())),
                (None, Some(first)) if first != ip => tokio::join!(verified(ip), verified(first)),
                (None, Some(_)) => {
                    let mine = verified(ip).await;
                    (mine.clone(), mine)
                }
                (None, None) => (None, None),
            };
            let same_ptr = my_ptr.is_some() && my_ptr == first_ptr;
            let spf_ok = !same_ptr
                && mxguard_auth::spf::check_host(dns, ip, domain, req.sender()).await
                    == mxguard_auth::results::AuthResult::Pass;
            (same_ptr, spf_ok)
        })
        .await;
        let Ok((same_ptr, spf_ok)) = checked else {
            self.stats.dns_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%ip, domain, "greylist: the sender-pool check's DNS lookups took longer than {deadline:?}; greylisting as usual");
            return None;
        };
        if same_ptr || spf_ok {
            tracing::info!(%ip, domain, same_ptr, spf_ok, "greylist: retry from another IP of the sender's pool passes");
            Some(Decision::Pass {
                delayed: Some(now.saturating_sub(prev.first)),
            })
        } else {
            None
        }
    }

    /// The sender domain and pool key of a request, when sender pools are
    /// on (and a resolver exists to check them).
    fn pool_key(&self, req: &Request) -> Option<(String, String)> {
        if !self.greylist.sender_pools || self.dns.is_none() {
            return None;
        }
        let domain = req.sender().rsplit_once('@')?.1.to_lowercase();
        if domain.is_empty() {
            return None;
        }
        let key = greylist::pool_key(&domain, req.recipient(), self.greylist.privacy);
        Some((domain, key))
    }

    /// The auto-whitelist entry, the triplet and the pool record (when
    /// `pool` names one) in one read transaction. Should that read fail, the
    /// pool record is read apart, so a fault in it only means no pool
    /// record, as when it was always read on its own.
    async fn read_greylist_state(
        &self,
        awl_key: &str,
        key: &str,
        pool: Option<(String, String)>,
    ) -> mxguard_store::Result<(Option<Vec<u8>>, Option<Vec<u8>>, Option<PoolLookup>)> {
        let Some((domain, pool_key)) = pool else {
            let [awl, entry] = self.read_keys([awl_key, key]).await?;
            return Ok((awl, entry, None));
        };
        let ([awl, entry], previous) = match self.read_keys([awl_key, key, &pool_key]).await {
            Ok([awl, entry, previous]) => ([awl, entry], previous),
            Err(_) => (
                self.read_keys([awl_key, key]).await?,
                self.read_keys([&pool_key]).await.ok().and_then(|[p]| p),
            ),
        };
        let pool = PoolLookup {
            domain,
            key: pool_key,
            previous,
        };
        Ok((awl, entry, Some(pool)))
    }

    /// Keys in one round trip, writes still pending taken first.
    async fn read_keys<const N: usize>(
        &self,
        keys: [&str; N],
    ) -> mxguard_store::Result<[Option<Vec<u8>>; N]> {
        let mut found: [Option<Vec<u8>>; N] = {
            let p = lock(&self.pending);
            if p.values.is_empty() {
                [const { None }; N]
            } else {
                keys.map(|k| p.values.get(k).map(|w| w.bytes.clone()))
            }
        };
        if found.iter().all(Option::is_some) {
            return Ok(found);
        }
        let stored = self.store.get_many(&keys).await?;
        for (f, s) in found.iter_mut().zip(stored) {
            if f.is_none() {
                *f = s;
            }
        }
        Ok(found)
    }

    /// Greylist writes do not hold up the answer (losing one to a crash
    /// only means one more deferral); until the store has them, reads find
    /// them in `pending`. At most `max_pending` keys wait so: past it the
    /// request waits for its write (at most [`WRITE_WAIT`]), so a crash
    /// loses at most `max_pending` answered writes, and a stalled store
    /// holds no more than that in memory.
    ///
    /// `values` join the queue of one flushing task (started when none
    /// runs), which writes everything queued as one store request
    /// (`set_many`), waits for it, and goes on with what came meanwhile.
    /// Under load that is one write request, one task wake-up and one
    /// writer-thread wake-up per round instead of one per request, and the
    /// store's group commit gets its batch already gathered. They are
    /// relaxed writes (`Durability::Relaxed`: committed, not yet fsynced;
    /// on disk within a second): what a crash can lose is what
    /// write-behind could lose anyway, and a lost triplet only costs one
    /// more deferral, never a message. `max_pending_writes = 0` asks for
    /// the strict mode: every answer waits for its write, on disk.
    ///
    /// One task writes, one round at a time, so an older value can never
    /// land after a newer one: a round takes the newest pending value of
    /// each queued key; a key that got a newer value while its round was
    /// written is queued again, and dropped from `pending` only once its
    /// newest value has landed.
    ///
    /// Returns false when the values will not be kept: their write failed
    /// or timed out, or the store is failing (a queued write is still
    /// tried, and its success ends the failure).
    async fn store_values(&self, values: Vec<(String, Vec<u8>)>) -> bool {
        let (start, waiter) = {
            let mut p = lock(&self.pending);
            let full = p.values.len() >= self.max_pending;
            // The store is failing and writes already wait on it (one of
            // them will tell when it works again): no more queue up.
            if full
                && self.health.failing()
                && !p.values.is_empty()
                && values.iter().any(|(k, _)| !p.values.contains_key(k))
            {
                return false;
            }
            let queued_before = p.queue.len();
            let p = &mut *p;
            for (key, bytes) in values {
                // Taken under the lock: a later value has a higher number.
                let seq = self.write_seq.fetch_add(1, Ordering::Relaxed);
                // One hash of the key (the entry), not a look-up and an insert.
                match p.values.entry(key) {
                    // Queued or being written: the newest value goes.
                    hash_map::Entry::Occupied(mut w) => *w.get_mut() = PendingWrite { seq, bytes },
                    hash_map::Entry::Vacant(slot) => {
                        p.queue.push(slot.key().clone());
                        slot.insert(PendingWrite { seq, bytes });
                    }
                }
            }
            // Past the cap, the answer waits for the round that writes
            // these values (the next one to start).
            let waiter = full.then(|| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                p.waiters.push(tx);
                rx
            });
            let start = !p.flushing && !p.queue.is_empty();
            if start {
                p.flushing = true;
            }
            // A gathering round starts now if this request waits for it, or
            // once the queue has reached a quarter of the cap (told once,
            // when it gets there).
            let threshold = gather_threshold(self.max_pending);
            if waiter.is_some() || (queued_before < threshold && p.queue.len() >= threshold) {
                self.pending.flush_now.notify_one();
            }
            (start, waiter)
        };
        if start {
            let durability = if self.max_pending == 0 {
                Durability::Immediate
            } else {
                Durability::Relaxed
            };
            // The strict mode's requests all wait for their round.
            let gather = if self.max_pending == 0 {
                Duration::ZERO
            } else {
                WRITE_GATHER
            };
            tokio::spawn(flush(
                self.store.clone(),
                self.pending.clone(),
                self.health.clone(),
                Round {
                    ttl: Some(self.greylist.max_age.as_duration()),
                    durability,
                    gather,
                    threshold: gather_threshold(self.max_pending),
                },
            ));
        }
        let Some(waiter) = waiter else {
            return !self.health.failing();
        };
        match tokio::time::timeout(WRITE_WAIT, waiter).await {
            Ok(Ok(landed)) => landed,
            Ok(Err(_)) => false,
            Err(_) => {
                // The round goes on; the store is not keeping up.
                self.health.write_failed(&format_args!(
                    "a write waited more than {WRITE_WAIT:?} with {} writes queued (policy.max_pending_writes)",
                    self.max_pending
                ));
                false
            }
        }
    }

    /// Writes answered but not yet in the store.
    pub fn pending_writes(&self) -> usize {
        lock(&self.pending).values.len()
    }

    /// Writes what write-behind still holds now, without the gathering
    /// wait, and waits (at most `within`) until nothing is pending: the
    /// server calls it when it stops, so a clean stop loses no answered
    /// write. True when nothing was left pending.
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.pending_writes() == 0 {
                return true;
            }
            self.pending.flush_now.notify_one();
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Queued keys at which a gathering round starts at once: a quarter of
/// the cap, so that the round being written and the values queued
/// meanwhile stay below it and requests do not wait.
fn gather_threshold(max_pending: usize) -> usize {
    (max_pending / 4).max(1)
}

/// How the flushing task writes its rounds.
struct Round {
    ttl: Option<Duration>,
    durability: Durability,
    /// How long values gather before a round ([`WRITE_GATHER`]; zero in
    /// the strict mode).
    gather: Duration,
    /// Queued keys that end the gathering at once.
    threshold: usize,
}

/// A value on its way to the store.
struct PendingWrite {
    /// When it was stored, by the engine's write counter.
    seq: u64,
    bytes: Vec<u8>,
}

/// The writes answered and not yet landed, and the flushing task's queue.
#[derive(Default)]
struct Pending {
    /// The newest value of each key not yet landed.
    values: HashMap<String, PendingWrite>,
    /// Keys of `values` the next round writes (each once).
    queue: Vec<String>,
    /// Requests past `max_pending_writes` waiting for the next round.
    waiters: Vec<tokio::sync::oneshot::Sender<bool>>,
    /// A flushing task runs (and will see anything queued).
    flushing: bool,
}

/// Write-behind: the pending writes, and the flushing task's wake-up.
#[derive(Default)]
struct PendingMap {
    state: std::sync::Mutex<Pending>,
    /// Ends the flushing task's gathering wait: a quarter of the cap is
    /// queued, a request waits for its round, or the server is stopping.
    flush_now: tokio::sync::Notify,
}

/// The pending map, even if a thread panicked while holding it: its
/// entries are whole values either way.
fn lock(p: &PendingMap) -> std::sync::MutexGuard<'_, Pending> {
    p.state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A value as the store keeps it (JSON). The types written here always
/// encode; an empty value would read back as no entry.
fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The flushing task: writes every queued key's newest value in one store
/// write, round after round, until the queue is empty. A key leaves
/// `pending` once its newest value has landed or failed (the next request
/// writes again); one that got a newer value meanwhile is queued again.
/// The requests waiting for a round learn whether it landed. Before each
/// round, values gather for `how.gather` unless enough are queued or a
/// request waits ([`WRITE_GATHER`]).
async fn flush(
    store: Arc<dyn Store>,
    pending: Arc<PendingMap>,
    health: Arc<StoreHealth>,
    how: Round,
) {
    let Round {
        ttl,
        durability,
        gather,
        threshold,
    } = how;
    loop {
        if !gather.is_zero() {
            let wait = {
                let p = lock(&pending);
                p.waiters.is_empty() && p.queue.len() < threshold
            };
            if wait {
                tokio::select! {
                    () = tokio::time::sleep(gather) => {}
                    () = pending.flush_now.notified() => {}
                }
            }
        }
        let (round, waiters) = {
            let mut p = lock(&pending);
            if p.queue.is_empty() {
                p.flushing = false;
                // Nothing queued: whoever waits has had its round.
                for w in std::mem::take(&mut p.waiters) {
                    let _ = w.send(!health.failing());
                }
                return;
            }
            let keys = std::mem::take(&mut p.queue);
            let round: Vec<(String, u64, Vec<u8>)> = keys
                .into_iter()
                .filter_map(|k| {
                    let (seq, bytes) = p.values.get(&k).map(|w| (w.seq, w.bytes.clone()))?;
                    Some((k, seq, bytes))
                })
                .collect();
            (round, std::mem::take(&mut p.waiters))
        };
        let entries: Vec<(&str, &[u8])> = round
            .iter()
            .map(|(k, _, b)| (k.as_str(), b.as_slice()))
            .collect();
        let landed = match store.set_many(&entries, ttl, durability).await {
            Ok(()) => {
                health.wrote();
                true
            }
            Err(e) => {
                health.write_failed(&e);
                false
            }
        };
        drop(entries);
        {
            let mut p = lock(&pending);
            let p = &mut *p;
            for (k, seq, _) in round {
                // One hash of the key: the entry goes unless a newer value
                // came meanwhile (then it is queued again).
                if let hash_map::Entry::Occupied(w) = p.values.entry(k) {
                    if w.get().seq == seq {
                        w.remove();
                    } else {
                        p.queue.push(w.key().clone());
                    }
                }
            }
        }
        for w in waiters {
            let _ = w.send(landed);
        }
    }
}

/// A request's sender pool: its sender domain, the pool key, and the
/// record found under it.
struct PoolLookup {
    domain: String,
    key: String,
    previous: Option<Vec<u8>>,
}

/// The restriction list of one stage.
struct List {
    items: Vec<Restriction>,
    /// The index of a `reject_banned_client` whose store read also reads
    /// the state of the `greylist` after it: only restrictions that neither
    /// wait nor write lie between them (so the state cannot change between
    /// the two in a way the pending writes would not show).
    ban_reads_greylist: Option<usize>,
}

impl List {
    fn new(items: Vec<Restriction>) -> List {
        let ban_reads_greylist = items
            .iter()
            .position(|r| matches!(r, Restriction::RejectBannedClient))
            .filter(|&ban| {
                items[ban + 1..]
                    .iter()
                    .take_while(|r| !matches!(r, Restriction::Greylist))
                    .all(instant)
                    && items[ban + 1..]
                        .iter()
                        .any(|r| matches!(r, Restriction::Greylist))
            });
        List {
            items,
            ban_reads_greylist,
        }
    }
}

/// A restriction that answers from the request and loaded maps alone: no
/// store, no DNS, no sleep.
fn instant(r: &Restriction) -> bool {
    matches!(
        r,
        Restriction::Permit
            | Restriction::Dunno
            | Restriction::Reject(_)
            | Restriction::Defer(_)
            | Restriction::DeferIfPermit(_)
            | Restriction::PermitMynetworks
            | Restriction::PermitSaslAuthenticated
            | Restriction::CheckAccess { .. }
            | Restriction::RejectInvalidHeloHostname
            | Restriction::RejectNonFqdnHeloHostname
            | Restriction::RejectNonFqdnSender
    )
}

/// The store keys one greylisting reads.
struct GreyKeys {
    awl_key: String,
    key: String,
    /// The sender domain and pool key, with sender pools on.
    pool: Option<(String, String)>,
}

/// What one greylisting read: its keys and their values.
struct GreyRead {
    ip: IpAddr,
    awl_key: String,
    key: String,
    awl: Option<Vec<u8>>,
    entry: Option<Vec<u8>>,
    pool: Option<PoolLookup>,
}

/// The store key of a client's ban record (`ban:<ip>`, the address as
/// `Display` writes it).
fn ban_key(ip: IpAddr) -> String {
    let mut key = String::with_capacity(44);
    key.push_str("ban:");
    key.push_str(&greylist::ip_text(ip));
    key
}

/// The first greylisted attempt of a sender domain to a recipient.
#[derive(serde::Serialize, serde::Deserialize)]
struct PoolRecord {
    first: u64,
    /// Its client; the PTR names are looked up only when a retry comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<IpAddr>,
    /// The verified PTR domain, in records written before `ip` was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ptr_domain: Option<String>,
}

/// 127.0.0.0/8 is a listing, except 127.255.255.0/24 (error codes, such as
/// "your resolver is blocked"); anything else is not an answer at all.
fn is_listing_code(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 127 && !(o[1] == 255 && o[2] == 255)
}

fn is_address_literal(h: &str) -> bool {
    h.starts_with('[') && h.ends_with(']')
}

fn is_fqdn(h: &str) -> bool {
    let h = h.trim_end_matches('.');
    h.contains('.') && !h.starts_with('.') && !h.ends_with('.')
}

/// A host name or an address literal, RFC 1035 letters-digits-hyphen labels.
fn valid_helo(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
        return inner.parse::<IpAddr>().is_ok();
    }
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 255
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `secs` (Unix seconds) as an RFC 2822 date.
fn rfc2822(secs: u64) -> String {
    // Days and months in English, UTC: what postgrey writes.
    let days = secs / 86400;
    let (h, m, s) = ((secs % 86400) / 3600, (secs % 3600) / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {d:02} {mon} {year} {h:02}:{m:02}:{s:02} +0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_and_listing_rules() {
        assert!(valid_helo("mx.example.com"));
        assert!(valid_helo("[192.0.2.1]"));
        assert!(valid_helo("[IPv6:2001:db8::1]"));
        assert!(!valid_helo("bad host"));
        assert!(!valid_helo("-x.example"));
        assert!(!valid_helo("[999.1.1.1]"));
        assert!(is_fqdn("mx.example.com") && !is_fqdn("localhost"));
        assert!(is_listing_code("127.0.0.2".parse().unwrap()));
        assert!(!is_listing_code("127.255.255.254".parse().unwrap()));
        assert!(!is_listing_code("10.0.0.1".parse().unwrap()));
        // The sender-pool domain of a PTR name is the public suffix list's
        // (the hand-made guess kept `mx1.web.de` whole).
        assert_eq!(
            organisational("mail-a1.outbound.protection.outlook.com"),
            "outlook.com"
        );
        assert_eq!(organisational("mx1.example.co.uk"), "example.co.uk");
        assert_eq!(organisational("mx1.web.de"), organisational("mx2.web.de"));
        let d = rfc2822(1_700_000_000);
        assert_eq!(d, "Tue, 14 Nov 2023 22:13:20 +0000");
        assert!(d.ends_with("+0000") && d.len() > 25, "{d}");
    }
}
