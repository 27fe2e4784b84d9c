//! Config sections owned by the crate whose code reads them.
//!
//! A check keeps its config struct beside its code and implements
//! [`Section`] for it; the binary lists every such section once in a
//! [`Registry`]. The loader then reads each registered section out of the
//! same parsed document as the core sections, so `mxguard config check`
//! still reports every error of the file in one pass, each with
//! file:line:column, and an unknown top-level key is matched against core
//! and registered keys alike. Code reads a section with
//! [`Config::section`](super::Config::section).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::{Mutex, OnceLock, PoisonError};
use toml::Spanned;
use toml::de::DeTable;

/// A top-level config section owned outside `mxguard-core` (a check, a
/// front end). Its struct is plain serde: `#[serde(default,
/// deny_unknown_fields)]` for a table, `#[serde(transparent)]` around a
/// `Vec` for an array of tables like `[[multimap]]`.
pub trait Section:
    DeserializeOwned + Serialize + Default + Clone + fmt::Debug + Send + Sync + 'static
{
    /// Its top-level TOML key: `"gtube"` for `[gtube]`, `"multimap"` for
    /// `[[multimap]]`.
    const KEY: &'static str;

    /// What the types alone cannot check (ranges, regexes, companions of a
    /// choice). Each problem names a key path inside the section (`"enabled"`,
    /// `"[2].pattern"`, `"actions.reject"`), which the loader turns into
    /// file:line:column.
    fn validate(&self, problems: &mut Problems) {
        let _ = problems;
    }
}

/// One problem a section's [`Section::validate`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Key path inside the section; empty for the section itself.
    pub key: String,
    /// Where the value is, when the section holds it as a `Spanned`;
    /// otherwise the loader finds the key in the file.
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// The problems of one section, in the order found.
#[derive(Debug, Default)]
pub struct Problems {
    /// The section's key, to take off keys given as the file writes them.
    section: &'static str,
    items: Vec<Problem>,
}

/// `symbols.*.score` and every check's `score`: what a bad weight is told.
pub const SCORE_HINT: &str = "write a weight like 2.5 or -1";

impl Problems {
    /// The problems of section `section` (what the loader hands `validate`).
    pub fn of(section: &'static str) -> Problems {
        Problems {
            section,
            items: Vec::new(),
        }
    }

    /// Problems keyed as the file writes them (`"greylist.max_age"`), as a
    /// `validate` written for core returns them: the section's own key is
    /// taken off, so such a struct moves onto [`Section`] unchanged.
    pub fn extend_file_keys(&mut self, problems: impl IntoIterator<Item = (String, String)>) {
        for (key, message) in problems {
            let rest = key
                .strip_prefix(self.section)
                .filter(|_| !self.section.is_empty());
            let inner = match rest {
                Some(r) if r.is_empty() || r.starts_with('[') => r.to_string(),
                Some(r) if r.starts_with('.') => r[1..].to_string(),
                _ => key.clone(),
            };
            self.at(inner, message);
        }
    }

    /// A problem with the value at `key` (inside the section).
    pub fn at(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.items.push(Problem {
            key: key.into(),
            span: None,
            message: message.into(),
        });
    }

    /// A problem placed at `span` (a `Spanned` value's), reported as `key`.
    pub fn at_span(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.items.push(Problem {
            key: key.into(),
            span: Some(span),
            message: message.into(),
        });
    }

    /// Refuses a NaN or infinite weight at `key`.
    pub fn finite_score(&mut self, key: impl Into<String>, score: Option<f64>) {
        if let Some(v) = score.filter(|v| !v.is_finite()) {
            self.at(
                key,
                format!("{v} is not a finite number (nan and inf are refused); {SCORE_HINT}"),
            );
        }
    }

    /// Refuses a symbol name that logs, headers and the store cannot carry;
    /// placed at `span`.
    pub fn symbol_name(&mut self, span: Range<usize>, key: impl Into<String>, name: &str) {
        if !valid_symbol(name) {
            self.at_span(span, key, bad_symbol(name));
        }
    }

    /// Every problem found, in order.
    pub fn into_vec(self) -> Vec<Problem> {
        self.items
    }
}

pub(super) fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

pub(super) fn bad_symbol(s: &str) -> String {
    format!(
        "symbol name `{s}` must be 1-128 letters, digits, `_`, `-` or `.`, like SENDER_BLOCKLIST"
    )
}

