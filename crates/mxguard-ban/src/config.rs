//! The `[ban]` config section.
//!
//! ```toml
//! [ban]
//! enabled = true
//! ignoreip = ["192.0.2.0/24", "file:/etc/mxguard/ban-allow"]
//!
//! [ban.jails.sshd]                 # filter defaults to the jail's name
//! journal = "ssh.service"          # or logpath = ["/var/log/auth.log"]
//!
//! [ban.jails.postfix]
//! filter = "postfix:more"
//! logpath = ["/var/log/mail.log"]
//! bantime = "1h"                   # fail2ban's defaults: maxretry 3, findtime 10m, bantime 1h
//! port = ["smtp", "submission"]
//! [ban.jails.postfix.increment]
//! multipliers = [1, 2, 4, 8, 16]
//! maxtime = "1w"
//! overalljails = true
//! [[ban.jails.postfix.actions]]
//! kind = "nftables"                # the action's own options beside `kind`
//!
//! [ban.filters.myapp]
//! failregex = ['^\S+ myapp\[\d+\]: login failed from <HOST>$']
//! # or: file = "/etc/fail2ban/filter.d/myapp.conf", options = { mode = "aggressive" }
//! ```
//!
//! Actions are kept as `ActionConfig { kind, options }`: the firewall
//! actions' own module builds them (`actions::build`), this section does
//! not know their keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mxguard_core::config::{Problems, Section};
use serde::{Deserialize, Serialize};

use crate::filter;
use crate::jail::{Increment, JailSettings};

/// A time: seconds as a number, or text with units (`90`, `10m`, `1h30m`,
/// `1d`, `1w`; `-1` for permanent where allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Time {
    Seconds(i64),
    Text(String),
}

impl Time {
    /// Seconds, or an error saying what is accepted.
    pub fn seconds(&self) -> Result<i64, String> {
        match self {
            Time::Seconds(s) => Ok(*s),
            Time::Text(t) => parse_time(t),
        }
    }
}

/// `10m`, `1h30m`, `2d`, `1w`, `45`, `-1`.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if c == ' ' {
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "`{text}` is not a time: use seconds or units s, m, h, d, w (`10m`, `1h30m`)"
                ));
            }
        };
        let n: i64 = num
            .parse()
            .map_err(|_| format!("`{text}` is not a time: a number must come before `{c}`"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("`{text}` is not a time: `{num}` has no unit"));
    }
    Ok(total)
}

/// One action of a jail: `kind` and the action's own keys, unread here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionConfig {
    pub kind: String,
    #[serde(flatten)]
    pub options: toml::Table,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncrementConfig {
    pub enabled: bool,
    pub factor: f64,
    pub multipliers: Vec<u64>,
    pub maxtime: Time,
    pub overalljails: bool,
}

