//! DNS lists in the scan, as rspamd's rbl module (which took over surbl's
//! URL lists): the client address and the first untrusted Received hop
//! against IP lists (`<reversed ip>.<zone>`), the message's URL domains
//! against domain lists (`<domain>.<zone>`, SURBL, URIBL, Spamhaus DBL).
//! An answer becomes a symbol by the list's `returncodes` (Postfix's
//! filter forms, as the policy server's `reject_rbl_client`) or
//! `returnbits` (SURBL/URIBL bit masks); an answer no filter names gives
//! the list's own `symbol`, except the error codes lists answer a blocked
//! resolver with (127.255.255.0/24, anything outside 127/8): logged,
//! counted, never a listing unless a `returncodes` entry names it.
//!
//! Every query of a message runs side by side, each bounded so that the
//! check ends within its time-out: a list that did not answer in time (or
//! failed) gives `<SYMBOL>_FAIL` with the query as option, and the lists
//! that answered keep their symbols. None is on by default: the big lists
//! need a registration (Spamhaus: a DQS key for most users), see the
//! README.

use super::{BoxFuture, BuildError, BuildReport, Check, Output, Outputs, Waiting};
use crate::Task;
use mxguard_core::config::{Config, Millis, Section};
use mxguard_core::restriction::ReplyFilter;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_dns::Dns;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The symbol of a scan whose lists were cut by the scan's deadline.
pub const TIMEOUT_SYMBOL: &str = "RBL_TIMEOUT";

/// `[rbl]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RblConfig {
    pub enabled: bool,
    /// How long the check may wait on DNS for one message; lookups still
    /// open then give their list's `<SYMBOL>_FAIL`.
    pub timeout: Millis,
    /// Distinct URL names queried per message and list.
    pub max_urls: usize,
    /// Also query each URL's host when it is not its registrable domain.
    pub url_hosts: bool,
    pub lists: Vec<ListConfig>,
}

impl Default for RblConfig {
    fn default() -> Self {
        RblConfig {
            enabled: true,
            timeout: Millis(5_000),
            max_urls: 25,
            url_hosts: false,
            lists: Vec::new(),
        }
    }
}

/// What a list is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The SMTP client's address.
    From,
    /// The first untrusted Received hop's address.
    Received,
    /// The message's URL domains.
    Urls,
}

impl Target {
    fn word(self) -> &'static str {
        match self {
            Target::From => "from",
            Target::Received => "received",
            Target::Urls => "urls",
        }
    }
}

/// One or several reply filters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Codes {
    One(String),
    Many(Vec<String>),
}

