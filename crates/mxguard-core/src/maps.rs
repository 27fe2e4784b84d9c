//! Map files that reload when they change, without a restart.
//!
//! A map is parsed into a typed, immutable snapshot. Readers take the
//! current snapshot (an `Arc` clone); at most once per check interval a
//! reader also compares the file's modification time and size with the
//! snapshot's, and re-reads the file if they differ. Polling keeps this free
//! of watcher threads and works the same in `mxguard scan` and `serve`.
//! A line that does not parse is logged with file:line and skipped; a file
//! that disappears, becomes unreadable, is replaced by something that is not
//! a regular file (a FIFO, a device) or grows past `[scan] max_map_size`
//! keeps the last good snapshot, with one warning per such change.

use crate::config::ScanConfig;
use crate::files::read_bounded;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// A problem with one line of a map file.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}; line skipped",
            self.file.display(),
            self.line,
            self.message
        )
    }
}

/// How often a map file is checked for changes and how large it may be:
/// `[scan] map_check_interval` and `[scan] max_map_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLimits {
    pub check_every: Duration,
    /// Larger files are refused (at load) or ignored (at reload).
    pub max_size: u64,
}

impl MapLimits {
    pub fn of(scan: &ScanConfig) -> MapLimits {
        MapLimits {
            check_every: scan.map_check_interval.as_duration(),
            max_size: scan.max_map_size.0,
        }
    }
}

/// A type that can be built from a map file's text.
pub trait MapData: Send + Sync + Sized + 'static {
    /// Parses the whole file. Bad lines go to `errors` and are skipped.
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self;
}

/// Iterates over a map file's meaningful lines: `(line number, content)`,
/// with `#` comments (at line start or after whitespace) and blank lines
/// removed, and Postfix-style continuation lines (starting with whitespace)
/// joined to the previous line.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    lines_with(text, strip_comment)
}

/// Like [`logical_lines`], but `#` starts a comment only at the start of a
/// line, as in Postfix `regexp:` tables where `#` may be part of a pattern.
pub fn logical_lines_whole_line_comments(text: &str) -> Vec<(usize, String)> {
    lines_with(text, |l| {
        if l.trim_start().starts_with('#') {
            ""
        } else {
            l
        }
    })
}

