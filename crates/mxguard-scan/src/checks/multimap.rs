//! Multimap lists, as in rspamd's multimap.conf: a list of IPs, addresses,
//! domains, HELO names or header values in a map file, giving a symbol, a
//! score or a forced action (accept = whitelist, reject = blacklist).
//!
//! Map lines are one entry each, with `#` comments; Postfix access-map lines
//! (`pattern action [text]`) work too, and an entry's own action (OK,
//! REJECT text, DUNNO, …) overrides the list's.

use super::{BuildError, BuildReport, Check};
use crate::Task;
use mxguard_core::config::{Config, Problems, Section};
use mxguard_core::envelope::strip_path;
use mxguard_core::iptable::{IpTable, parse_network};
use mxguard_core::maps::{LineError, MapData, MapFile, MapLimits, logical_lines};
use mxguard_core::rules::RuleAction;
use mxguard_core::{Action, Envelope, ScanResults, SmtpStage, SymbolDef};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What a multimap list is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapType {
    /// Client IP address: addresses, CIDR, Postfix-style prefixes like `10.1.2`.
    Ip,
    /// Sender: envelope MAIL FROM, or the From header with `source = "header"`.
    From,
    /// Recipients: envelope RCPT TO, or the To/Cc headers with `source = "header"`.
    Rcpt,
    /// HELO/EHLO name.
    Helo,
    /// A header's value (`header = "..."`).
    Header,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressSource {
    #[default]
    Envelope,
    Header,
}

/// How addresses are compared with a list's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressMatch {
    /// The whole address (case-insensitive), or its domain when the entry is
    /// `@domain`, or its local part when the entry is `user@`.
    #[default]
    Email,
    /// The domain exactly (rspamd's `email:domain`).
    Domain,
    /// The domain and all its subdomains (rspamd's `email:domain:tld`).
    Subdomain,
}

/// A multimap list, as in rspamd's multimap.conf.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultimapConfig {
    /// The symbol the list emits.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MapType,
    /// The map file: one entry per line, `#` comments, Postfix access lines.
    pub map: Spanned<PathBuf>,
    #[serde(default)]
    pub source: AddressSource,
    #[serde(default, rename = "match")]
    pub matching: AddressMatch,
    /// The header name, for `type = "header"`.
    #[serde(default)]
    pub header: Option<String>,
    /// Weight of the symbol (default 1.0).
    #[serde(default)]
    pub score: Option<f64>,
    /// `accept` or `reject` (any action name), forced on a match.
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    /// SMTP text for a forced reject.
    #[serde(default)]
    pub message: Option<String>,
    /// Runs before the other checks; an accept skips them, and the milter
    /// applies it at the SMTP stage where its data is known.
    #[serde(default)]
    pub prefilter: bool,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `[[multimap]]`: every list, in file order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MultimapList(pub Vec<MultimapConfig>);

impl Section for MultimapList {
    const KEY: &'static str = "multimap";

    fn validate(&self, problems: &mut Problems) {
        for (i, m) in self.0.iter().enumerate() {
            problems.finite_score(format!("[{i}].score"), m.score);
        }
        for (i, m) in self.0.iter().enumerate() {
            if m.kind == MapType::Header && m.header.as_deref().is_none_or(str::is_empty) {
                problems.at_span(
                    m.map.span(),
                    format!("[{i}].header"),
                    format!(
                        "list {} has type = \"header\" but no header = \"Name\"",
                        m.name
                    ),
                );
            }
            if m.source == AddressSource::Header && !matches!(m.kind, MapType::From | MapType::Rcpt)
            {
                problems.at_span(
                    m.map.span(),
                    format!("[{i}].source"),
                    "source = \"header\" applies to type = \"from\" or \"rcpt\" only",
                );
            }
            if let Some(a) = &m.action
                && Action::parse(a.get_ref()).is_none()
            {
                problems.at_span(
                    a.span(),
                    format!("[{i}].action"),
                    format!(
                        "unknown action `{}`, expected accept, reject, soft reject, add header, discard or quarantine",
                        a.get_ref()
                    ),
                );
            }
            problems.symbol_name(m.map.span(), format!("[{i}].name"), &m.name);
        }
    }
}

/// What a map entry says besides "present".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryValue {
    pub action: Option<RuleAction>,
    /// Free text after the pattern, shown as a symbol option.
    pub note: Option<String>,
}

