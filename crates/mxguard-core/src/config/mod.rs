//! The config model: one TOML file, every section optional with working defaults.
//!
//! Core holds the global sections (store, scan, actions, symbols, groups)
//! and, for now, the front ends'. A check's section
//! lives beside the check and is registered ([`Section`], [`Registry`]);
//! the loader reads core and registered sections from one parsed document,
//! so `mxguard config check` validates the whole file in one pass with
//! exact positions, without building the pipeline.

mod load;
mod milter;
mod policy;
mod section;
mod units;

pub use load::{
    ConfigError, LoadedConfig, MAX_CONFIG_SIZE, MAX_ERRORS, Position, load_file, load_str,
};
pub use milter::{
    HeaderRemove, MilterConfig, MilterHeaders, OversizeAction, SCAN_MEMORY_FACTOR, parse_mode,
};
pub use policy::{
    DnsConfig, DnsFailure, GreylistConfig, PolicyConfig, RestrictionLists, StoreFailure,
};
pub use section::{Problem, Problems, Registry, SCORE_HINT, Section, Sections};
pub use units::{ByteSize, Millis, Seconds, Threshold};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where `mxguard` looks for its config when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mxguard/mxguard.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub store: StoreConfig,
    pub scan: ScanConfig,
    pub actions: ActionsConfig,
    /// Per-symbol weight, group and description overrides.
    pub symbols: BTreeMap<String, SymbolOverride>,
    pub groups: BTreeMap<String, GroupConfig>,
    pub milter: MilterConfig,
    pub policy: PolicyConfig,
    pub greylist: GreylistConfig,
    pub dns: DnsConfig,
    /// The registered sections (the checks'), read with [`Config::section`];
    /// `config dump` prints them after the core ones.
    #[serde(skip_deserializing, flatten)]
    pub sections: Sections,
}

/// The top-level keys of [`Config`]'s own fields; a registered section
/// may not take one.
pub const CORE_KEYS: &[&str] = &[
    "store", "scan", "actions", "symbols", "groups", "milter", "policy", "greylist", "dns",
];

impl Config {
    /// The registered section `T`: as loaded, or its default when the file
    /// leaves it out or the config was built without it.
    pub fn section<T: Section>(&self) -> &T {
        self.sections
            .get::<T>()
            .unwrap_or_else(|| section::default_of::<T>())
    }

    /// Replaces section `T` (tests, and tools that build a config in code).
    pub fn set_section<T: Section>(&mut self, value: T) {
        self.sections.set(value);
    }

    /// Builder form of [`Config::set_section`].
    #[must_use]
    pub fn with_section<T: Section>(mut self, value: T) -> Config {
        self.set_section(value);
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the embedded store (and later other state).
    pub data_dir: PathBuf,
    /// How many recent verdicts the history keeps.
    pub history_size: u32,
    /// Redis instead of the embedded store: one server
    /// (`"redis://[user:password@]host:port/db"`, `"rediss://…"` with TLS,
    /// `"unix:///run/redis/redis.sock?db=0"`) or the seed nodes of a Redis
    /// Cluster (a list). Left out: the embedded store in `data_dir`.
    pub url: Option<StoreUrl>,
    /// Reads (not writes) from this server, a replica of `url`, as rspamd's
    /// `read_servers`; single server only.
    pub read_url: Option<String>,
    /// The longest one Redis operation may take, connecting included; past
    /// it the operation fails and the front ends answer as for a store
    /// failure (`[policy] store_failure`).
    pub timeout: Millis,
    /// Put in front of every key in Redis, to share a server with other
    /// programs (`"mxguard:"`); empty by default.
    pub key_prefix: String,
    /// `rediss://` only: PEM file of the CA that signed the Redis server's
    /// certificate; left out, the system's trusted CAs.
    pub tls_ca_file: Option<PathBuf>,
    /// `rediss://` only: client certificate (PEM), for a Redis server with
    /// `tls-auth-clients yes`; with `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `rediss://` only: the client certificate's private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// `rediss://` only: do not check the server's certificate at all
    /// (logged as a warning at start); for a first setup, not for use.
    pub tls_insecure: bool,
}

/// `[store] url`: one Redis server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoreUrl {
    One(String),
    Cluster(Vec<String>),
}