fn lines_with(text: &str, strip: fn(&str) -> &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip(raw);
        if line.trim().is_empty() {
            continue;
        }
        if raw.starts_with([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        out.push((i + 1, line.trim().to_string()));
    }
    out
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    let b = line.as_bytes();
    for i in 1..b.len() {
        if b[i] == b'#' && b[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

struct Snapshot<T> {
    data: Arc<T>,
    stamp: Stamp,
}

/// A map file and its current snapshot.
pub struct MapFile<T: MapData> {
    path: PathBuf,
    limits: MapLimits,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last modification check.
    last_check_ms: AtomicU64,
    current: RwLock<Snapshot<T>>,
    /// What went wrong at the last check, if anything, so that a lasting
    /// fault is warned about once, and a refused version is not re-read.
    fault: Mutex<Option<Fault>>,
}

impl<T: MapData> MapFile<T> {
    /// Loads the file now; a missing or unreadable file is an error here,
    /// since the config names it.
    pub fn load(path: &Path, limits: MapLimits) -> Result<(MapFile<T>, Vec<LineError>), String> {
        let (data, stamp, errors) = read(path, limits.max_size)?;
        Ok((
            MapFile {
                path: path.to_path_buf(),
                limits,
                epoch: Instant::now(),
                last_check_ms: AtomicU64::new(0),
                current: RwLock::new(Snapshot {
                    data: Arc::new(data),
                    stamp,
                }),
                fault: Mutex::new(None),
            },
            errors,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current snapshot, reloading first if the file changed.
    pub fn get(&self) -> Arc<T> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_check_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.limits.check_every.as_millis() as u64
            && self
                .last_check_ms
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.reload_if_changed();
        }
        self.snapshot()
    }

    fn snapshot(&self) -> Arc<T> {
        match self.current.read() {
            Ok(s) => s.data.clone(),
            Err(poisoned) => poisoned.into_inner().data.clone(),
        }
    }

    /// Re-reads the file if its stamp changed. Returns true if it reloaded.
    pub fn reload_if_changed(&self) -> bool {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(m) => stamp_of(&m),
            Err(e) => {
                if self.note_fault(Fault::Unreadable) {
                    tracing::warn!(file = %self.path.display(), error = %e, "map file unreadable; keeping the last good copy");
                }
                return false;
            }
        };
        let unchanged = self
            .current
            .read()
            .map(|s| s.stamp == stamp)
            .unwrap_or(false);
        if unchanged {
            self.clear_fault();
            return false;
        }
        if self.last_fault() == Some(Fault::Refused(stamp)) {
            return false;
        }
        match read::<T>(&self.path, self.limits.max_size) {
            Ok((data, stamp, errors)) => {
                for e in &errors {
                    tracing::warn!("{e}");
                }
                let mut w = match self.current.write() {
                    Ok(w) => w,
                    Err(p) => p.into_inner(),
                };
                *w = Snapshot {
                    data: Arc::new(data),
                    stamp,
                };
                self.clear_fault();
                tracing::info!(file = %self.path.display(), "map file reloaded");
                true
            }
            Err(e) => {
                self.note_fault(Fault::Refused(stamp));
                tracing::warn!("{e}; keeping the last good copy");
                false
            }
        }
    }

    fn fault(&self) -> std::sync::MutexGuard<'_, Option<Fault>> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last_fault(&self) -> Option<Fault> {
        *self.fault()
    }

    /// Records `fault`; true if it is new (and so worth a warning).
    fn note_fault(&self, fault: Fault) -> bool {
        self.fault().replace(fault) != Some(fault)
    }

    fn clear_fault(&self) {
        *self.fault() = None;
    }
}

/// Why the file on disk is not the snapshot in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// It cannot be found or stat'ed.
    Unreadable,
    /// This version of it was refused (not a regular file, too large,
    /// unreadable): not read again until it changes.
    Refused(Stamp),
}

fn stamp_of(m: &std::fs::Metadata) -> Stamp {
    Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    }
}

fn read<T: MapData>(path: &Path, max_size: u64) -> Result<(T, Stamp, Vec<LineError>), String> {
    let what = |e: &dyn std::fmt::Display| format!("{}: cannot read map file: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| what(&e))?;
    let bytes = read_bounded(path, max_size).map_err(|e| match e {
        crate::files::ReadError::TooLarge { .. } => what(&format!(
            "{e}; raise [scan] max_map_size if it is meant to be this large"
        )),
        e => what(&e),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let mut errors = Vec::new();
    let data = T::parse(path, &text, &mut errors);
    Ok((data, stamp_of(&meta), errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lines(Vec<String>);
    impl MapData for Lines {
        fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
            let mut v = Vec::new();
            for (n, l) in logical_lines(text) {
                if l == "bad" {
                    errors.push(LineError {
                        file: path.into(),
                        line: n,
                        message: "bad".into(),
                    });
                } else {
                    v.push(l);
                }
            }
            Lines(v)
        }
    }

    fn limits(max_size: u64) -> MapLimits {
        MapLimits {
            check_every: Duration::ZERO,
            max_size,
        }
    }

    #[test]
    fn comments_continuations_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        std::fs::write(
            &p,
            "# c\na # trailing\n\nb#notcomment\nbad\nc\n  continued\n",
        )
        .unwrap();
        let (m, errs) = MapFile::<Lines>::load(&p, limits(1 << 20)).unwrap();
        assert_eq!(m.get().0, vec!["a", "b#notcomment", "c continued"]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 5);
        assert!(errs[0].to_string().contains(":5: bad; line skipped"));
    }

    #[test]
    fn reloads_on_change_and_keeps_last_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        std::fs::write(&p, "one\n").unwrap();
        let (m, _) = MapFile::<Lines>::load(&p, limits(1 << 20)).unwrap();
        assert_eq!(m.get().0, vec!["one"]);
        std::fs::write(&p, "one\ntwo\n").unwrap();
        assert_eq!(m.get().0, vec!["one", "two"]);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(m.get().0, vec!["one", "two"]);
        assert!(MapFile::<Lines>::load(&p, limits(1 << 20)).is_err());
    }

    #[test]
    fn devices_fifos_and_oversized_files_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let e = MapFile::<Lines>::load(Path::new("/dev/zero"), limits(1 << 20))
            .err()
            .unwrap();
        assert!(
            e.contains("/dev/zero") && e.contains("character device"),
            "{e}"
        );
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let e = MapFile::<Lines>::load(&fifo, limits(1 << 20))
            .err()
            .unwrap();
        assert!(e.contains("FIFO"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, "x\n".repeat(100)).unwrap();
        let e = MapFile::<Lines>::load(&big, limits(199)).err().unwrap();
        assert!(
            e.contains("200 bytes") && e.contains("199") && e.contains("max_map_size"),
            "{e}"
        );
        assert!(MapFile::<Lines>::load(&big, limits(200)).is_ok());
    }

    #[test]
    fn a_map_replaced_by_a_fifo_or_a_huge_file_keeps_the_last_good_copy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        std::fs::write(&p, "one\n").unwrap();
        let (m, _) = MapFile::<Lines>::load(&p, limits(64)).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&p)
                .status()
                .unwrap()
                .success()
        );
        // A blocking open of the FIFO would hang here.
        assert!(!m.reload_if_changed());
        assert_eq!(m.get().0, vec!["one"]);
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "x\n".repeat(40)).unwrap();
        assert!(!m.reload_if_changed());
        assert_eq!(m.get().0, vec!["one"]);
        std::fs::write(&p, "two\n").unwrap();
        assert!(m.reload_if_changed());
        assert_eq!(m.get().0, vec!["two"]);
    }
}