fn parse_value(rest: &str) -> Result<EntryValue, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(EntryValue::default());
    }
    match RuleAction::parse(rest) {
        Ok(a) => Ok(EntryValue {
            action: Some(a),
            note: None,
        }),
        Err(e) => {
            let word = rest.split_whitespace().next().unwrap_or("");
            let looks_like_action = word.len() > 1
                && word
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit());
            if looks_like_action {
                Err(e)
            } else {
                Ok(EntryValue {
                    action: None,
                    note: Some(rest.to_string()),
                })
            }
        }
    }
}

/// A list of client addresses: single IPs, CIDR networks and Postfix-style
/// partial addresses (`192.168.1` = 192.168.1.0/24).
#[derive(Debug, Default)]
pub struct IpList(IpTable<EntryValue>);

impl IpList {
    pub fn lookup(&self, ip: IpAddr) -> Option<&EntryValue> {
        self.0.lookup(ip)
    }
}

impl MapData for IpList {
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
        let mut list = IpTable::default();
        for (line, content) in logical_lines(text) {
            let (pat, rest) = content
                .split_once(char::is_whitespace)
                .unwrap_or((&content, ""));
            match parse_network(pat).and_then(|n| parse_value(rest).map(|v| (n, v))) {
                Ok((net, v)) => list.insert(net, v),
                Err(message) => errors.push(LineError {
                    file: path.to_path_buf(),
                    line,
                    message,
                }),
            }
        }
        IpList(list)
    }
}

/// A list of addresses, local parts, domains or plain values, lower-cased.
#[derive(Debug, Default)]
pub struct NameList {
    /// `user@domain` entries.
    addresses: HashMap<String, EntryValue>,
    /// `user@` entries.
    locals: HashMap<String, EntryValue>,
    /// `domain`, `@domain` entries, and any value without `@`.
    names: HashMap<String, EntryValue>,
}

impl MapData for NameList {
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
        let mut list = NameList::default();
        for (line, content) in logical_lines(text) {
            let (pat, rest) = content
                .split_once(char::is_whitespace)
                .unwrap_or((&content, ""));
            let err = |message: String| LineError {
                file: path.to_path_buf(),
                line,
                message,
            };
            if pat.starts_with('/') {
                errors.push(err(format!(
                    "`{pat}`: regular expressions are not supported in multimap lists; use [[rules]]"
                )));
                continue;
            }
            let value = match parse_value(rest) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(err(e));
                    continue;
                }
            };
            let pat = strip_path(pat).to_lowercase();
            match pat.matches('@').count() {
                0 => {
                    list.names
                        .insert(pat.trim_end_matches('.').to_string(), value);
                }
                1 => {
                    let (local, domain) = pat.split_once('@').unwrap_or_default();
                    match (local.is_empty(), domain.is_empty()) {
                        (true, true) => errors.push(err("`@` alone is not an entry".into())),
                        (true, false) => {
                            list.names.insert(domain.to_string(), value);
                        }
                        (false, true) => {
                            list.locals.insert(local.to_string(), value);
                        }
                        (false, false) => {
                            list.addresses.insert(pat.clone(), value);
                        }
                    }
                }
                _ => errors.push(err(format!("`{pat}` has more than one `@`"))),
            }
        }
        list
    }
}

impl NameList {
    /// Looks up an address (or a plain value) according to `matching`.
    pub fn lookup(&self, value: &str, matching: AddressMatch) -> Option<&EntryValue> {
        let value = strip_path(value).to_lowercase();
        let (local, domain) = match value.rsplit_once('@') {
            Some((l, d)) => (Some(l), d.trim_end_matches('.')),
            None => (None, value.trim_end_matches('.')),
        };
        match matching {
            AddressMatch::Email => {
                if local.is_some()
                    && let Some(v) = self.addresses.get(&value)
                {
                    return Some(v);
                }
                if let Some(l) = local
                    && let Some(v) = self.locals.get(l)
                {
                    return Some(v);
                }
                self.names.get(domain)
            }
            AddressMatch::Domain => self.names.get(domain),
            AddressMatch::Subdomain => {
                let mut d = domain;
                loop {
                    if let Some(v) = self.names.get(d) {
                        return Some(v);
                    }
                    match d.split_once('.') {
                        Some((_, parent)) if !parent.is_empty() => d = parent,
                        _ => return None,
                    }
                }
            }
        }
    }
}

enum ListMap {
    Ip(MapFile<IpList>),
    Names(MapFile<NameList>),
}

struct List {
    symbol: String,
    kind: MapType,
    source: AddressSource,
    matching: AddressMatch,
    header: Option<String>,
    action: Option<Action>,
    message: Option<String>,
    prefilter: bool,
    map: ListMap,
}