impl StoreUrl {
    /// The URLs, one for a single server.
    pub fn urls(&self) -> Vec<String> {
        match self {
            StoreUrl::One(u) => vec![u.clone()],
            StoreUrl::Cluster(v) => v.clone(),
        }
    }
}

/// The URL schemes `[store] url` accepts.
pub const STORE_URL_SCHEMES: &[&str] = &["redis://", "rediss://", "unix://", "redis+unix://"];

impl StoreConfig {
    /// Problems with the Redis settings, as (key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let scheme_ok = |u: &str| STORE_URL_SCHEMES.iter().any(|s| u.starts_with(s));
        let hint = "write \"redis://host:6379/0\", \"rediss://host:6380/0\" (TLS) or \"unix:///run/redis/redis.sock\"";
        if let Some(url) = &self.url {
            let urls = url.urls();
            if urls.is_empty() {
                out.push((
                    "store.url".into(),
                    format!("an empty list names no Redis Cluster node; {hint}, or leave url out for the embedded store"),
                ));
            }
            for u in &urls {
                if !scheme_ok(u) {
                    out.push((
                        "store.url".into(),
                        format!("`{u}` is not a Redis URL; {hint}"),
                    ));
                }
            }
            if matches!(url, StoreUrl::Cluster(_)) && urls.iter().any(|u| u.contains("unix://")) {
                out.push((
                    "store.url".into(),
                    "Redis Cluster nodes are reached over TCP: give redis:// or rediss:// URLs"
                        .into(),
                ));
            }
            if matches!(url, StoreUrl::Cluster(_)) && self.read_url.is_some() {
                out.push((
                    "store.read_url".into(),
                    "a Redis Cluster routes reads itself: leave read_url out".into(),
                ));
            }
        } else if self.read_url.is_some() {
            out.push((
                "store.read_url".into(),
                "read_url needs url (the server that takes writes)".into(),
            ));
        }
        if let Some(u) = &self.read_url
            && !scheme_ok(u)
        {
            out.push((
                "store.read_url".into(),
                format!("`{u}` is not a Redis URL; {hint}"),
            ));
        }
        let tls_url = self
            .url
            .iter()
            .flat_map(StoreUrl::urls)
            .chain(self.read_url.clone())
            .any(|u| u.starts_with("rediss://"));
        if !tls_url {
            for (key, set) in [
                ("tls_ca_file", self.tls_ca_file.is_some()),
                ("tls_cert_file", self.tls_cert_file.is_some()),
                ("tls_key_file", self.tls_key_file.is_some()),
                ("tls_insecure", self.tls_insecure),
            ] {
                if set {
                    out.push((
                        format!("store.{key}"),
                        "is for TLS to Redis, and no url is rediss://: give url = \"rediss://host:port/db\", or leave it out".into(),
                    ));
                }
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            out.push((
                if self.tls_cert_file.is_some() { "store.tls_key_file" } else { "store.tls_cert_file" }.into(),
                "tls_cert_file and tls_key_file go together: give both (the client certificate and its key) or neither".into(),
            ));
        }
        if !(1..=60_000).contains(&self.timeout.0) {
            out.push((
                "store.timeout".into(),
                "must be more than zero and at most a minute; give a time like \"1s\"".into(),
            ));
        }
        out
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("/var/lib/mxguard"),
            history_size: 1000,
            url: None,
            read_url: None,
            timeout: Millis(1000),
            key_prefix: String::new(),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_insecure: false,
        }
    }
}