/// A section's value behind its type: what the loader, `config dump` and
/// `Config: Clone` need without knowing the type.
trait Erased: Any + Send + Sync + fmt::Debug {
    fn clone_box(&self) -> Box<dyn Erased>;
    fn to_toml(&self) -> Result<toml::Value, toml::ser::Error>;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Section> Erased for T {
    fn clone_box(&self) -> Box<dyn Erased> {
        Box::new(self.clone())
    }
    fn to_toml(&self) -> Result<toml::Value, toml::ser::Error> {
        toml::Value::try_from(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads a section from a table holding its key only.
type Deserialize = for<'a> fn(Spanned<DeTable<'a>>) -> Result<Box<dyn Erased>, toml::de::Error>;

/// How the loader handles one registered section, without its type.
#[derive(Clone, Copy)]
pub(super) struct Spec {
    pub key: &'static str,
    type_name: &'static str,
    /// Deserialises the section from a table holding its key only.
    deserialize: Deserialize,
    validate: fn(&dyn Erased, &mut Problems),
    default: fn() -> Box<dyn Erased>,
}

fn deserialize<T: Section>(doc: Spanned<DeTable<'_>>) -> Result<Box<dyn Erased>, toml::de::Error> {
    // The table holds `KEY = value` only: read it as a one-entry map so the
    // value keeps its spans, whatever its shape (a table or an array).
    let mut map: BTreeMap<String, T> =
        serde::Deserialize::deserialize(toml::de::Deserializer::from(doc))?;
    Ok(Box::new(map.remove(T::KEY).unwrap_or_default()))
}

fn validate<T: Section>(value: &dyn Erased, problems: &mut Problems) {
    if let Some(v) = value.as_any().downcast_ref::<T>() {
        v.validate(problems);
    }
}

fn default<T: Section>() -> Box<dyn Erased> {
    Box::new(T::default())
}

impl Spec {
    pub fn deserialize(&self, doc: Spanned<DeTable<'_>>) -> Result<SectionValue, toml::de::Error> {
        (self.deserialize)(doc).map(|v| SectionValue { key: self.key, v })
    }
    pub fn default_value(&self) -> SectionValue {
        SectionValue {
            key: self.key,
            v: (self.default)(),
        }
    }
    pub fn validate(&self, value: &SectionValue, problems: &mut Problems) {
        (self.validate)(&*value.v, problems);
    }
}

/// Every section the program reads besides core's, each listed once:
/// `Registry::new().with::<GtubeConfig>().with::<RuleList>()`.
#[derive(Clone, Default)]
pub struct Registry {
    specs: Vec<Spec>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.specs.iter().map(|s| (s.key, s.type_name)))
            .finish()
    }
}

impl Registry {
    /// No section besides core's.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds section `T`. Two owners of one key are a programming error,
    /// caught by the first test that builds the registry.
    ///
    /// # Panics
    /// When `T::KEY` is a core key or already registered.
    #[must_use]
    pub fn with<T: Section>(mut self) -> Registry {
        assert!(
            !super::CORE_KEYS.contains(&T::KEY) && !self.keys().any(|k| k == T::KEY),
            "config section `{}` ({}) is registered twice or is a core section",
            T::KEY,
            std::any::type_name::<T>()
        );
        self.specs.push(Spec {
            key: T::KEY,
            type_name: std::any::type_name::<T>(),
            deserialize: deserialize::<T>,
            validate: validate::<T>,
            default: default::<T>,
        });
        self
    }

    /// The registered top-level keys, in registration order.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.specs.iter().map(|s| s.key)
    }

    pub(super) fn specs(&self) -> &[Spec] {
        &self.specs
    }

    /// The built-in defaults, every registered section included (what runs,
    /// and what `config dump` prints, with no config file).
    pub fn defaults(&self) -> super::Config {
        super::Config {
            sections: Sections {
                items: self.specs.iter().map(Spec::default_value).collect(),
            },
            ..super::Config::default()
        }
    }
}

/// One registered section's value.
pub(super) struct SectionValue {
    key: &'static str,
    v: Box<dyn Erased>,
}

impl Clone for SectionValue {
    fn clone(&self) -> Self {
        SectionValue {
            key: self.key,
            v: self.v.clone_box(),
        }
    }
}

/// The registered sections of a [`Config`](super::Config), in registration
/// order. Read one with [`Config::section`](super::Config::section).
#[derive(Clone, Default)]
pub struct Sections {
    pub(super) items: Vec<SectionValue>,
}

impl fmt::Debug for Sections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.items.iter().map(|s| (s.key, &s.v)))
            .finish()
    }
}

impl Serialize for Sections {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut map = s.serialize_map(Some(self.items.len()))?;
        for item in &self.items {
            let value = item.v.to_toml().map_err(S::Error::custom)?;
            map.serialize_entry(item.key, &value)?;
        }
        map.end()
    }
}

impl Sections {
    pub(super) fn get<T: Section>(&self) -> Option<&T> {
        self.items
            .iter()
            .find(|s| s.key == T::KEY)
            .and_then(|s| s.v.as_any().downcast_ref::<T>())
    }

    pub(super) fn set<T: Section>(&mut self, value: T) {
        let value = SectionValue {
            key: T::KEY,
            v: Box::new(value),
        };
        match self.items.iter_mut().find(|s| s.key == T::KEY) {
            Some(slot) => *slot = value,
            None => self.items.push(value),
        }
    }
}

/// `T`'s default, made once per type and kept: what
/// [`Config::section`](super::Config::section) lends for a section the
/// config was built without (a `Config::default()` in a test or a tool).
pub(super) fn default_of<T: Section>() -> &'static T {
    type Defaults = HashMap<TypeId, &'static (dyn Any + Send + Sync)>;
    static DEFAULTS: OnceLock<Mutex<Defaults>> = OnceLock::new();
    let mut map = DEFAULTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let value: &'static (dyn Any + Send + Sync) = *map
        .entry(TypeId::of::<T>())
        .or_insert_with(|| Box::leak(Box::new(T::default())));
    match value.downcast_ref::<T>() {
        Some(v) => v,
        // Unreachable: the map is keyed by the value's own type.
        None => Box::leak(Box::new(T::default())),
    }
}
