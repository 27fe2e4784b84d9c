//! Saved overrides: the action thresholds and symbol scores an admin
//! changes from the API or the UI live in one file,
//! `<data_dir>/overrides.toml`, applied over the config file by every
//! command that loads the config (`serve` and its reloads, `scan`, `config
//! check`), so they survive a restart and every front end sees them.
//!
//! The file is TOML with the config file's own `[actions]` and
//! `[symbols.NAME] score` keys and nothing else; it is validated by the
//! config loader itself (what `config check` says of a bad value, it says
//! here), written to a temporary file, synced and renamed over: a reader
//! sees the old file or the new one, never half.

use mxguard_core::config::{Config, Registry, Threshold, load_str};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "overrides.toml";
/// Far more than any set of overrides; a bound on what is read.
const MAX_SIZE: u64 = 1 << 20;

/// The action names `[actions]` has.
pub const ACTION_KEYS: [&str; 4] = ["reject", "rewrite_subject", "add_header", "greylist"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    /// `reject`, `rewrite_subject`, `add_header`, `greylist`: a score, or
    /// `false` for off.
    pub actions: BTreeMap<String, Threshold>,
    pub symbols: BTreeMap<String, SymbolScore>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolScore {
    pub score: f64,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

impl Overrides {
    /// The file's text, with a header saying what it is.
    pub fn to_text(&self) -> Result<String, String> {
        let body = toml::to_string(self).map_err(|e| format!("cannot write the overrides: {e}"))?;
        Ok(format!(
            "# Written by mxguard (web API and UI: saved actions and symbol scores).\n\
             # Applied over the config file; same keys as its [actions] and [symbols.NAME].\n\
             # Edit with care: `mxguard config check` validates it too.\n{body}"
        ))
    }

    /// Parses and validates the file's text the way the config loader does;
    /// errors name `label` with line and column.
    pub fn parse(text: &str, label: &str) -> Result<Overrides, String> {
        load_str(text, label, &Registry::new()).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let o: Overrides = toml::from_str(text).map_err(|e| {
            format!("{label}: only [actions] and [symbols.NAME] score belong here: {e}")
        })?;
        Ok(o)
    }

    /// Applies them over `config`.
    pub fn apply(&self, config: &mut Config) {
        for (name, t) in &self.actions {
            let slot = match name.as_str() {
                "reject" => &mut config.actions.reject,
                "rewrite_subject" => &mut config.actions.rewrite_subject,
                "add_header" => &mut config.actions.add_header,
                "greylist" => &mut config.actions.greylist,
                _ => continue,
            };
            *slot = *t;
        }
        for (name, s) in &self.symbols {
            config.symbols.entry(name.clone()).or_default().score = Some(s.score);
        }
    }
}

/// The overrides in `data_dir`, if the file exists.
pub fn load(data_dir: &Path) -> Result<Option<Overrides>, String> {
    let p = path(data_dir);
    let bytes = match mxguard_core::files::read_bounded(&p, MAX_SIZE) {
        Ok(b) => b,
        Err(mxguard_core::files::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => {
            return Err(format!(
                "{}: cannot read the saved overrides: {e}",
                p.display()
            ));
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", p.display()))?;
    Overrides::parse(&text, &p.display().to_string()).map(Some)
}

/// Applies the overrides in `config`'s data directory over it: what every
/// command that loads the config calls.
pub fn apply_saved(config: &mut Config) -> Result<(), String> {
    if let Some(o) = load(&config.store.data_dir)? {
        o.apply(config);
    }
    Ok(())
}

/// Validates and writes the overrides atomically (temporary file, fsync,
/// rename, fsync of the directory).
pub fn save(data_dir: &Path, o: &Overrides) -> Result<(), String> {
    let p = path(data_dir);
    let text = o.to_text()?;
    Overrides::parse(&text, &p.display().to_string())?;
    write_atomically(&p, text.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file beside it, renamed
/// over: readers see the old content or the new, never a part. The mode of
/// an existing file is kept.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.mxguard-tmp"));
    let what = |e: std::io::Error, doing: &str| format!("{}: cannot {doing}: {e}", path.display());
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions());
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| what(e, "create a temporary file beside it"))?;
        f.write_all(bytes).map_err(|e| what(e, "write"))?;
        if let Some(m) = mode {
            f.set_permissions(m).map_err(|e| what(e, "keep its mode"))?;
        }
        f.sync_all().map_err(|e| what(e, "sync"))?;
        std::fs::rename(&tmp, path).map_err(|e| what(e, "rename the new content over it"))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_apply() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Overrides::default();
        o.actions.insert("reject".into(), Threshold(Some(12.5)));
        o.actions.insert("greylist".into(), Threshold(None));
        o.symbols.insert("GTUBE".into(), SymbolScore { score: 3.0 });
        o.symbols.insert("A.B".into(), SymbolScore { score: -1.0 });
        save(dir.path(), &o).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(o.clone()));
        let mut c = Config::default();
        c.store.data_dir = dir.path().to_path_buf();
        apply_saved(&mut c).unwrap();
        assert_eq!(c.actions.reject.0, Some(12.5));
        assert_eq!(c.actions.greylist.0, None);
        assert_eq!(c.actions.add_header.0, Some(6.0), "untouched");
        assert_eq!(c.symbols["GTUBE"].score, Some(3.0));
        assert_eq!(c.symbols["A.B"].score, Some(-1.0));
    }

    #[test]
    fn bad_values_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Overrides::default();
        o.actions.insert("reject".into(), Threshold(Some(-3.0)));
        let e = save(dir.path(), &o).unwrap_err();
        assert!(
            e.contains("actions.reject") && e.contains("negative"),
            "{e}"
        );
        assert!(!path(dir.path()).exists());
        let e = Overrides::parse("[actions]\nrejct = 5\n", "o.toml").unwrap_err();
        assert!(e.contains("o.toml:2:1") && e.contains("rejct"), "{e}");
        let e = Overrides::parse("[milter]\nenabled = false\n", "o.toml").unwrap_err();
        assert!(e.contains("only [actions]"), "{e}");
    }

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
    }
}
