//! Following a log file as it grows, through rotation.
//!
//! - Start: at the end (nothing old is re-counted), at a saved position
//!   (same inode, not past the end), or at the beginning (`from_start`,
//!   or a file that appears after we started: it is all new).
//! - Rotation by rename (logrotate's default): the path now names another
//!   inode; what was left in the old file is read to its end, then the new
//!   file from its beginning.
//! - Rotation by truncation (`copytruncate`): the file is shorter than our
//!   position; we start over at 0.
//! - A missing file is waited for, polled each time.
//! - Compressed rotated files (`.gz`) are never opened.
//!
//! Lines longer than [`MAX_LINE`] are cut there (the rest is skipped, and
//! counted): a log line is never a reason to grow memory without bound.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MAX_LINE: usize = 16 * 1024;
const CHUNK: usize = 256 * 1024;

/// Where a file was left: saved in the store (`banpos:<path>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub inode: u64,
    pub offset: u64,
}

/// Where to begin reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    End,
    Beginning,
    At(Position),
}

pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: u64,
    offset: u64,
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    start: Start,
    /// Lines cut at MAX_LINE.
    pub long_lines: u64,
    /// Rotations seen (rename or truncation).
    pub rotations: u64,
    buf: Vec<u8>,
    head: Vec<u8>,
}

const HEAD: usize = 64;

fn read_at(f: &File, buf: &mut [u8]) -> usize {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.read_at(buf, 0).unwrap_or(0)
    }
    #[cfg(not(unix))]
    {
        let _ = (f, buf);
        0
    }
}

