//! The config model: one TOML file, every section optional with working defaults.
//!
//! The structs of every check live here, not in the scanner, so that
//! `mxguard config check` validates the whole file in one pass with exact
//! positions, without building the pipeline.

mod auth;
mod classifier;
mod load;
mod milter;
mod policy;
mod units;

pub use auth::{ArcVerifyConfig, AuthConfig, DkimConfig, DmarcActions, DmarcConfig, SpfConfig};
pub use classifier::ClassifierConfig;
pub use load::{
    ConfigError, LoadedConfig, MAX_CONFIG_SIZE, MAX_ERRORS, Position, load_file, load_str,
};
pub use milter::{
    HeaderRemove, MilterConfig, MilterHeaders, OversizeAction, SCAN_MEMORY_FACTOR, parse_mode,
};
pub use policy::{
    DnsConfig, DnsFailure, GreylistConfig, PolicyConfig, RestrictionLists, StoreFailure,
};
pub use units::{ByteSize, Millis, Seconds, Threshold};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

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
    pub gtube: GtubeConfig,
    pub headers: HeaderChecksConfig,
    pub rules: Vec<RuleConfig>,
    pub rule_tables: Vec<RuleTableConfig>,
    pub multimap: Vec<MultimapConfig>,
    pub milter: MilterConfig,
    pub policy: PolicyConfig,
    pub greylist: GreylistConfig,
    pub dns: DnsConfig,
    pub classifier: ClassifierConfig,
    pub auth: AuthConfig,
    pub spf: SpfConfig,
    pub dkim: DkimConfig,
    pub dmarc: DmarcConfig,
    pub arc_verify: ArcVerifyConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the embedded store (and later other state).
    pub data_dir: PathBuf,
    /// How many recent verdicts the history keeps.
    pub history_size: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("/var/lib/mxguard"),
            history_size: 1000,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GtubeConfig {
    pub enabled: bool,
}

impl Default for GtubeConfig {
    fn default() -> Self {
        GtubeConfig { enabled: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderChecksConfig {
    pub enabled: bool,
    /// To: with more addresses than this gives MANY_RCPTS_TO.
    pub max_to_rcpts: usize,
    /// Subjects shorter than this (in letters) never count as all-caps.
    pub caps_subject_min_letters: usize,
}

impl Default for HeaderChecksConfig {
    fn default() -> Self {
        HeaderChecksConfig {
            enabled: true,
            max_to_rcpts: 10,
            caps_subject_min_letters: 10,
        }
    }
}

/// What a header/body rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleTarget {
    /// A header by name (`header = "..."`), decoded unless `raw = true`.
    Header,
    /// The decoded Subject.
    Subject,
    /// The decoded text of every text part (HTML reduced to text).
    Body,
    /// The undecoded body, as transmitted.
    Rawbody,
    /// Each attachment's file name.
    Filename,
    /// Each MIME part's content type, `type/subtype`.
    ContentType,
}

/// A named regexp rule: rspamd's regexp module, Postfix's header/body_checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The symbol the rule emits.
    pub name: String,
    pub target: RuleTarget,
    /// The header name, for `target = "header"`.
    #[serde(default)]
    pub header: Option<String>,
    /// Match the header's raw (undecoded, unfolded) value.
    #[serde(default)]
    pub raw: bool,
    /// A regex, either plain or as `/pattern/flags` (flags: i, m, s, x).
    pub pattern: Spanned<String>,
    /// The symbol's weight (default 1.0).
    #[serde(default)]
    pub score: Option<f64>,
    /// Postfix-style action: `REJECT text`, `DISCARD`, `WARN`, `HOLD`.
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// What a Postfix `regexp:` table applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableTarget {
    /// Like `header_checks`: each logical header line, `Name: value`.
    Header,
    /// Like `body_checks`: each line of the body.
    Body,
}

/// A Postfix `regexp:` table file used as header_checks or body_checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTableConfig {
    pub path: Spanned<PathBuf>,
    pub target: TableTarget,
    /// Symbol for matches; defaults to HEADER_CHECKS or BODY_CHECKS.
    #[serde(default)]
    pub symbol: Option<String>,
    /// Weight of the symbol (default 1.0); REJECT/DISCARD/HOLD lines force their action.
    #[serde(default)]
    pub score: Option<f64>,
}

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
