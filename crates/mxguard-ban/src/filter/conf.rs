//! fail2ban filter .conf files, loaded as they are.
//!
//! Read: the INI layout (`[INCLUDES]` `before`/`after`, `[DEFAULT]`,
//! `[Init]`, `[Definition]`, indented continuation lines, `#`/`;`
//! comments), a `.local` beside the `.conf`, Python's `%(name)s`
//! interpolation (with `known/name`) and fail2ban's `<name>` substitution
//! of definition values (`<mdre-<mode>>`), options given as
//! `name[mode=aggressive, other=x]`, and the keys `failregex`,
//! `ignoreregex`, `prefregex`, `datepattern`, `journalmatch`.
//!
//! Not supported (an error names the file and key where it matters):
//! expressions using Python-only regex syntax (see `pattern::UNSUPPORTED`),
//! `maxlines` buffering across lines (`<SKIPLINES>`), and the multi-line
//! semantics of `<F-MLFGAINED>`; `<F-MLFID>`, `<F-NOFAIL>` and
//! `<F-MLFFORGET>` are honoured as `custom` describes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::FilterError;
use super::custom::Definition;

/// A loaded filter: its definition and the journal match it asks for.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub definition: Definition,
    pub journalmatch: Vec<String>,
}

/// Loads `path` with options (`mode` …) given by the jail.
pub fn load(path: &Path, options: &[(String, String)]) -> Result<Loaded, FilterError> {
    let mut values: HashMap<String, String> = HashMap::new();
    read_with_includes(path, &mut values, 0)?;
    let local = path.with_extension("local");
    if local.exists() {
        read_with_includes(&local, &mut values, 0)?;
    }
    for (k, v) in options {
        values.insert(k.clone(), v.clone());
    }
    let resolve = |key: &str| -> Result<Option<String>, FilterError> {
        match values.get(key) {
            None => Ok(None),
            Some(v) => interpolate(v, &values, 0)
                .map(Some)
                .map_err(|e| FilterError(format!("{}: key `{key}`: {e}", path.display()))),
        }
    };
    let lines = |v: Option<String>| -> Vec<String> {
        v.map(|v| {
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
    };
    let definition = Definition {
        failregex: lines(resolve("failregex")?),
        ignoreregex: lines(resolve("ignoreregex")?),
        prefregex: resolve("prefregex")?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        datepattern: resolve("datepattern")?
            .map(|s| s.trim().to_string())
            .filter(|s| !(s.is_empty() || s.starts_with('{') && s.ends_with('}'))),
    };
    if definition.failregex.is_empty() {
        return Err(FilterError(format!(
            "{}: no failregex in [Definition] (nor in the files it includes)",
            path.display()
        )));
    }
    Ok(Loaded {
        definition,
        journalmatch: lines(resolve("journalmatch")?),
    })
}

fn read_with_includes(
    path: &Path,
    values: &mut HashMap<String, String>,
    depth: usize,
) -> Result<(), FilterError> {
    if depth > 8 {
        return Err(FilterError(format!(
            "{}: includes nest deeper than 8",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        FilterError(format!(
            "cannot read fail2ban filter {}: {e}",
            path.display()
        ))
    })?;
    let sections = parse_ini(&text);
    let dir = path.parent().unwrap_or(Path::new("."));
    let include = |key: &str| -> Vec<PathBuf> {
        sections
            .iter()
            .filter(|(s, _, _)| s == "INCLUDES")
            .filter(|(_, k, _)| k == key)
            .flat_map(|(_, _, v)| {
                v.split_whitespace()
                    .map(|f| dir.join(f))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    for before in include("before") {
        if before.exists() {
            read_with_includes(&before, values, depth + 1)?;
        }
    }
    // [DEFAULT] and [Init] first, [Definition] over them; any other
    // section's keys as `section/key` (common.conf's `[lt_file]`, read
    // through `<lt_<logtype>/__prefix_line>`).
    for want in ["DEFAULT", "Init", "Definition"] {
        for (section, key, value) in &sections {
            if section == want {
                values.insert(key.clone(), value.clone());
            }
        }
    }
    for (section, key, value) in &sections {
        if !["DEFAULT", "Init", "Definition", "INCLUDES"].contains(&section.as_str()) {
            values.insert(format!("{section}/{key}"), value.clone());
        }
    }
    for after in include("after") {
        if after.exists() {
            read_with_includes(&after, values, depth + 1)?;
        }
    }
    Ok(())
}

/// (section, key, value) in file order; continuation lines joined by `\n`.
fn parse_ini(text: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut section = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) && !trimmed.is_empty() {
            if let Some(last) = out.last_mut()
                && last.0 == section
            {
                last.2.push('\n');
                last.2.push_str(trimmed);
            }
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        let split = trimmed.find(['=', ':']);
        if let Some(i) = split {
            let key = trimmed[..i].trim().to_string();
            let value = trimmed[i + 1..].trim().to_string();
            out.push((section.clone(), key, value));
        }
    }
    out
}

/// `%(name)s` and `<name>` (for names defined here) until nothing changes.
fn interpolate(
    value: &str,
    values: &HashMap<String, String>,
    depth: usize,
) -> Result<String, String> {
    if depth > 24 {
        return Err("interpolation nests deeper than 24 (a loop?)".into());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut changed = false;
    while let Some(i) = rest.find(['%', '<']) {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(after) = at.strip_prefix("%%") {
            out.push('%');
            rest = after;
            continue;
        }
        if let Some(inner) = at.strip_prefix("%(")
            && let Some(close) = inner.find(")s")
        {
            let name = &inner[..close];
            let key = name.strip_prefix("known/").unwrap_or(name);
            let Some(v) = values.get(key) else {
                return Err(format!("`%({name})s` is not defined"));
            };
            out.push_str(v);
            changed = true;
            rest = &inner[close + 2..];
            continue;
        }
        if let Some(inner) = at.strip_prefix('<') {
            // Innermost `<name>` only: `<mdre-<mode>>` resolves `<mode>` first.
            if let Some(close) = inner.find('>') {
                let name = &inner[..close];
                if !name.contains('<')
                    && !name.starts_with("F-")
                    && !name.starts_with("/F-")
                    && let Some(v) = values.get(name)
                {
                    out.push_str(v);
                    changed = true;
                    rest = &inner[close + 1..];
                    continue;
                }
            }
        }
        out.push_str(&at[..1]);
        rest = &at[1..];
    }
    out.push_str(rest);
    if changed {
        interpolate(&out, values, depth + 1)
    } else {
        Ok(out)
    }
}

/// `name[k=v, k2="v 2"]` → (`name`, options).
pub fn split_options(spec: &str) -> (&str, Vec<(String, String)>) {
    let Some(open) = spec.find('[') else {
        return (spec, Vec::new());
    };
    let Some(inner) = spec[open + 1..].strip_suffix(']') else {
        return (spec, Vec::new());
    };
    let options = inner
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(['"', '\'']).to_string(),
            )
        })
        .collect();
    (&spec[..open], options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_interpolation_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("common.conf"),
            "[DEFAULT]\n__prefix_line = \\S+ %(_daemon)s(?:\\[\\d+\\])?:\\s+\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("app.conf"),
            "# a comment\n[INCLUDES]\nbefore = common.conf\n[Definition]\n_daemon = app\n\
             mdre-normal = ^%(__prefix_line)sbad from <HOST>$\n\
             mdre-aggressive = %(mdre-normal)s\n  ^%(__prefix_line)sodd from <HOST>$\n\
             failregex = <mdre-<mode>>\nignoreregex =\n[Init]\nmode = normal\n",
        )
        .unwrap();
        let l = load(&dir.path().join("app.conf"), &[]).unwrap();
        assert_eq!(
            l.definition.failregex,
            vec![r"^\S+ app(?:\[\d+\])?:\s+bad from <HOST>$"]
        );
        let (_, opts) = split_options("app[mode=aggressive]");
        let l = load(&dir.path().join("app.conf"), &opts).unwrap();
        assert_eq!(l.definition.failregex.len(), 2);
        assert!(l.definition.ignoreregex.is_empty());
    }
}
