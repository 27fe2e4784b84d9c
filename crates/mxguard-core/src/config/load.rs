//! Loading and validating the config file, reporting every error with
//! file:line:column, the key path and what was expected.
//!
//! serde stops at the first error. To report them all, the document is parsed
//! once into a spanned tree; after each deserialisation error the offending
//! entry is located by its span, recorded, removed from the tree, and the
//! tree is deserialised again, until it succeeds. Each registered section
//! (see `section.rs`) is cut out of the tree and read the same way, sharing
//! one budget of passes, so its errors come in the same list.

use super::section::Spec;
use super::{Config, Problems, Registry, SCORE_HINT};
use crate::files::read_bounded;
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// `[scan] scan_timeout` at most: an hour.
const MAX_SCAN_TIMEOUT_MS: u64 = 3_600_000;

/// A 1-based line and column in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One problem in the config, located as precisely as possible.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub position: Option<Position>,
    /// Dotted key path, e.g. `rules[2].pattern`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A validated config and where it came from.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    pub config: Config,
    /// `None` when no file was given and the defaults are in use.
    pub path: Option<PathBuf>,
    /// The file's text, to place errors found later (e.g. a map that
    /// cannot be read) at their line.
    pub text: String,
}

impl LoadedConfig {
    /// An error about the value of `key` (a key path such as
    /// `dkim_signing.domain.example.com.path`), placed at its line in the
    /// file, or at the nearest enclosing table the file has.
    pub fn error_at_key(&self, key: &str, message: &str) -> ConfigError {
        let span = if self.text.is_empty() {
            None
        } else {
            let (doc, _) = parse(&self.text);
            span_of_key(doc.get_ref(), key)
        };
        self.error_at(span, key, message)
    }

    /// An error about the value at `span` of this config.
    pub fn error_at(&self, span: Option<Range<usize>>, key: &str, message: &str) -> ConfigError {
        ConfigError {
            file: self
                .path
                .as_ref()
                .map_or_else(|| "(defaults)".to_string(), |p| p.display().to_string()),
            position: span
                .filter(|_| !self.text.is_empty())
                .map(|s| position(&self.text, s.start)),
            key: key.to_string(),
            message: message.to_string(),
        }
    }
}

/// The largest config file read. A hand-written config is a few KiB; this
/// stops a wrong `-c` (a log, a device) from eating memory and time.
pub const MAX_CONFIG_SIZE: usize = 1 << 20;

/// At most this many errors are reported; past it, a last entry says how
/// many more there were (fixing the first ones often clears the rest).
pub const MAX_ERRORS: usize = 100;

/// Each error the types find costs one more deserialisation of the whole
/// document. This caps the total work (document entries × passes), so a
/// large config full of errors stops early instead of running for minutes.
const PASS_BUDGET: usize = 1_000_000;