fn inode(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        meta.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

impl Follower {
    /// Refuses `.gz` paths; a missing file is not an error (waited for).
    pub fn new(path: &Path, start: Start) -> Result<Follower, String> {
        if path.extension().is_some_and(|e| e == "gz") {
            return Err(format!(
                "{}: compressed files are not followed",
                path.display()
            ));
        }
        let mut f = Follower {
            path: path.to_path_buf(),
            file: None,
            inode: 0,
            offset: 0,
            partial: Vec::new(),
            skipping: false,
            start,
            long_lines: 0,
            rotations: 0,
            buf: vec![0; CHUNK],
            head: Vec::new(),
        };
        f.open(true);
        f.head = f.read_head();
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the next read starts (complete lines only): for saving.
    pub fn position(&self) -> Option<Position> {
        self.file.as_ref().map(|_| Position {
            inode: self.inode,
            offset: self.offset - self.partial.len() as u64,
        })
    }

    /// Opens the path; at first open, honours `start`.
    fn open(&mut self, first: bool) {
        let Ok(file) = File::open(&self.path) else {
            return;
        };
        let Ok(meta) = file.metadata() else { return };
        let ino = inode(&meta);
        let offset = if first {
            match self.start {
                Start::End => meta.len(),
                Start::Beginning => 0,
                Start::At(p) if p.inode == ino && p.offset <= meta.len() => p.offset,
                Start::At(_) => 0,
            }
        } else {
            0
        };
        let mut file = file;
        if file.seek(SeekFrom::Start(offset)).is_err() {
            return;
        }
        self.file = Some(file);
        self.inode = ino;
        self.offset = offset;
        self.partial.clear();
        self.skipping = false;
    }

    /// Reads what was added since the last call and hands each complete
    /// line to `each` (without its newline, invalid UTF-8 replaced).
    pub fn poll(&mut self, mut each: impl FnMut(&str)) -> io::Result<usize> {
        let mut lines = 0;
        if self.file.is_none() {
            // Appeared after we started: all of it is new.
            self.open(false);
            if self.file.is_none() {
                return Ok(0);
            }
            self.head = self.read_head();
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) if inode(&meta) != self.inode => {
                // Renamed away: the old file is read to its end; a line
                // without its newline there is complete now. Then the new
                // file from its beginning.
                lines += self.drain(&mut each)?;
                lines += self.flush_partial(&mut each);
                self.rotations += 1;
                self.file = None;
                self.open(false);
                self.head = self.read_head();
            }
            Ok(meta) if meta.len() < self.offset || self.head_changed() => {
                // Truncated (copytruncate), perhaps already written again.
                self.rotations += 1;
                self.partial.clear();
                self.skipping = false;
                if let Some(f) = self.file.as_mut() {
                    f.seek(SeekFrom::Start(0))?;
                }
                self.offset = 0;
                self.head = self.read_head();
            }
            // Removed (rotation in progress): keep the open file until a
            // new one appears.
            _ => {}
        }
        lines += self.drain(&mut each)?;
        Ok(lines)
    }

    /// The file's first bytes: a file truncated and written again past
    /// our offset is told apart from one that grew by these.
    fn read_head(&self) -> Vec<u8> {
        let mut head = vec![0u8; HEAD];
        let n = self.file.as_ref().map_or(0, |f| read_at(f, &mut head));
        head.truncate(n);
        head
    }

    fn head_changed(&mut self) -> bool {
        if self.offset == 0 {
            return false;
        }
        let now = self.read_head();
        let common = now.len().min(self.head.len());
        if now[..common] != self.head[..common] {
            return true;
        }
        if now.len() > self.head.len() {
            self.head = now;
        }
        false
    }

    fn flush_partial(&mut self, each: &mut impl FnMut(&str)) -> usize {
        if self.partial.is_empty() {
            return 0;
        }
        each(&String::from_utf8_lossy(&self.partial));
        self.partial.clear();
        1
    }

    fn drain(&mut self, each: &mut impl FnMut(&str)) -> io::Result<usize> {
        let mut lines = 0;
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        loop {
            let n = match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            let mut chunk = &self.buf[..n];
            while let Some(nl) = memchr::memchr(b'\n', chunk) {
                let piece = &chunk[..nl];
                chunk = &chunk[nl + 1..];
                if self.skipping {
                    self.skipping = false;
                    self.partial.clear();
                    continue;
                }
                if self.partial.is_empty() {
                    if piece.len() > MAX_LINE {
                        self.long_lines += 1;
                    }
                    each(&String::from_utf8_lossy(
                        &piece[..piece.len().min(MAX_LINE)],
                    ));
                } else {
                    let room = MAX_LINE.saturating_sub(self.partial.len());
                    self.partial
                        .extend_from_slice(&piece[..piece.len().min(room)]);
                    each(&String::from_utf8_lossy(&self.partial));
                    self.partial.clear();
                }
                lines += 1;
            }
            if !self.skipping && !chunk.is_empty() {
                self.partial.extend_from_slice(chunk);
                if self.partial.len() >= MAX_LINE {
                    self.partial.truncate(MAX_LINE);
                    each(&String::from_utf8_lossy(&self.partial));
                    lines += 1;
                    self.long_lines += 1;
                    // Keep `partial` non-empty so position() stays honest
                    // while skipping; cleared at the newline.
                    self.skipping = true;
                }
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(f: &mut Follower) -> Vec<String> {
        let mut v = Vec::new();
        f.poll(|l| v.push(l.to_string())).unwrap();
        v
    }

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    #[test]
    fn end_rename_truncate_missing_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        append(&p, "old 1\nold 2\n");
        let mut f = Follower::new(&p, Start::End).unwrap();
        assert!(collect(&mut f).is_empty(), "starts at the end");
        append(&p, "new 1\nhalf");
        assert_eq!(collect(&mut f), ["new 1"]);
        append(&p, " line\n");
        assert_eq!(collect(&mut f), ["half line"]);

        // Rename rotation: a line written to the old file after the rename
        // is still read, then the new file from its start.
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        append(&dir.path().join("mail.log.1"), "late old\n");
        append(&p, "fresh 1\n");
        assert_eq!(collect(&mut f), ["late old", "fresh 1"]);
        assert_eq!(f.rotations, 1);

        // Truncation (copytruncate).
        std::fs::write(&p, "").unwrap();
        append(&p, "after truncate\n");
        assert_eq!(collect(&mut f), ["after truncate"]);
        assert_eq!(f.rotations, 2);

        // Saved position: resume exactly there.
        let pos = f.position().unwrap();
        append(&p, "while down\n");
        let mut g = Follower::new(&p, Start::At(pos)).unwrap();
        assert_eq!(collect(&mut g), ["while down"]);

        // Missing file: waited for, then read whole.
        let q = dir.path().join("later.log");
        let mut h = Follower::new(&q, Start::End).unwrap();
        assert!(collect(&mut h).is_empty());
        append(&q, "first\n");
        assert_eq!(collect(&mut h), ["first"]);

        assert!(Follower::new(&dir.path().join("x.log.2.gz"), Start::End).is_err());
    }

    #[test]
    fn long_lines_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, "").unwrap();
        let mut f = Follower::new(&p, Start::Beginning).unwrap();
        let long = "a".repeat(MAX_LINE * 3);
        append(&p, &format!("{long}\nshort\n"));
        let got = collect(&mut f);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), MAX_LINE);
        assert_eq!(got[1], "short");
        assert_eq!(f.long_lines, 1);
    }
}
