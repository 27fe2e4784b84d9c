//! Reading the files a config names (the config itself, map files, rule
//! tables, whitelists) without trusting what they are.
//!
//! A path may name a device (`/dev/zero` never ends), a FIFO (opening it
//! waits for a writer, forever), a directory, or a file far larger than any
//! sane map. Each would hang `config check` or eat the machine's memory.
//! [`read_bounded`] opens without blocking, accepts regular files only and
//! reads at most `cap` bytes, so every such case is a clear, quick error.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// Not a regular file: what it is instead (`a FIFO`, `a directory`, …).
    NotRegular(&'static str),
    /// Larger than the cap (`size` is at least `cap + 1`, or the size seen).
    TooLarge {
        size: u64,
        cap: u64,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(what) => write!(
                f,
                "it is {what}, not a regular file; point the setting at a plain file"
            ),
            ReadError::TooLarge { size, cap } => {
                write!(f, "it holds {size} bytes, over the limit of {cap} bytes")
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// The whole content of the regular file at `path`, refused if it is
/// anything else or holds more than `cap` bytes.
///
/// The file is opened with `O_NONBLOCK` so that a FIFO does not block the
/// open, and its type is checked on the open descriptor (not the path), so
/// a file swapped for a FIFO or device in between cannot slip through.
pub fn read_bounded(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a plain file"
        }));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            cap,
        });
    }
    read_capped(file, meta.len(), cap)
}

/// Reads at most `cap` bytes; one more means the file grew past the cap
/// while being read.
fn read_capped(file: File, expected: u64, cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_cap_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10).unwrap(), b"0123456789");
        match read_bounded(&p, 9) {
            Err(ReadError::TooLarge { size: 10, cap: 9 }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        // /dev/zero reports a size of 0 and never ends: only the file type
        // check stops it.
        let e = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_bounded(dir.path(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        // A FIFO without a writer: a blocking open would never return.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        let e = read_bounded(&fifo, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert!(matches!(
            read_bounded(&dir.path().join("missing"), 1),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
    }
}