pub struct Multimap {
    lists: Vec<List>,
    defs: Vec<SymbolDef>,
}

impl Multimap {
    pub fn new(config: &Config, report: &mut BuildReport) -> Multimap {
        let limits = MapLimits::of(&config.scan);
        let mut lists = Vec::new();
        let mut defs = Vec::new();
        for (i, c) in config.section::<MultimapList>().0.iter().enumerate() {
            match build_list(c, limits, report) {
                Ok(list) => {
                    defs.push(SymbolDef::new(
                        &c.name,
                        c.score.unwrap_or(1.0),
                        c.group.as_deref().unwrap_or("multimap"),
                        c.description.as_deref().unwrap_or(""),
                    ));
                    lists.push(list);
                }
                Err(message) => report.errors.push(BuildError {
                    key: format!("multimap[{i}].map"),
                    span: Some(c.map.span()),
                    message,
                }),
            }
        }
        Multimap { lists, defs }
    }

    fn run_lists(&self, prefilter: bool, task: &Task<'_>, results: &mut ScanResults) {
        for list in self.lists.iter().filter(|l| l.prefilter == prefilter) {
            let candidates = candidates(list, task);
            list.check(candidates.iter().map(String::as_str), results);
        }
    }
}

fn build_list(
    c: &MultimapConfig,
    limits: MapLimits,
    report: &mut BuildReport,
) -> Result<List, String> {
    let path = c.map.get_ref();
    let map = if c.kind == MapType::Ip {
        let (m, errs) = MapFile::<IpList>::load(path, limits)?;
        report.line_errors.extend(errs);
        ListMap::Ip(m)
    } else {
        let (m, errs) = MapFile::<NameList>::load(path, limits)?;
        report.line_errors.extend(errs);
        ListMap::Names(m)
    };
    Ok(List {
        symbol: c.name.clone(),
        kind: c.kind,
        source: c.source,
        matching: c.matching,
        header: c.header.clone(),
        action: c.action.as_ref().and_then(|a| Action::parse(a.get_ref())),
        message: c.message.clone(),
        prefilter: c.prefilter,
        map,
    })
}

/// The values a list is matched against, for one message.
fn candidates(list: &List, task: &Task<'_>) -> Vec<String> {
    let env = task.envelope;
    let header_addresses = |names: &[&str]| -> Vec<String> {
        task.headers()
            .iter()
            .filter(|h| names.iter().any(|n| h.name().eq_ignore_ascii_case(n)))
            .filter_map(|h| h.value.as_address())
            .flat_map(|a| a.iter().filter_map(|x| x.address().map(str::to_string)))
            .collect()
    };
    match (list.kind, list.source) {
        (MapType::Ip, _) => env.ip.map(|ip| ip.to_string()).into_iter().collect(),
        (MapType::Helo, _) => env.helo.iter().cloned().collect(),
        (MapType::From, AddressSource::Envelope) => env
            .mail_from
            .iter()
            .filter(|f| !f.is_empty())
            .cloned()
            .collect(),
        (MapType::From, AddressSource::Header) => header_addresses(&["From"]),
        (MapType::Rcpt, AddressSource::Envelope) => env.rcpts.clone(),
        (MapType::Rcpt, AddressSource::Header) => header_addresses(&["To", "Cc"]),
        (MapType::Header, _) => list
            .header
            .as_deref()
            .map(|h| task.header_values(h))
            .unwrap_or_default(),
    }
}

impl List {
    /// Looks each candidate up; the first that matches decides.
    fn check<'v>(&self, values: impl Iterator<Item = &'v str>, results: &mut ScanResults) {
        for value in values {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let hit = match &self.map {
                ListMap::Ip(m) => {
                    let Ok(ip) = value.parse::<IpAddr>() else {
                        continue;
                    };
                    m.get().lookup(ip).cloned()
                }
                ListMap::Names(m) => m.get().lookup(value, self.matching).cloned(),
            };
            let Some(entry) = hit else { continue };
            if entry.action == Some(RuleAction::Dunno) {
                continue;
            }
            let mut options = vec![value.to_string()];
            options.extend(entry.note.clone());
            results.insert(&self.symbol, options);
            let forced = match &entry.action {
                Some(a) => a.forced(),
                None => self.action.map(|a| (a, None)),
            };
            if let Some((action, text)) = forced {
                let text = text.or_else(|| self.message.clone()).or_else(|| {
                    (action != Action::NoAction).then(|| format!("Blocked by list {}", self.symbol))
                });
                results.force(action, text, &self.symbol);
            }
            return;
        }
    }

    /// The stage at which this list's data is known, for early answers.
    fn stage(&self) -> Option<SmtpStage> {
        match (self.kind, self.source) {
            (MapType::Ip, _) => Some(SmtpStage::Connect),
            (MapType::Helo, _) => Some(SmtpStage::Helo),
            (MapType::From, AddressSource::Envelope) => Some(SmtpStage::MailFrom),
            (MapType::Rcpt, AddressSource::Envelope) => Some(SmtpStage::Rcpt),
            _ => None,
        }
    }
}