impl Codes {
    fn list(&self) -> Vec<&str> {
        match self {
            Codes::One(s) => vec![s.as_str()],
            Codes::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// `[[rbl.lists]]`: rspamd's `rbls { NAME { … } }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// The DNS zone, e.g. `zen.spamhaus.org` or `KEY.zen.dq.spamhaus.net`.
    pub zone: String,
    /// The symbol of a listing no `returncodes`/`returnbits` entry names;
    /// `<symbol>_FAIL` on a DNS failure or time-out.
    pub symbol: String,
    #[serde(default = "default_checks")]
    pub checks: Vec<Target>,
    /// Symbol → reply filter(s): `"127.0.0.2"`, `"127.0.0.[4..7]"`, `"127.0.1.[2;4]"`.
    #[serde(default)]
    pub returncodes: BTreeMap<String, Codes>,
    /// Symbol → bit of the last octet (SURBL, URIBL multi lists).
    #[serde(default)]
    pub returnbits: BTreeMap<String, u8>,
    /// Prefix of the symbols per target: `{ from = "RBL", received =
    /// "RECEIVED" }` turns `SPAMHAUS_SBL` into `RBL_SPAMHAUS_SBL` for the
    /// client and `RECEIVED_SPAMHAUS_SBL` for the Received hop.
    #[serde(default)]
    pub symbols_prefixes: BTreeMap<Target, String>,
    /// Weight of `symbol` (the other symbols take `[symbols.NAME]` or
    /// their rspamd default, else 0).
    #[serde(default)]
    pub score: Option<f64>,
}

fn default_checks() -> Vec<Target> {
    vec![Target::From]
}

impl Section for RblConfig {
    const KEY: &'static str = "rbl";

    fn validate(&self, problems: &mut mxguard_core::config::Problems) {
        for (i, l) in self.lists.iter().enumerate() {
            if l.zone.trim().is_empty() || l.zone.contains(char::is_whitespace) {
                problems.at(
                    format!("lists[{i}].zone"),
                    "a DNS zone like zen.spamhaus.org",
                );
            }
            if !is_symbol(&l.symbol) {
                problems.at(
                    format!("lists[{i}].symbol"),
                    "a symbol name: capital letters, digits and _",
                );
            }
            if l.checks.is_empty() {
                problems.at(
                    format!("lists[{i}].checks"),
                    "name at least one of from, received, urls",
                );
            }
            for (sym, codes) in &l.returncodes {
                if !is_symbol(sym) {
                    problems.at(format!("lists[{i}].returncodes.{sym}"), "not a symbol name");
                }
                for c in codes.list() {
                    if let Err(e) = ReplyFilter::parse(c) {
                        problems.at(format!("lists[{i}].returncodes.{sym}"), e);
                    }
                }
            }
            for sym in l.returnbits.keys() {
                if !is_symbol(sym) {
                    problems.at(format!("lists[{i}].returnbits.{sym}"), "not a symbol name");
                }
            }
            problems.finite_score(format!("lists[{i}].score"), l.score);
        }
        if self.max_urls > 1000 {
            problems.at("max_urls", "at most 1000");
        }
        if self.timeout.0 == 0 {
            problems.at("timeout", "must be above 0");
        }
    }
}

fn is_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl RblConfig {
    /// Whether the check will ask DNS (a list is configured).
    pub fn needs_dns(&self) -> bool {
        self.enabled && !self.lists.is_empty()
    }
}

/// rspamd's default weights of the symbols its own rbl config names.
fn rspamd_weight(symbol: &str) -> f64 {
    match symbol {
        "RBL_SPAMHAUS_SBL"
        | "RBL_SPAMHAUS_XBL"
        | "RBL_SPAMHAUS_XBL_ANY"
        | "RBL_NIXSPAM"
        | "RBL_BLOCKLISTDE" => 4.0,
        "RBL_SPAMHAUS_CSS"
        | "RBL_SPAMHAUS_PBL"
        | "RBL_SENDERSCORE"
        | "RBL_MAILSPIKE_WORST"
        | "RBL_VIRUSFREE_BOTNET" => 2.0,
        "RBL_SPAMHAUS_DROP" | "RBL_SPAMHAUS" => 7.0,
        "RECEIVED_SPAMHAUS_SBL" | "RECEIVED_SPAMHAUS_XBL" | "RECEIVED_BLOCKLISTDE" => 3.0,
        "RECEIVED_SPAMHAUS_CSS" => 1.0,
        "RECEIVED_SPAMHAUS_DROP" => 6.0,
        "RBL_MAILSPIKE_VERYBAD" => 1.5,
        "RBL_MAILSPIKE_BAD" | "RBL_SEM" | "RBL_SEM_IPV6" => 1.0,
        "PH_SURBL_MULTI" | "MW_SURBL_MULTI" | "ABUSE_SURBL" => 5.5,
        "CRACKED_SURBL" => 4.0,
        "RSPAMD_URIBL" => 4.5,
        "SEM_URIBL" => 3.5,
        "DBL_SPAM" | "DBL_PHISH" | "DBL_MALWARE" | "DBL_ABUSE" => 6.5,
        "DBL_BOTNET" | "DBL_ABUSE_BOTNET" => 5.5,
        "DBL_ABUSE_REDIR" | "URIBL_GREY" => 1.5,
        "DBL_ABUSE_PHISH" | "DBL_ABUSE_MALWARE" | "URIBL_BLACK" => 7.5,
        "URIBL_RED" => 3.5,
        _ => 0.0,
    }
}

struct List {
    zone: String,
    symbol: String,
    checks: Vec<Target>,
    codes: Vec<(String, ReplyFilter)>,
    bits: Vec<(String, u8)>,
    prefixes: BTreeMap<Target, String>,
}

impl List {
    fn named(&self, target: Target, symbol: &str) -> String {
        match self.prefixes.get(&target) {
            Some(p) if !p.is_empty() => format!("{p}_{symbol}"),
            _ => symbol.to_string(),
        }
    }

    /// The symbols an answer gives (none for an error code).
    fn symbols_for(&self, target: Target, answers: &[Ipv4Addr], errors: &AtomicU64) -> Vec<String> {
        let mut out = Vec::new();
        for &a in answers {
            let mut named = false;
            for (sym, f) in &self.codes {
                if f.matches(a) {
                    out.push(self.named(target, sym));
                    named = true;
                }
            }
            if !is_listing_code(a) {
                if !named {
                    errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(zone = %self.zone, answer = %a, "DNS list answered with an error code or a non-127/8 address; not counted as a listing (is the resolver blocked by the list? most lists refuse public resolvers)");
                }
                continue;
            }
            let last = a.octets()[3];
            for (sym, bit) in &self.bits {
                if last & bit != 0 {
                    out.push(self.named(target, sym));
                    named = true;
                }
            }
            if !named {
                out.push(self.named(target, &self.symbol));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn is_listing_code(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 127 && !(o[1] == 255 && o[2] == 255)
}

pub struct Rbl {
    dns: Arc<Dns>,
    timeout: Duration,
    max_urls: usize,
    url_hosts: bool,
    lists: Vec<List>,
    defs: Vec<SymbolDef>,
    /// Answers that were error codes (a list refusing the resolver).
    pub errors: Arc<AtomicU64>,
}

impl Rbl {
    pub fn new(config: &Config, dns: Arc<Dns>, report: &mut BuildReport) -> Rbl {
        let c = config.section::<RblConfig>();
        let mut lists = Vec::new();
        let mut defs: Vec<SymbolDef> = vec![SymbolDef::new(
            TIMEOUT_SYMBOL,
            0.0,
            "rbl",
            "DNS lists: the scan's deadline cut the lookups",
        )];
        let mut def = |name: String, weight: f64, what: String| {
            if !defs.iter().any(|d| d.name == name) {
                defs.push(SymbolDef::new(&name, weight, "rbl", &what));
            }
        };
        for (i, l) in c.lists.iter().enumerate() {
            let mut codes = Vec::new();
            for (sym, cs) in &l.returncodes {
                for code in cs.list() {
                    match ReplyFilter::parse(code) {
                        Ok(f) => codes.push((sym.clone(), f)),
                        Err(message) => report.errors.push(BuildError {
                            key: format!("rbl.lists[{i}].returncodes.{sym}"),
                            span: None,
                            message,
                        }),
                    }
                }
            }
            let list = List {
                zone: l.zone.trim().trim_end_matches('.').to_ascii_lowercase(),
                symbol: l.symbol.clone(),
                checks: l.checks.clone(),
                codes,
                bits: l.returnbits.iter().map(|(s, b)| (s.clone(), *b)).collect(),
                prefixes: l.symbols_prefixes.clone(),
            };
            for &t in &list.checks {
                let base = list.named(t, &list.symbol);
                let w = l.score.unwrap_or_else(|| rspamd_weight(&base));
                def(base.clone(), w, format!("Listed in {}", list.zone));
                def(
                    format!("{}_FAIL", list.symbol),
                    0.0,
                    format!("{}: DNS failure or time-out", list.zone),
                );
                for s in l.returncodes.keys().chain(l.returnbits.keys()) {
                    let n = list.named(t, s);
                    def(
                        n.clone(),
                        rspamd_weight(&n),
                        format!("Listed in {} ({s})", list.zone),
                    );
                }
            }
            lists.push(list);
        }
        let timeout = c.timeout.as_duration();
        Rbl {
            dns,
            timeout,
            max_urls: c.max_urls,
            url_hosts: c.url_hosts,
            lists,
            defs,
            errors: Arc::new(AtomicU64::new(0)),
        }
    }

    /// What each target asks about in this message.
    fn names(&self, task: &Task<'_>) -> Vec<(Target, String, String)> {
        let mut out = Vec::new();
        let client = task.envelope.ip;
        if let Some(ip) = client.filter(|ip| is_public(*ip)) {
            out.push((Target::From, mxguard_dns::reversed(ip), ip.to_string()));
        }
        // The first hop, newest first, from a public address that is not
        // the client's (our own MTA's Received names the client).
        if let Some(ip) = task
            .received()
            .iter()
            .filter_map(|h| h.from_ip)
            .find(|ip| is_public(*ip) && Some(*ip) != client)
        {
            out.push((Target::Received, mxguard_dns::reversed(ip), ip.to_string()));
        }
        let mut seen = HashSet::new();
        for u in task.urls() {
            if seen.len() >= self.max_urls {
                break;
            }
            if u.host.parse::<IpAddr>().is_ok() || u.host.starts_with('[') {
                continue;
            }
            let mut names = vec![u.domain.as_str()];
            if self.url_hosts && u.host != u.domain {
                names.push(u.host.as_str());
            }
            for n in names {
                if mxguard_message::domain::has_known_suffix(n)
                    && n.len() <= 200
                    && seen.len() < self.max_urls
                    && seen.insert(n.to_string())
                {
                    out.push((Target::Urls, n.to_string(), n.to_string()));
                }
            }
        }
        out
    }
}

/// An address a public list can know: not private, loopback, link-local,
/// documentation-reserved for local use, or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            !(v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => {
            !(v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

impl Check for Rbl {
    fn name(&self) -> &'static str {
        "rbl"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        self.defs.clone()
    }

    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

impl Waiting for Rbl {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_symbol(&self) -> &'static str {
        TIMEOUT_SYMBOL
    }

    fn run<'a>(&'a self, task: &'a Task<'_>, _deps: Outputs) -> BoxFuture<'a, Output> {
        Box::pin(async move {
            let mut results = ScanResults::default();
            if task.is_authenticated() {
                return Output::new(results);
            }
            let names = self.names(task);
            // Each lookup ends a little before the check's own time-out,
            // so what answered is kept and the rest is named.
            let budget = self.timeout.mul_f64(0.9);
            let mut queries = Vec::new();
            for list in &self.lists {
                for (target, query, shown) in &names {
                    if !list.checks.contains(target) {
                        continue;
                    }
                    let name = format!("{query}.{}", list.zone);
                    let dns = &self.dns;
                    queries.push(async move {
                        let r = tokio::time::timeout(budget, dns.a(&name)).await;
                        (list, *target, shown, r)
                    });
                }
            }
            for (list, target, shown, r) in futures_util::future::join_all(queries).await {
                match r {
                    Ok(Ok(answers)) => {
                        for sym in list.symbols_for(target, &answers, &self.errors) {
                            results.insert(&sym, vec![format!("{shown}:{}", target.word())]);
                        }
                    }
                    Ok(Err(e)) => results.insert(
                        &format!("{}_FAIL", list.symbol),
                        vec![format!("{shown}:{}: {e}", target.word())],
                    ),
                    Err(_) => results.insert(
                        &format!("{}_FAIL", list.symbol),
                        vec![format!("{shown}:{}: timeout", target.word())],
                    ),
                }
            }
            Output::new(results)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(toml_text: &str) -> RblConfig {
        let registry = crate::sections();
        let c = mxguard_core::config::load_str(toml_text, "t.toml", &registry)
            .unwrap_or_else(|e| panic!("{e:?}"));
        c.section::<RblConfig>().clone()
    }

    #[test]
    fn config_as_rspamd_users_write_it() {
        let c = list(
            r#"
[[rbl.lists]]
zone = "zen.spamhaus.org"
symbol = "SPAMHAUS"
checks = ["from", "received"]
symbols_prefixes = { from = "RBL", received = "RECEIVED" }
returncodes = { SPAMHAUS_SBL = "127.0.0.2", SPAMHAUS_XBL = ["127.0.0.[4..7]"] }

[[rbl.lists]]
zone = "multi.uribl.com"
symbol = "URIBL_MULTI"
checks = ["urls"]
returnbits = { URIBL_BLOCKED = 1, URIBL_BLACK = 2 }
"#,
        );
        assert_eq!(c.lists.len(), 2);
        assert!(c.needs_dns());
        let bad = mxguard_core::config::load_str(
            "[[rbl.lists]]\nzone = \"x\"\nsymbol = \"bad name\"\nreturncodes = { A = \"127.0.0\" }\n",
            "t.toml",
            &crate::sections(),
        );
        let errors = format!("{:?}", bad.err().unwrap());
        assert!(
            errors.contains("lists[0].symbol") && errors.contains("returncodes.A"),
            "{errors}"
        );
        assert!(!RblConfig::default().needs_dns());
    }

    #[test]
    fn answers_to_symbols() {
        let l = List {
            zone: "zen.example".into(),
            symbol: "SPAMHAUS".into(),
            checks: vec![Target::From],
            codes: vec![
                (
                    "SPAMHAUS_SBL".into(),
                    ReplyFilter::parse("127.0.0.2").unwrap(),
                ),
                (
                    "SPAMHAUS_XBL".into(),
                    ReplyFilter::parse("127.0.0.[4..7]").unwrap(),
                ),
                (
                    "SPAMHAUS_BLOCKED".into(),
                    ReplyFilter::parse("127.255.255.255").unwrap(),
                ),
            ],
            bits: vec![],
            prefixes: [(Target::From, "RBL".to_string())].into(),
        };
        let e = AtomicU64::new(0);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            l.symbols_for(Target::From, &[ip("127.0.0.2"), ip("127.0.0.5")], &e),
            ["RBL_SPAMHAUS_SBL", "RBL_SPAMHAUS_XBL"]
        );
        assert_eq!(
            l.symbols_for(Target::Received, &[ip("127.0.0.9")], &e),
            ["SPAMHAUS"]
        );
        assert_eq!(
            l.symbols_for(Target::From, &[ip("127.255.255.255")], &e),
            ["RBL_SPAMHAUS_BLOCKED"]
        );
        assert!(
            l.symbols_for(Target::From, &[ip("127.255.255.254"), ip("10.0.0.1")], &e)
                .is_empty()
        );
        assert_eq!(e.load(Ordering::Relaxed), 2);
        let bits = List {
            codes: vec![],
            bits: vec![
                ("URIBL_BLOCKED".into(), 1),
                ("URIBL_BLACK".into(), 2),
                ("URIBL_GREY".into(), 4),
            ],
            prefixes: BTreeMap::new(),
            ..l
        };
        assert_eq!(
            bits.symbols_for(Target::Urls, &[ip("127.0.0.6")], &e),
            ["URIBL_BLACK", "URIBL_GREY"]
        );
    }

    #[test]
    fn public_addresses() {
        for (ip, public) in [
            ("192.0.2.1", true),
            ("10.1.2.3", false),
            ("127.0.0.1", false),
            ("100.64.0.1", false),
            ("::1", false),
            ("2001:db8::1", true),
            ("fe80::1", false),
        ] {
            assert_eq!(is_public(ip.parse().unwrap()), public, "{ip}");
        }
    }
}
