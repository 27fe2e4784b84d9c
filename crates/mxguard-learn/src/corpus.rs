//! Reading messages to learn from or evaluate on: single message files,
//! directories (recursively, so Maildir `cur/` and `new/` are covered), and
//! mbox files.

use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Files larger than this are skipped with a warning (a stray disk image
/// in a mail folder must not exhaust memory).
pub const MAX_FILE: u64 = 256 << 20;

/// Removes a leading mbox `From ` envelope line, which is not part of the
/// message (corpora stored one message per file often keep it).
pub fn strip_mbox_line(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|&b| b == b'\n') {
            Some(i) => &raw[i + 1..],
            None => &[],
        }
    } else {
        raw
    }
}

/// True when the bytes look like an mbox of more than one message.
fn is_mbox(raw: &[u8]) -> bool {
    raw.starts_with(b"From ") && raw.windows(6).any(|w| w == b"\nFrom ")
}

/// Every file under `paths`, in a stable order (sorted per directory,
/// hidden entries and Maildir `tmp/` skipped).
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    if !meta.is_dir() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| format!("cannot list {}: {e}", p.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|e| {
            !e.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    let maildir = p.join("cur").is_dir() || p.join("new").is_dir();
    for e in entries {
        if maildir && e.file_name().is_some_and(|n| n == "tmp") {
            continue;
        }
        walk(&e, out)?;
    }
    Ok(())
}

/// Calls `f(origin, message)` for every message in `path`: the file itself,
/// or each message of an mbox (origin `path#n`). Returns how many.
pub fn read_messages(path: &Path, f: &mut dyn FnMut(String, Vec<u8>)) -> Result<usize, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{}: larger than {MAX_FILE} bytes, skipped",
            path.display()
        ));
    }
    let raw = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !is_mbox(&raw) {
        f(path.display().to_string(), strip_mbox_line(&raw).to_vec());
        return Ok(1);
    }
    let mut n = 0;
    for m in mail_parser::mailbox::mbox::MessageIterator::new(BufReader::new(raw.as_slice())) {
        let m = m.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        f(format!("{}#{n}", path.display()), m.unwrap_contents());
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_line_and_mbox_files() {
        assert_eq!(
            strip_mbox_line(b"From a@b Mon\nSubject: x\n\nb"),
            b"Subject: x\n\nb"
        );
        assert_eq!(strip_mbox_line(b"Subject: x\n\nb"), b"Subject: x\n\nb");
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("box");
        std::fs::write(
            &mbox,
            "From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n>From quoted\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nbody\n",
        )
        .unwrap();
        let mut got = Vec::new();
        assert_eq!(
            read_messages(&mbox, &mut |o, m| got.push((o, m))).unwrap(),
            2
        );
        assert!(got[0].0.ends_with("box#0"));
        assert!(String::from_utf8_lossy(&got[0].1).contains("From quoted"));
        assert!(String::from_utf8_lossy(&got[1].1).starts_with("Subject: two"));

        let md = dir.path().join("Maildir");
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(d)).unwrap();
            std::fs::write(md.join(d).join("1"), "Subject: x\n\nb\n").unwrap();
        }
        let f = files(&[md]).unwrap();
        assert_eq!(f.len(), 2, "tmp/ is skipped: {f:?}");
    }
}