/// `[scan] max_map_size` by default: room for a million-line list, small
/// beside a 2 GB machine even once parsed.
pub const DEFAULT_MAX_MAP_SIZE: u64 = 32 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// Messages larger than this are not parsed; the verdict says so.
    pub max_message_size: ByteSize,
    /// How often a map file's modification time is checked, at most.
    pub map_check_interval: Seconds,
    /// Largest map file (multimap lists, access maps, whitelists, rule
    /// tables) that is loaded; a larger one is refused at start and ignored
    /// at reload, so a mistake cannot eat the machine's memory.
    pub max_map_size: ByteSize,
    /// The longest a scan may wait on its checks (DNS, store, clamd):
    /// at this deadline every check still waiting gives its time-out
    /// symbol and the verdict is made from the rest. At most an hour.
    pub scan_timeout: Millis,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            max_message_size: ByteSize(50 * 1024 * 1024),
            map_check_interval: Seconds(1),
            max_map_size: ByteSize(DEFAULT_MAX_MAP_SIZE),
            scan_timeout: Millis(30_000),
        }
    }
}

/// Action thresholds, rspamd's defaults. `false` disables an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    pub reject: Threshold,
    pub rewrite_subject: Threshold,
    pub add_header: Threshold,
    pub greylist: Threshold,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            reject: Threshold(Some(15.0)),
            rewrite_subject: Threshold(None),
            add_header: Threshold(Some(6.0)),
            greylist: Threshold(Some(4.0)),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolOverride {
    /// The weight; 0 disables the symbol's effect on the score.
    pub score: Option<f64>,
    pub group: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// Caps the group's positive total.
    pub max_score: Option<f64>,
    pub description: Option<String>,
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::config::{Registry, load_str};

    fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
        load_str(text, "t.toml", &Registry::new())
    }

    #[test]
    fn store_url_is_one_server_or_cluster_nodes() {
        let c = load("").unwrap();
        assert_eq!(c.store.url, None, "embedded by default");
        assert_eq!(c.store.timeout.0, 1000);
        let c = load("[store]\nurl = \"unix:///run/redis/redis.sock?db=2\"\ntimeout = \"250ms\"\n")
            .unwrap();
        assert_eq!(
            c.store.url.unwrap().urls(),
            vec!["unix:///run/redis/redis.sock?db=2"]
        );
        assert_eq!(c.store.timeout.0, 250);
        let c = load(
            "[store]\nurl = \"rediss://r:6380/0\"\ntls_ca_file = \"/etc/mxguard/redis-ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(
            c.store.tls_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/mxguard/redis-ca.pem"))
        );
        let c = load("[store]\nurl = [\"redis://a:7001\", \"redis://b:7001\"]\n").unwrap();
        assert!(matches!(c.store.url, Some(StoreUrl::Cluster(ref v)) if v.len() == 2));
    }

    #[test]
    fn bad_store_settings_name_their_key() {
        for (text, key, says) in [
            (
                "[store]\nurl = \"http://x\"\n",
                "store.url",
                "not a Redis URL",
            ),
            ("[store]\nurl = []\n", "store.url", "no Redis Cluster node"),
            (
                "[store]\nread_url = \"redis://r\"\n",
                "store.read_url",
                "needs url",
            ),
            (
                "[store]\nurl = [\"redis://a:1\", \"redis://b:1\"]\nread_url = \"redis://r\"\n",
                "store.read_url",
                "routes reads itself",
            ),
            (
                "[store]\nurl = \"redis://a\"\ntimeout = 0\n",
                "store.timeout",
                "more than zero",
            ),
            (
                "[store]\nurl = \"redis://a\"\ntls_ca_file = \"/etc/ca.pem\"\n",
                "store.tls_ca_file",
                "no url is rediss://",
            ),
            (
                "[store]\ntls_insecure = true\n",
                "store.tls_insecure",
                "no url is rediss://",
            ),
            (
                "[store]\nurl = \"rediss://a\"\ntls_cert_file = \"/etc/c.pem\"\n",
                "store.tls_key_file",
                "go together",
            ),
        ] {
            let e = load(text).expect_err(text);
            assert_eq!(e[0].key, key, "{text}");
            assert!(e[0].message.contains(says), "{text}: {}", e[0].message);
        }
    }
}