impl Check for Multimap {
    fn name(&self) -> &'static str {
        "multimap"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        self.defs.clone()
    }

    fn prefilter(&self, task: &Task<'_>, results: &mut ScanResults) {
        self.run_lists(true, task, results);
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        self.run_lists(false, task, results);
    }

    fn acts_early_at(&self, stage: SmtpStage) -> bool {
        self.lists
            .iter()
            .any(|l| l.prefilter && l.stage() == Some(stage))
    }

    fn early(&self, stage: SmtpStage, env: &Envelope, results: &mut ScanResults) {
        for list in self
            .lists
            .iter()
            .filter(|l| l.prefilter && l.stage() == Some(stage))
        {
            let value: Option<String> = match stage {
                SmtpStage::Connect => env.ip.map(|ip| ip.to_string()),
                SmtpStage::Helo => env.helo.clone(),
                SmtpStage::MailFrom => env.mail_from.clone().filter(|f| !f.is_empty()),
                // Each recipient is judged as it arrives.
                SmtpStage::Rcpt => env.rcpts.last().cloned(),
            };
            list.check(value.iter().map(String::as_str), results);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> (NameList, Vec<LineError>) {
        let mut e = Vec::new();
        (NameList::parse(Path::new("t.map"), text, &mut e), e)
    }

    fn ips(text: &str) -> (IpList, Vec<LineError>) {
        let mut e = Vec::new();
        (IpList::parse(Path::new("ip.map"), text, &mut e), e)
    }

    #[test]
    fn ip_entries_cidr_and_prefixes() {
        let (l, e) = ips(
            "192.0.2.7\n10.0.0.0/8 REJECT go away\n172.16.5\n2001:db8::/32\nnot-an-ip\n10.1.1.1/33\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].line, 5);
        assert!(l.lookup("192.0.2.7".parse().unwrap()).is_some());
        assert!(l.lookup("192.0.2.8".parse().unwrap()).is_none());
        let v = l.lookup("10.9.8.7".parse().unwrap()).unwrap();
        assert_eq!(v.action, Some(RuleAction::Reject(Some("go away".into()))));
        assert!(l.lookup("172.16.5.200".parse().unwrap()).is_some());
        assert!(l.lookup("172.16.6.1".parse().unwrap()).is_none());
        assert!(l.lookup("2001:db8:1::5".parse().unwrap()).is_some());
        assert!(l.lookup("2001:db9::5".parse().unwrap()).is_none());
        assert!(l.lookup("::ffff:192.0.2.7".parse().unwrap()).is_some());
    }

    #[test]
    fn address_matching_modes() {
        let (l, e) = names(
            "spammer@bad.example\n@evil.example\npostmaster@\nexample.net OK\nrelaxed.example  known partner\n",
        );
        assert!(e.is_empty(), "{e:?}");
        use AddressMatch::*;
        assert!(l.lookup("<Spammer@BAD.example>", Email).is_some());
        assert!(l.lookup("other@bad.example", Email).is_none());
        assert!(l.lookup("x@evil.example", Email).is_some());
        assert!(l.lookup("postmaster@anything.org", Email).is_some());
        assert!(l.lookup("x@sub.evil.example", Email).is_none());
        assert!(l.lookup("x@evil.example", Domain).is_some());
        assert!(l.lookup("x@sub.evil.example", Domain).is_none());
        assert!(l.lookup("x@a.b.evil.example", Subdomain).is_some());
        assert!(l.lookup("x@notevil.example", Subdomain).is_none());
        assert_eq!(
            l.lookup("a@example.net", Domain).unwrap().action,
            Some(RuleAction::Accept)
        );
        assert_eq!(
            l.lookup("a@relaxed.example", Domain)
                .unwrap()
                .note
                .as_deref(),
            Some("known partner")
        );
    }

    #[test]
    fn broken_lines_are_reported() {
        let (_, e) = names("good.example\n/regex/ REJECT\na@b@c\nbad.example REJCT typo\n");
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4], "{e:?}");
    }
}