/// Reads and validates a config file (see [`load_str`] for `registry`).
pub fn load_file(path: &Path, registry: &Registry) -> Result<LoadedConfig, Vec<ConfigError>> {
    let label = path.display().to_string();
    let whole_file = |message: String| {
        vec![ConfigError {
            file: label.clone(),
            position: None,
            key: String::new(),
            message,
        }]
    };
    let bytes = read_bounded(path, MAX_CONFIG_SIZE as u64).map_err(|e| {
        whole_file(format!(
            "cannot read the config file: {e}; check the path given with -c"
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let good = String::from_utf8_lossy(&e.as_bytes()[..at]);
        vec![ConfigError {
            file: label.clone(),
            position: Some(position(&good, at)),
            key: String::new(),
            message: "the config file is not UTF-8 text; a TOML file must be".into(),
        }]
    })?;
    let config = load_str(&text, &label, registry)?;
    Ok(LoadedConfig {
        config,
        path: Some(path.to_path_buf()),
        text,
    })
}

/// Parses and validates config text; `file` names it in error messages.
/// `registry` lists the sections owned outside core (a program's checks:
/// `mxguard_scan::sections()`); with `Registry::new()` only core's are known
/// and any other top-level key is an error.
///
/// Safe on any input: text over [`MAX_CONFIG_SIZE`] is refused, nesting is
/// bounded by the TOML parser's own depth limit, and the work done for a
/// text full of errors is capped (see [`MAX_ERRORS`]).
pub fn load_str(text: &str, file: &str, registry: &Registry) -> Result<Config, Vec<ConfigError>> {
    let lines = LineIndex::new(text);
    let at = |span: Option<Range<usize>>, key: String, message: String| ConfigError {
        file: file.to_string(),
        position: span.map(|s| lines.position(s.start)),
        key,
        message,
    };
    if text.len() > MAX_CONFIG_SIZE {
        return Err(vec![at(
            None,
            String::new(),
            format!(
                "the config is {} bytes, over the limit of {MAX_CONFIG_SIZE} bytes; is this the \
                 config file?",
                text.len()
            ),
        )]);
    }
    let (mut doc, syntax) = parse(text);
    if !syntax.is_empty() {
        let total = syntax.len();
        let mut errors: Vec<ConfigError> = syntax
            .into_iter()
            .take(MAX_ERRORS)
            .map(|e| at(e.span(), String::new(), first_line(e.message())))
            .collect();
        note_more(&mut errors, total, file);
        note_first_only(&mut errors, text, file);
        return Err(errors);
    }
    let entries = count_entries(doc.get_ref()).max(1);
    let mut passes = Passes {
        errors: Vec::new(),
        removed: Vec::new(),
        max_passes: (PASS_BUDGET / entries).clamp(5, MAX_ERRORS),
        stopped: false,
    };
    // Each registered section is cut out of the document into a table of
    // its own, so core's `deny_unknown_fields` does not see it and each is
    // deserialised (and its errors collected) on its own.
    let mut owned: Vec<(&Spec, Spanned<DeTable<'_>>)> = Vec::new();
    for spec in registry.specs() {
        if let Some((k, v)) = doc.get_mut().remove_entry(spec.key) {
            let mut table = DeTable::new();
            table.insert(k, v);
            owned.push((spec, Spanned::new(doc.span(), table)));
        }
    }
    let all_keys: Vec<&str> = super::CORE_KEYS
        .iter()
        .copied()
        .chain(registry.keys())
        .collect();
    let core = collect_errors(&mut doc, &mut passes, &all_keys, &at, |d| {
        Config::deserialize(toml::de::Deserializer::from(d))
    });
    let mut sections = Vec::new();
    for (spec, sub) in &mut owned {
        if passes.stopped {
            break;
        }
        sections.push(collect_errors(sub, &mut passes, &[], &at, |d| {
            spec.deserialize(d)
        }));
    }
    let Passes {
        mut errors,
        stopped,
        ..
    } = passes;
    errors.sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
    if stopped {
        errors.push(ConfigError {
            file: file.to_string(),
            position: None,
            key: String::new(),
            message: format!(
                "stopped looking after {} errors; fix these and check again",
                errors.len()
            ),
        });
    }
    let (Some(mut config), Some(values)) = (core, sections.into_iter().collect::<Option<Vec<_>>>())
    else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    // Every registered section is there, at its default when the file
    // leaves it out, so `config dump` prints it.
    for spec in registry.specs() {
        let value = match owned.iter().position(|(s, _)| s.key == spec.key) {
            Some(i) => values[i].clone(),
            None => spec.default_value(),
        };
        config.sections.items.push(value);
    }
    for (_, sub) in owned {
        for (k, v) in sub.into_inner() {
            doc.get_mut().insert(k, v);
        }
    }
    validate(&config, registry, doc.get_ref(), &lines, file)?;
    Ok(config)
}

/// The errors the types find, across core and every registered section,
/// and the shared budget of deserialisation passes.
struct Passes {
    errors: Vec<ConfigError>,
    /// Key paths removed so far, one per pass.
    removed: Vec<String>,
    max_passes: usize,
    stopped: bool,
}

/// Deserialises `doc` with `read`; after each error, records it, removes
/// the offending entry and tries again. `None` when the document cannot be
/// read past an error or the budget ran out. `top_keys`, when not empty,
/// replaces serde's list of expected top-level keys (core's) so an unknown
/// one is matched against the registered sections' keys too.
fn collect_errors<'i, T>(
    doc: &mut Spanned<DeTable<'i>>,
    passes: &mut Passes,
    top_keys: &[&str],
    at: &dyn Fn(Option<Range<usize>>, String, String) -> ConfigError,
    read: impl Fn(Spanned<DeTable<'i>>) -> Result<T, toml::de::Error>,
) -> Option<T> {
    loop {
        match read(doc.clone()) {
            Ok(c) => return Some(c),
            Err(e) => {
                let span = e.span();
                let mut path = Vec::new();
                if let Some(s) = &span {
                    locate(doc.get_ref(), s, &mut path);
                }
                let mut message = first_line(e.message());
                if path.len() == 1 && !top_keys.is_empty() {
                    message = expect_keys(&message, top_keys);
                }
                let message = with_suggestion(&message);
                let key = path_string(&path);
                // A bad required field that was removed resurfaces as missing: say it once.
                let echo = missing_field(&message)
                    .is_some_and(|f| passes.removed.contains(&format!("{key}.{f}")));
                if !echo {
                    passes.errors.push(at(span, key.clone(), message));
                }
                passes.removed.push(key);
                if path.is_empty() || !remove(doc.get_mut(), &path) {
                    return None;
                }
                if passes.removed.len() >= passes.max_passes {
                    passes.stopped = true;
                    return None;
                }
            }
        }
    }
}

/// serde's "unknown field `x`, expected one of ..." with `keys` as the list.
fn expect_keys(message: &str, keys: &[&str]) -> String {
    let Some(wrong) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
    else {
        return message.to_string();
    };
    let list: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    format!(
        "unknown field `{wrong}`, expected one of {}",
        list.join(", ")
    )
}

/// Up to this size every syntax error is collected; the TOML parser keeps
/// a few hundred bytes per error, so a larger text reports its first only.
const RECOVER_ALL_BELOW: usize = 128 << 10;

/// The document and its syntax errors (every one, or the first for a
/// large text).
fn parse(text: &str) -> (toml::Spanned<DeTable<'_>>, Vec<toml::de::Error>) {
    if text.len() <= RECOVER_ALL_BELOW {
        return DeTable::parse_recoverable(text);
    }
    match DeTable::parse(text) {
        Ok(doc) => (doc, Vec::new()),
        Err(e) => (Spanned::new(0..0, DeTable::new()), vec![e]),
    }
}

/// Says why a large config reports one syntax error only.
fn note_first_only(errors: &mut Vec<ConfigError>, text: &str, file: &str) {
    if text.len() > RECOVER_ALL_BELOW {
        errors.push(ConfigError {
            file: file.to_string(),
            position: None,
            key: String::new(),
            message: format!(
                "only the first syntax error is shown in a config over {} KiB; fix it and check again",
                RECOVER_ALL_BELOW >> 10
            ),
        });
    }
}

/// Appends "and N more" when `errors` was cut short of `total`.
fn note_more(errors: &mut Vec<ConfigError>, total: usize, file: &str) {
    if total > errors.len() {
        errors.push(ConfigError {
            file: file.to_string(),
            position: None,
            key: String::new(),
            message: format!(
                "and {} more errors not shown; fix these and check again",
                total - errors.len()
            ),
        });
    }
}

/// How many keys and array items the document holds, at every depth.
fn count_entries(table: &DeTable<'_>) -> usize {
    let mut n = 0;
    let mut stack: Vec<&DeValue<'_>> = table.iter().map(|(_, v)| v.get_ref()).collect();
    while let Some(v) = stack.pop() {
        n += 1;
        match v {
            DeValue::Table(t) => stack.extend(t.iter().map(|(_, v)| v.get_ref())),
            DeValue::Array(items) => stack.extend(items.iter().map(|v| v.get_ref())),
            _ => {}
        }
    }
    n
}

/// Checks what the types alone cannot: regexes compile, actions parse,
/// required companions of a choice are present, numbers are in range.
/// An error without a span is placed at its key's value in `doc`, or at
/// the nearest enclosing table the file has.
fn validate(
    config: &Config,
    registry: &Registry,
    doc: &DeTable<'_>,
    lines: &LineIndex,
    file: &str,
) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut total = 0;
    let mut err = |span: Option<Range<usize>>, key: String, message: String| {
        total += 1;
        // Locating an error walks the document: only for those reported.
        if errors.len() >= MAX_ERRORS {
            return;
        }
        let span = span.or_else(|| span_of_key(doc, &key));
        errors.push(ConfigError {
            file: file.to_string(),
            position: span.map(|s| lines.position(s.start)),
            key,
            message,
        })
    };
    let mut scores: Vec<(String, f64, &str)> = Vec::new();
    for (name, o) in &config.symbols {
        scores.extend(
            o.score
                .map(|v| (format!("symbols.{name}.score"), v, SCORE_HINT)),
        );
    }
    for (name, g) in &config.groups {
        scores.extend(g.max_score.map(|v| {
            (
                format!("groups.{name}.max_score"),
                v,
                "write a cap like 5.0, or leave max_score out for no cap",
            )
        }));
    }
    for (key, v, hint) in scores {
        if !v.is_finite() {
            err(
                None,
                key,
                format!("{v} is not a finite number (nan and inf are refused); {hint}"),
            );
        }
    }
    for (spec, value) in registry.specs().iter().zip(&config.sections.items) {
        let mut problems = Problems::of(spec.key);
        spec.validate(value, &mut problems);
        for p in problems.into_vec() {
            err(p.span, section_key(spec.key, &p.key), p.message);
        }
    }
    for (key, message) in config.milter.validate() {
        err(None, key, message);
    }
    for (key, message) in config.greylist.validate() {
        err(None, key, message);
    }
    for (key, message) in config.dns.validate() {
        err(None, key, message);
    }
    for (key, message) in config.store.validate() {
        err(None, key, message);
    }
    if config.scan.max_message_size.0 == 0 {
        err(
            None,
            "scan.max_message_size".into(),
            "0 leaves every message unscanned; give a size like \"50M\"".into(),
        );
    }
    if !(1..=MAX_SCAN_TIMEOUT_MS).contains(&config.scan.scan_timeout.0) {
        err(
            None,
            "scan.scan_timeout".into(),
            "must be more than zero and at most an hour; give a time like \"30s\" (checks \
             still waiting then give their time-out symbols)"
                .into(),
        );
    }
    if config.scan.max_map_size.0 == 0 {
        err(
            None,
            "scan.max_map_size".into(),
            "0 refuses every map file; give a size like \"32M\"".into(),
        );
    }
    if config.policy.idle_timeout.0 == 0 {
        err(
            None,
            "policy.idle_timeout".into(),
            "0 closes every Postfix connection before its first request; give a time like \
             \"5m\" (Postfix reconnects after an idle close)"
                .into(),
        );
    }
    if config.policy.max_connections == 0 {
        err(
            None,
            "policy.max_connections".into(),
            "0 would refuse every Postfix connection; give the most connections to serve at \
             once, like 500 (Postfix holds one per smtpd process)"
                .into(),
        );
    }
    let lists = &config.policy.restrictions;
    for (stage, list) in [
        ("client", &lists.client),
        ("helo", &lists.helo),
        ("sender", &lists.sender),
        ("recipient", &lists.recipient),
        ("data", &lists.data),
        ("end_of_data", &lists.end_of_data),
    ] {
        for (i, r) in list.iter().enumerate() {
            if let Err(e) = crate::restriction::Restriction::parse(r.get_ref()) {
                err(
                    Some(r.span()),
                    format!("policy.restrictions.{stage}[{i}]"),
                    e,
                );
            }
        }
    }
    if super::parse_mode(&config.policy.socket_mode).is_none() {
        err(
            None,
            "policy.socket_mode".into(),
            format!(
                "`{}` is not an octal mode like 0660",
                config.policy.socket_mode
            ),
        );
    }
    for (i, n) in config.policy.mynetworks.iter().enumerate() {
        if let Err(e) = crate::iptable::parse_network(n) {
            err(None, format!("policy.mynetworks[{i}]"), e);
        }
    }
    let a = &config.actions;
    let order = [
        ("greylist", a.greylist.0),
        ("add_header", a.add_header.0),
        ("rewrite_subject", a.rewrite_subject.0),
        ("reject", a.reject.0),
    ];
    for (name, t) in order {
        if let Some(t) = t
            && t < 0.0
        {
            err(
                None,
                format!("actions.{name}"),
                format!("threshold {t} is negative"),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        errors.sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
        note_more(&mut errors, total, file);
        Err(errors)
    }
}

/// The file's key path of `key` inside section `section`.
fn section_key(section: &str, key: &str) -> String {
    if key.is_empty() {
        section.to_string()
    } else if key.starts_with('[') {
        format!("{section}{key}")
    } else {
        format!("{section}.{key}")
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// 1-based line and column (in characters) of a byte offset. Scans the
/// text before it: for one error; [`LineIndex`] places many.
fn position(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

/// Where each line starts, so that placing many errors costs a binary
/// search each, not a scan of the text each.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { text, starts }
    }

    /// The same as [`position`].
    fn position(&self, offset: usize) -> Position {
        let offset = self.text.floor_char_boundary(offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset);
        let line_start = self.starts[line - 1];
        Position {
            line,
            column: self.text[line_start..offset].chars().count() + 1,
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn path_string(path: &[Segment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// Finds the deepest entry whose key or value span holds `span`.
fn locate(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Segment>) -> bool {
    for (k, _) in table.iter() {
        if contains(&k.span(), span) {
            path.push(Segment::Key(k.get_ref().to_string()));
            return true;
        }
    }
    for (k, v) in table.iter() {
        if locate_value(v, span, path, k.get_ref()) {
            return true;
        }
    }
    false
}

fn locate_value(
    v: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<Segment>,
    key: &str,
) -> bool {
    match v.get_ref() {
        DeValue::Table(t) => {
            path.push(Segment::Key(key.to_string()));
            if locate(t, span, path) || contains(&v.span(), span) {
                return true;
            }
            path.pop();
            false
        }
        DeValue::Array(items) => {
            path.push(Segment::Key(key.to_string()));
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                if let DeValue::Table(t) = item.get_ref()
                    && locate(t, span, path)
                {
                    return true;
                }
                if contains(&item.span(), span) {
                    return true;
                }
                path.pop();
            }
            if contains(&v.span(), span) {
                return true;
            }
            path.pop();
            false
        }
        _ => {
            if contains(&v.span(), span) {
                path.push(Segment::Key(key.to_string()));
                true
            } else {
                false
            }
        }
    }
}

/// The span of the value at a dotted key path like `rules[2].score` or
/// `symbols.A.B.score` (names may hold dots: every split is tried). When
/// the key is not in the file (a default), the nearest enclosing entry the
/// file has.
fn span_of_key(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    for (k, v) in table.iter() {
        let Some(rest) = key.strip_prefix(&**k.get_ref()) else {
            continue;
        };
        if rest.is_empty() {
            return Some(v.span());
        }
        if rest.starts_with(['.', '[']) {
            if let Some(s) = span_in_value(v, rest) {
                return Some(s);
            }
            // Not there: point at the enclosing table, unless another key
            // (a longer dotted name) matches better.
            if table.iter().all(|(o, _)| {
                o.get_ref().len() <= k.get_ref().len() || !key.starts_with(&**o.get_ref())
            }) {
                return Some(v.span()).filter(|s| !s.is_empty()).or(Some(k.span()));
            }
        }
    }
    None
}

fn span_in_value(v: &Spanned<DeValue<'_>>, rest: &str) -> Option<Range<usize>> {
    if let Some(rest) = rest.strip_prefix('.') {
        return match v.get_ref() {
            DeValue::Table(t) => span_of_key(t, rest),
            _ => None,
        };
    }
    let (i, rest) = rest.strip_prefix('[')?.split_once(']')?;
    let DeValue::Array(items) = v.get_ref() else {
        return None;
    };
    let item = items.get(i.parse::<usize>().ok()?)?;
    if rest.is_empty() {
        Some(item.span())
    } else {
        span_in_value(item, rest).or(Some(item.span()))
    }
}

/// Removes the entry at `path` so deserialisation can go on past it.
fn remove(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    let Some((Segment::Key(first), rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(first.as_str()).is_some();
    }
    let Some(v) = table.get_mut(first.as_str()) else {
        return false;
    };
    remove_in_value(v.get_mut(), rest)
}

fn remove_in_value(v: &mut DeValue<'_>, path: &[Segment]) -> bool {
    match (v, path.split_first()) {
        (DeValue::Table(t), Some(_)) => remove(t, path),
        (DeValue::Array(items), Some((Segment::Index(i), rest))) => {
            if rest.is_empty() {
                if *i >= items.len() {
                    return false;
                }
                let old = std::mem::replace(items, toml::de::DeArray::new());
                for (j, item) in old.iter().enumerate() {
                    if j != *i {
                        items.push(item.clone());
                    }
                }
                true
            } else {
                match items.get_mut(*i) {
                    Some(item) => remove_in_value(item.get_mut(), rest),
                    None => false,
                }
            }
        }
        _ => false,
    }
}

/// Adds "did you mean" to serde's unknown field/variant messages.
fn with_suggestion(message: &str) -> String {
    let message = first_line(message);
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if !(message.starts_with("unknown field") || message.starts_with("unknown variant"))
        || quoted.len() < 3
    {
        return message;
    }
    let wrong = quoted[0];
    let best = quoted[1..]
        .iter()
        .map(|c| (edit_distance(&wrong.to_ascii_lowercase(), c), *c))
        .min();
    match best {
        Some((d, c)) if d <= (wrong.len() / 3).max(2) => format!("{message}; did you mean `{c}`?"),
        _ => message,
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<ConfigError> {
        load_str(text, "t.toml", &Registry::new()).expect_err("config should be rejected")
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let c = load_str("", "t.toml", &Registry::new()).unwrap();
        assert_eq!(c.actions.reject.0, Some(15.0));
        assert_eq!(c.actions.add_header.0, Some(6.0));
        assert_eq!(c.actions.greylist.0, Some(4.0));
        assert_eq!(c.actions.rewrite_subject.0, None);
    }

    #[test]
    fn seed_style_actions_parse() {
        let c = load_str(
            "[actions]\nreject = false\nadd_header = 10\ngreylist = 20\n",
            "t",
            &Registry::new(),
        )
        .unwrap();
        assert_eq!(c.actions.reject.0, None);
        assert_eq!(c.actions.add_header.0, Some(10.0));
        assert_eq!(c.actions.greylist.0, Some(20.0));
    }

    #[test]
    fn unknown_key_has_position_path_and_suggestion() {
        let e = errors("[actions]\nreject = 15\nrejct = 5\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].position, Some(Position { line: 3, column: 1 }));
        assert_eq!(e[0].key, "actions.rejct");
        assert!(
            e[0].message.contains("did you mean `reject`"),
            "{}",
            e[0].message
        );
        assert!(
            e[0].to_string()
                .starts_with("t.toml:3:1: actions.rejct: unknown field")
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = errors("[actions]\nreject = = 3\n");
        assert_eq!(e[0].position.unwrap().line, 2);
    }
}

#[cfg(test)]
mod hostile_input_tests {
    use super::*;

    fn errors(text: &str) -> Vec<ConfigError> {
        load_str(text, "t.toml", &Registry::new()).expect_err("config should be rejected")
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for text in [
            format!("a = {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            format!("a = {}1{}\n", "{b = ".repeat(100_000), "}".repeat(100_000)),
            format!("a = {}\n", "[".repeat(100_000)),
            format!("a{} = 1\n", ".a".repeat(100_000)),
            format!("[a{}]\n", ".a".repeat(100_000)),
        ] {
            let e = errors(&text);
            assert!(!e.is_empty() && e.len() <= MAX_ERRORS + 1, "{}", e.len());
        }
    }

    #[test]
    fn syntax_errors_past_the_cap_are_counted_not_listed() {
        let e = errors(&"= = =\n".repeat(5_000));
        assert_eq!(e.len(), MAX_ERRORS + 1, "{}", e.len());
        assert_eq!(e[0].position.map(|p| p.line), Some(1));
        let last = e.last().unwrap();
        assert!(last.message.contains("more errors not shown"), "{last}");
    }

    #[test]
    fn text_over_the_size_cap_is_refused_unparsed() {
        let text = "# padding\n".repeat(MAX_CONFIG_SIZE / 10 + 1);
        let e = errors(&text);
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("over the limit"), "{}", e[0]);
        // A large text within the cap reports its first syntax error.
        let mut text = "# padding\n".repeat(RECOVER_ALL_BELOW / 10 + 1);
        text.push_str("x = = 1\ny = = 2\n");
        let e = errors(&text);
        assert_eq!(
            e[0].position.map(|p| p.line),
            Some(RECOVER_ALL_BELOW / 10 + 2)
        );
        assert!(e[1].message.contains("only the first"), "{}", e[1]);
    }

    #[test]
    fn the_config_file_must_be_a_bounded_regular_utf8_file() {
        let e = load_file(Path::new("/dev/zero"), &Registry::new()).unwrap_err();
        assert!(e[0].message.contains("character device"), "{}", e[0]);
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = load_file(&fifo, &Registry::new()).unwrap_err();
        assert!(e[0].message.contains("FIFO"), "{}", e[0]);
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_CONFIG_SIZE + 1)).unwrap();
        let e = load_file(&big, &Registry::new()).unwrap_err();
        assert!(e[0].message.contains("over the limit"), "{}", e[0]);
        let latin1 = dir.path().join("latin1.toml");
        std::fs::write(&latin1, b"[actions]\n# caf\xe9\n").unwrap();
        let e = load_file(&latin1, &Registry::new()).unwrap_err();
        assert_eq!(e[0].position, Some(Position { line: 2, column: 6 }));
        assert!(e[0].message.contains("UTF-8"), "{}", e[0]);
    }

    #[test]
    fn a_zero_map_size_is_refused() {
        for bad in ["0", "\"2h\""] {
            let e = errors(&format!("[scan]\nscan_timeout = {bad}\n"));
            assert_eq!(e[0].key, "scan.scan_timeout", "{bad}");
        }
        let c = load_str("[scan]\nscan_timeout = \"500ms\"\n", "t", &Registry::new()).unwrap();
        assert_eq!(c.scan.scan_timeout.0, 500);
        let e = errors("[scan]\nmax_map_size = 0\n");
        assert_eq!(e[0].key, "scan.max_map_size");
        assert_eq!(e[0].position.map(|p| p.line), Some(2));
        let c = load_str("[scan]\nmax_map_size = \"1G\"\n", "t", &Registry::new()).unwrap();
        assert_eq!(c.scan.max_map_size.0, 1 << 30);
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    fn errors(text: &str) -> Vec<ConfigError> {
        load_str(text, "t.toml", &Registry::new()).expect_err("config should be rejected")
    }

    /// The error for `key`, which must be there.
    fn find<'a>(e: &'a [ConfigError], key: &str) -> &'a ConfigError {
        e.iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no error for {key}: {e:#?}"))
    }

    #[test]
    fn non_finite_action_thresholds_are_refused() {
        let e = errors("[actions]\nreject = nan\nadd_header = inf\ngreylist = -inf\n");
        for (key, line) in [
            ("actions.reject", 2),
            ("actions.add_header", 3),
            ("actions.greylist", 4),
        ] {
            let err = find(&e, key);
            assert_eq!(err.position.map(|p| p.line), Some(line), "{err}");
            assert!(err.message.contains("finite"), "{err}");
        }
    }

    #[test]
    fn greylist_times_that_would_never_let_mail_pass_are_refused() {
        let e = errors("[greylist]\ndelay = 300\nmax_age = 0\nretry_window = 0\n");
        let max_age = find(&e, "greylist.max_age");
        assert_eq!(max_age.position.map(|p| p.line), Some(3));
        assert!(max_age.message.contains("never passes"), "{max_age}");
        let window = find(&e, "greylist.retry_window");
        assert_eq!(window.position.map(|p| p.line), Some(4));
        // Forgotten before the delay is over: the retry is a new triplet.
        let e = errors("[greylist]\ndelay = \"10m\"\nmax_age = \"5m\"\n");
        let err = find(&e, "greylist.max_age");
        assert!(
            err.message.contains("300") && err.message.contains("600"),
            "{err}"
        );
        // Score greylisting is on by default, can be switched off, and a
        // misspelling is named with the right key.
        assert!(
            load_str("", "t", &Registry::new())
                .unwrap()
                .greylist
                .score_greylisting
        );
        let c = load_str(
            "[greylist]\nscore_greylisting = false\n",
            "t",
            &Registry::new(),
        )
        .unwrap();
        assert!(!c.greylist.score_greylisting);
        let e = errors("[greylist]\nscore_greylistng = false\n");
        let typo = find(&e, "greylist.score_greylistng");
        assert!(
            typo.message.contains("did you mean `score_greylisting`"),
            "{typo}"
        );
        // A zero delay is legitimate: the first attempt is still deferred
        // and any retry passes.
        let c = load_str("[greylist]\ndelay = 0\n", "t", &Registry::new()).unwrap();
        assert_eq!(c.greylist.delay.0, 0);
        load_str(
            "[greylist]\ndelay = 60\nmax_age = 61\nretry_window = 61\n",
            "t",
            &Registry::new(),
        )
        .unwrap();
        // As in postgrey, the retry window counts from the first attempt:
        // one no longer than the delay lets (practically) nothing pass.
        for window in [1, 60] {
            let e = errors(&format!(
                "[greylist]\ndelay = 60\nretry_window = {window}\n"
            ));
            let err = find(&e, "greylist.retry_window");
            assert_eq!(err.position.map(|p| p.line), Some(3));
            assert!(err.message.contains("never passes"), "{err}");
        }
    }

    #[test]
    fn prefixes_longer_than_the_address_are_refused() {
        let e = errors(
            "[greylist]\nipv4_prefix = 33\nipv6_prefix = 129\n[policy]\nmynetworks = [\"10.0.0.0/40\", \"2001:db8::/200\"]\n",
        );
        let v4 = find(&e, "greylist.ipv4_prefix");
        assert_eq!(v4.position.map(|p| p.line), Some(2));
        assert!(
            v4.message.contains("33") && v4.message.contains("0..=32"),
            "{v4}"
        );
        let v6 = find(&e, "greylist.ipv6_prefix");
        assert!(
            v6.message.contains("129") && v6.message.contains("0..=128"),
            "{v6}"
        );
        let m = find(&e, "policy.mynetworks[0]");
        assert_eq!(m.position.map(|p| p.line), Some(5));
        assert!(m.message.contains("/40") && m.message.contains("32"), "{m}");
        let m = find(&e, "policy.mynetworks[1]");
        assert!(
            m.message.contains("/200") && m.message.contains("128"),
            "{m}"
        );
        let c = load_str(
            "[greylist]\nipv4_prefix = 32\nipv6_prefix = 128\n[policy]\nmynetworks = [\"[::1]/128\", \"0.0.0.0/0\"]\n",
            "t",
            &Registry::new(),
        )
        .unwrap();
        assert_eq!(c.greylist.ipv6_prefix, 128);
    }

    #[test]
    fn dns_knobs_out_of_range_are_refused() {
        let e = errors("[dns]\nattempts = 4294967295\ntimeout = 0\n");
        let a = find(&e, "dns.attempts");
        assert_eq!(a.position.map(|p| p.line), Some(2));
        assert!(
            a.message.contains("4294967295") && a.message.contains("1..=5"),
            "{a}"
        );
        find(&e, "dns.timeout");
        let e = errors("[dns]\nattempts = 0\n");
        find(&e, "dns.attempts");
        // `timeout = 2000` is 2000 seconds, not milliseconds: say so.
        let e = errors("[dns]\ntimeout = 2000\n");
        let t = find(&e, "dns.timeout");
        assert!(t.message.contains("\"2000ms\""), "{t}");
        let c = load_str(
            "[dns]\nattempts = 5\ntimeout = \"30s\"\ncache_size = 0\n",
            "t",
            &Registry::new(),
        )
        .unwrap();
        assert_eq!(c.dns.attempts, 5);
        // The cache's TTL bounds: a floor over its cap, and a cap over RFC
        // 8767's week, are refused with the key named.
        let e = errors("[dns]\nnegative_min_ttl = \"2h\"\nnegative_max_ttl = \"1h\"\n");
        let t = find(&e, "dns.negative_min_ttl");
        assert!(t.message.contains("negative_max_ttl"), "{t}");
        let e = errors("[dns]\npositive_max_ttl = \"30d\"\n");
        find(&e, "dns.positive_max_ttl");
        let c = load_str(
            "[dns]\nnegative_min_ttl = \"5m\"\npositive_min_ttl = 30\n",
            "t",
            &Registry::new(),
        )
        .unwrap();
        assert_eq!(c.dns.negative_min_ttl.0, 300);
        assert_eq!(c.dns.positive_min_ttl.0, 30);
        assert_eq!(c.dns.negative_max_ttl.0, 3600, "default cap");
    }

    #[test]
    fn durations_that_overflow_are_refused_not_saturated() {
        let e = errors("[milter]\nscan_timeout = 18446744073709551615\nshutdown_grace = 1e300\n");
        let t = find(&e, "milter.scan_timeout");
        assert!(t.message.contains("18446744073709551615"), "{t}");
        find(&e, "milter.shutdown_grace");
        let e = errors("[milter]\nscan_timeout = \"18446744073709552s\"\n");
        find(&e, "milter.scan_timeout");
    }

    #[test]
    fn zero_sizes_and_timeouts_that_stop_the_service_are_refused() {
        let e = errors(
            "[scan]\nmax_message_size = 0\n[milter]\nmax_message_size = 0\n[policy]\nidle_timeout = 0\nmax_connections = 0\n",
        );
        for (key, line) in [
            ("scan.max_message_size", 2),
            ("milter.max_message_size", 4),
            ("policy.idle_timeout", 6),
            ("policy.max_connections", 7),
        ] {
            let err = find(&e, key);
            assert_eq!(err.position.map(|p| p.line), Some(line), "{err}");
        }
    }
}

/// Sections registered from outside core: read from the same document,
/// their errors reported in the same pass and placed the same way.
#[cfg(test)]
mod section_tests {
    use super::*;
    use crate::config::{CORE_KEYS, Section};
    use serde::Serialize;

    /// A table section, like `[gtube]`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Probe {
        limit: u32,
        enabled: bool,
    }

    impl Default for Probe {
        fn default() -> Self {
            Probe {
                enabled: true,
                limit: 10,
            }
        }
    }

    impl Probe {
        /// Written as core's sections are, keys as the file writes them.
        fn validate(&self) -> Vec<(String, String)> {
            let mut problems = Vec::new();
            if self.limit == 0 {
                problems.push((
                    "probe.limit".into(),
                    "0 stops every probe; give a limit like 10".into(),
                ));
            }
            problems
        }
    }

    /// What moving a core-style section onto `Section` takes.
    impl Section for Probe {
        const KEY: &'static str = "probe";
        fn validate(&self, problems: &mut Problems) {
            problems.extend_file_keys(Probe::validate(self));
        }
    }

    /// An array-of-tables section, like `[[multimap]]`.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(transparent)]
    struct Probes(Vec<ProbeItem>);

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ProbeItem {
        name: String,
        pattern: Spanned<String>,
        #[serde(default)]
        score: Option<f64>,
    }

    impl Section for Probes {
        const KEY: &'static str = "probes";
        fn validate(&self, problems: &mut Problems) {
            for (i, p) in self.0.iter().enumerate() {
                problems.finite_score(format!("[{i}].score"), p.score);
                problems.symbol_name(p.pattern.span(), format!("[{i}].name"), &p.name);
                if p.pattern.get_ref().is_empty() {
                    problems.at_span(p.pattern.span(), format!("[{i}].pattern"), "is empty");
                }
            }
        }
    }

    fn registry() -> Registry {
        Registry::new().with::<Probe>().with::<Probes>()
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        load_str(text, "t.toml", &registry()).expect_err("config should be rejected")
    }

    fn line_of<'a>(e: &'a [ConfigError], key: &str) -> (usize, &'a ConfigError) {
        let err = e
            .iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no error for {key}: {e:#?}"));
        (err.position.map_or(0, |p| p.line), err)
    }

    #[test]
    fn type_errors_in_registered_and_core_sections_come_in_one_pass() {
        let text = "\
[actions]
reject = \"high\"
[probe]
enabld = true
limit = \"ten\"
[[probes]]
name = \"P\"
pattern = 3
[scan]
max_message_size = \"12q\"
";
        let e = errors(text);
        assert_eq!(e.len(), 5, "{e:#?}");
        let (line, _) = line_of(&e, "actions.reject");
        assert_eq!(line, 2);
        let (line, typo) = line_of(&e, "probe.enabld");
        assert_eq!(line, 4);
        assert_eq!(typo.position.map(|p| p.column), Some(1));
        assert!(typo.message.contains("did you mean `enabled`"), "{typo}");
        assert!(
            typo.to_string()
                .starts_with("t.toml:4:1: probe.enabld: unknown field")
        );
        assert_eq!(line_of(&e, "probe.limit").0, 5);
        assert_eq!(line_of(&e, "probes[0].pattern").0, 8);
        assert_eq!(line_of(&e, "scan.max_message_size").0, 10);
        // In file order, as before.
        let lines: Vec<usize> = e.iter().map(|e| e.position.unwrap().line).collect();
        assert!(lines.is_sorted(), "{lines:?}");
    }

    #[test]
    fn an_unknown_top_level_key_is_matched_against_registered_keys() {
        let e = errors("[actions]\nreject = 15\n[prob]\nenabled = true\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].key, "prob");
        assert_eq!(e[0].position, Some(Position { line: 3, column: 2 }));
        assert!(e[0].message.contains("did you mean `probe`"), "{}", e[0]);
        // Every key a user may write is listed, core's and registered ones.
        assert!(
            e[0].message.contains("`actions`") && e[0].message.contains("`probes`"),
            "{}",
            e[0]
        );
        let e = errors("[[probess]]\nname = \"A\"\npattern = \"a\"\n");
        assert!(e[0].message.contains("did you mean `probes`"), "{}", e[0]);
        // Core keys are still suggested.
        let e = errors("[actons]\nreject = 15\n");
        assert!(e[0].message.contains("did you mean `actions`"), "{}", e[0]);
        // Without the registration the key is unknown: nothing is read by accident.
        let e = load_str("[probe]\nlimit = 1\n", "t.toml", &Registry::new()).unwrap_err();
        assert_eq!(e[0].key, "probe");
        assert!(
            e[0].message.starts_with("unknown field `probe`"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn validate_problems_are_located_at_their_line_beside_core_ones() {
        let text = "\
[actions]
greylist = -1
[probe]
enabled = true

limit = 0
[[probes]]
name = \"OK\"
pattern = \"x\"
[[probes]]
name = \"bad name\"
score = nan
pattern = \"\"
";
        let e = errors(text);
        assert_eq!(e.len(), 5, "{e:#?}");
        assert_eq!(line_of(&e, "actions.greylist").0, 2);
        let (line, limit) = line_of(&e, "probe.limit");
        assert_eq!(line, 6);
        assert!(limit.message.contains("give a limit"), "{limit}");
        let (line, score) = line_of(&e, "probes[1].score");
        assert_eq!(line, 12);
        assert!(score.message.contains("finite"), "{score}");
        // Problems with a span are placed at it.
        assert_eq!(line_of(&e, "probes[1].pattern").0, 13);
        let (line, name) = line_of(&e, "probes[1].name");
        assert_eq!(line, 13);
        assert!(name.message.contains("SENDER_BLOCKLIST"), "{name}");
        // A problem with a section the file leaves out names the key, no line.
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        struct Strict {}
        impl Section for Strict {
            const KEY: &'static str = "strict";
            fn validate(&self, problems: &mut Problems) {
                problems.at("", "always refused");
            }
        }
        let e = load_str("", "t.toml", &Registry::new().with::<Strict>()).unwrap_err();
        assert_eq!(e[0].key, "strict");
        assert_eq!(e[0].position, None);
    }

    #[test]
    fn registered_sections_are_read_defaulted_and_dumped() {
        let c = load_str(
            "[probe]\nlimit = 3\n[[probes]]\nname = \"A\"\npattern = \"a\"\n",
            "t.toml",
            &registry(),
        )
        .unwrap();
        assert_eq!(c.section::<Probe>().limit, 3);
        assert!(c.section::<Probe>().enabled);
        assert_eq!(c.section::<Probes>().0[0].name, "A");
        let c = load_str("", "t.toml", &registry()).unwrap();
        assert_eq!(c.section::<Probe>().limit, 10);
        assert!(c.section::<Probes>().0.is_empty());
        // A config built without the registration lends the default.
        assert_eq!(Config::default().section::<Probe>().limit, 10);
        let c = Config::default().with_section(Probe {
            enabled: false,
            limit: 1,
        });
        assert!(!c.section::<Probe>().enabled);
        // `config dump` prints registered sections, defaults included,
        // and what it prints loads back.
        let c = load_str(
            "[[probes]]\nname = \"A\"\npattern = \"a\"\n",
            "t",
            &registry(),
        )
        .unwrap();
        let dump = toml::to_string_pretty(&c).unwrap();
        // In the struct's order, as core's sections (toml's `preserve_order`).
        assert!(
            dump.contains("[probe]\nlimit = 10\nenabled = true\n"),
            "{dump}"
        );
        assert!(dump.contains("[[probes]]\nname = \"A\""), "{dump}");
        assert!(dump.contains("[actions]"), "{dump}");
        let again = load_str(&dump, "dump", &registry()).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(again.section::<Probes>().0[0].pattern.get_ref(), "a");
        let dump = toml::to_string_pretty(&registry().defaults()).unwrap();
        assert!(dump.contains("[probe]"), "{dump}");
    }

    #[test]
    #[should_panic(expected = "registered twice or is a core section")]
    fn a_key_has_one_owner() {
        let _ = registry().with::<Probe>();
    }

    #[test]
    fn core_keys_are_configs_fields() {
        let doc = DeTable::parse("zzz = 1\n").unwrap();
        let e = Config::deserialize(toml::de::Deserializer::from(doc)).unwrap_err();
        let message = first_line(e.message());
        let listed: Vec<&str> = message.split('`').skip(1).step_by(2).skip(1).collect();
        assert_eq!(listed, CORE_KEYS, "{message}");
    }
}