impl Default for IncrementConfig {
    fn default() -> Self {
        IncrementConfig {
            enabled: true,
            factor: 1.0,
            multipliers: Vec::new(),
            maxtime: Time::Text("1w".into()),
            overalljails: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JailConfig {
    pub enabled: bool,
    /// A built-in (`sshd`, `postfix:aggressive`) or a `[ban.filters]` name;
    /// default: the jail's name.
    pub filter: Option<String>,
    pub logpath: Vec<PathBuf>,
    /// A systemd unit read through `journalctl -o json --follow -u UNIT`.
    pub journal: Option<String>,
    /// mxguard's own events this jail counts (`policy_reject`,
    /// `rate_limit`, `milter_reject`, `sasl_failure`).
    pub events: Vec<String>,
    /// Read existing lines of the files at the first start (default: from
    /// the end, then from the saved position).
    pub from_start: bool,
    pub maxretry: u32,
    pub findtime: Time,
    pub bantime: Time,
    pub ignoreip: Vec<String>,
    pub ignoreself: Option<bool>,
    pub port: Vec<String>,
    pub protocol: String,
    pub increment: Option<IncrementConfig>,
    pub actions: Vec<ActionConfig>,
}

impl Default for JailConfig {
    fn default() -> Self {
        JailConfig {
            enabled: true,
            filter: None,
            logpath: Vec::new(),
            journal: None,
            events: Vec::new(),
            from_start: false,
            maxretry: 3,
            findtime: Time::Seconds(600),
            bantime: Time::Seconds(3600),
            ignoreip: Vec::new(),
            ignoreself: None,
            port: Vec::new(),
            protocol: "tcp".into(),
            increment: None,
            actions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub prefregex: Option<String>,
    pub datepattern: Option<String>,
    /// A fail2ban filter .conf to load instead of failregex.
    pub file: Option<PathBuf>,
    /// Its options (`mode = "aggressive"`).
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BanConfig {
    pub enabled: bool,
    pub ignoreip: Vec<String>,
    pub ignoreself: bool,
    /// How often `serve` re-reads the store's bans (other hosts').
    pub sync_interval: Time,
    pub jails: BTreeMap<String, JailConfig>,
    pub filters: BTreeMap<String, FilterConfig>,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig {
            enabled: false,
            ignoreip: Vec::new(),
            ignoreself: true,
            sync_interval: Time::Seconds(5),
            jails: BTreeMap::new(),
            filters: BTreeMap::new(),
        }
    }
}

impl BanConfig {
    /// The numbers of a jail, checked.
    pub fn settings(&self, name: &str, jail: &JailConfig) -> Result<JailSettings, String> {
        let at = |key: &str, e: String| format!("[ban.jails.{name}] {key}: {e}");
        let findtime = jail.findtime.seconds().map_err(|e| at("findtime", e))?;
        let bantime = jail.bantime.seconds().map_err(|e| at("bantime", e))?;
        if findtime <= 0 {
            return Err(at("findtime", "must be more than 0 seconds".into()));
        }
        if bantime == 0 || bantime < -1 {
            return Err(at(
                "bantime",
                "must be more than 0 seconds, or -1 for permanent".into(),
            ));
        }
        if jail.maxretry == 0 {
            return Err(at("maxretry", "must be at least 1".into()));
        }
        let increment = match &jail.increment {
            Some(i) if i.enabled => {
                let maxtime = i
                    .maxtime
                    .seconds()
                    .map_err(|e| at("increment.maxtime", e))?;
                if i.multipliers.contains(&0) {
                    return Err(at(
                        "increment.multipliers",
                        "a multiplier of 0 would lift the ban".into(),
                    ));
                }
                if !(i.factor > 0.0 && i.factor.is_finite()) {
                    return Err(at("increment.factor", "must be a number above 0".into()));
                }
                Some(Increment {
                    factor: i.factor,
                    multipliers: i.multipliers.clone(),
                    maxtime: maxtime.max(0) as u64,
                    overalljails: i.overalljails,
                })
            }
            _ => None,
        };
        Ok(JailSettings {
            name: name.to_string(),
            maxretry: jail.maxretry,
            findtime: findtime as u64,
            bantime,
            increment,
            ports: jail.port.clone(),
            protocol: jail.protocol.clone(),
        })
    }

    /// The filter a jail names, built (built-in, `[ban.filters]`, or a
    /// fail2ban .conf).
    pub fn build_filter(
        &self,
        jail_name: &str,
        jail: &JailConfig,
    ) -> Result<Box<dyn filter::Filter>, String> {
        // A jail fed only by mxguard's own events reads no line: it needs
        // no filter, and its name need not be one; any built-in stands in.
        if jail.filter.is_none()
            && jail.logpath.is_empty()
            && jail.journal.is_none()
            && !jail.events.is_empty()
            && !self.filters.contains_key(jail_name)
        {
            return filter::builtin("sshd").map_err(|e| e.0);
        }
        let spec = jail.filter.clone().unwrap_or_else(|| jail_name.to_string());
        let (name, _) = filter::split_spec(&spec);
        if let Some(def) = self.filters.get(name) {
            return build_custom(name, def).map_err(|e| format!("[ban.filters.{name}]: {e}"));
        }
        filter::builtin(&spec).map_err(|e| format!("[ban.jails.{jail_name}] filter: {e}"))
    }
}

/// A `[ban.filters.NAME]` filter.
pub fn build_custom(name: &str, def: &FilterConfig) -> Result<Box<dyn filter::Filter>, String> {
    let definition = match &def.file {
        Some(path) => {
            let options: Vec<(String, String)> = def
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut loaded = filter::conf::load(path, &options)
                .map_err(|e| e.0)?
                .definition;
            loaded.ignoreregex.extend(def.ignoreregex.iter().cloned());
            loaded
        }
        None => filter::custom::Definition {
            failregex: def.failregex.clone(),
            ignoreregex: def.ignoreregex.clone(),
            prefregex: def.prefregex.clone(),
            datepattern: def.datepattern.clone(),
        },
    };
    Ok(Box::new(
        filter::custom::Custom::new(name, &definition).map_err(|e| e.0)?,
    ))
}

impl Section for BanConfig {
    const KEY: &'static str = "ban";

    fn validate(&self, problems: &mut Problems) {
        for (name, jail) in &self.jails {
            if let Err(e) = self.settings(name, jail) {
                problems.at(format!("jails.{name}"), e);
            }
            if !jail.enabled {
                continue;
            }
            if let Err(e) = self.build_filter(name, jail) {
                problems.at(format!("jails.{name}.filter"), e);
            }
            if jail.logpath.is_empty() && jail.journal.is_none() && jail.events.is_empty() {
                problems.at(
                    format!("jails.{name}"),
                    "has no source: give logpath, journal (a systemd unit) or events",
                );
            }
            for p in &jail.logpath {
                if p.extension().is_some_and(|e| e == "gz") {
                    problems.at(
                        format!("jails.{name}.logpath"),
                        format!(
                            "{} is compressed: mxguard does not read .gz files",
                            p.display()
                        ),
                    );
                }
            }
            let mut ignore = self.ignoreip.clone();
            ignore.extend(jail.ignoreip.iter().cloned());
            if let Err(e) = crate::ignore::IgnoreList::new(&ignore, false) {
                problems.at(format!("jails.{name}.ignoreip"), e);
            }
            for (i, a) in jail.actions.iter().enumerate() {
                if a.kind.is_empty() {
                    problems.at(
                        format!("jails.{name}.actions[{i}].kind"),
                        "is missing (nftables, iptables, ufw, command, smtp)",
                    );
                }
            }
        }
        for (name, f) in &self.filters {
            if let Err(e) = build_custom(name, f) {
                problems.at(format!("filters.{name}"), e);
            }
        }
        if let Err(e) = self.sync_interval.seconds() {
            problems.at("sync_interval", e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("600"), Ok(600));
        assert_eq!(parse_time("10m"), Ok(600));
        assert_eq!(parse_time("1h30m"), Ok(5400));
        assert_eq!(parse_time("1w"), Ok(604_800));
        assert_eq!(parse_time("-1"), Ok(-1));
        assert!(parse_time("10 parsecs").is_err());
        assert!(parse_time("10").is_ok());
        assert!(parse_time("5x").unwrap_err().contains("units"));
    }

    #[test]
    fn section_reads_and_checks() {
        let c: BanConfig = toml::from_str(
            r#"
            enabled = true
            [jails.sshd]
            journal = "ssh.service"
            [jails.postfix]
            filter = "postfix:aggressive"
            logpath = ["/var/log/mail.log"]
            bantime = "2h"
            [jails.postfix.increment]
            multipliers = [1, 2, 4]
            [[jails.postfix.actions]]
            kind = "nftables"
            table = "mxguard"
            "#,
        )
        .unwrap();
        let s = c.settings("postfix", &c.jails["postfix"]).unwrap();
        assert_eq!((s.maxretry, s.findtime, s.bantime), (3, 600, 7200));
        assert_eq!(s.increment.unwrap().maxtime, 604_800);
        assert_eq!(
            c.jails["postfix"].actions[0].options["table"].as_str(),
            Some("mxguard")
        );
        assert!(c.build_filter("sshd", &c.jails["sshd"]).is_ok());
        let bad = JailConfig {
            filter: Some("postfix:loud".into()),
            ..JailConfig::default()
        };
        assert!(
            c.build_filter("x", &bad)
                .err()
                .unwrap()
                .contains("no mode `loud`")
        );
    }
}
