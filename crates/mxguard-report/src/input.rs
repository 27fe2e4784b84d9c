//! Reading logs: files (plain or gzip, told apart by their first bytes),
//! stdin, and the systemd journal's `journalctl -o json` lines. Lines
//! are cut from a fixed buffer with memchr and handed to the collector
//! as slices: no allocation per line, memory independent of file size.

use crate::collect::Collector;
use crate::date::{Stamp, local_from_unix, unix_now};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The read buffer, and so the longest line read (longer lines are
/// skipped and counted in `too_long`).
pub const BUFFER: usize = 256 * 1024;

/// Reads every line of `reader` into the collector. Journal JSON is
/// recognised by its first byte (`{`).
pub fn read_lines(
    reader: impl Read,
    collector: &mut Collector,
    reference: Stamp,
) -> io::Result<()> {
    read_lines_as(reader, collector, reference, None)
}

/// [`read_lines`], told whether the lines are journal JSON (None: by the
/// first line).
fn read_lines_as(
    mut reader: impl Read,
    collector: &mut Collector,
    reference: Stamp,
    mut journal: Option<bool>,
) -> io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    let mut filled = 0;
    let mut skipping = false;
    let mut synth = Vec::with_capacity(1024);
    loop {
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = filled + n;
        let mut start = 0;
        while let Some(p) = memchr::memchr(b'\n', &buf[start..end]) {
            let line = &buf[start..start + p];
            start += p + 1;
            if skipping {
                skipping = false;
                continue;
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let is_journal = *journal.get_or_insert_with(|| line.first() == Some(&b'{'));
            if is_journal {
                journal_line(line, collector, reference, &mut synth);
            } else {
                collector.line(line, reference);
            }
        }
        if n == 0 {
            // The last line may have no line end.
            if start < end && !skipping {
                let line = &buf[start..end];
                if *journal.get_or_insert_with(|| line.first() == Some(&b'{')) {
                    journal_line(line, collector, reference, &mut synth);
                } else {
                    collector.line(line, reference);
                }
            }
            return Ok(());
        }
        if start == 0 && end == buf.len() {
            // A line longer than the buffer: skip to its end.
            collector.too_long();
            skipping = true;
            filled = 0;
            continue;
        }
        if collector.gave_up() {
            return Ok(()); // its part is read again by the other collector
        }
        buf.copy_within(start..end, 0);
        filled = end - start;
    }
}

/// One `journalctl -o json` record as a syslog-like line (RFC 3339 local
/// time, host, identifier[pid]: message).
fn journal_line(line: &[u8], collector: &mut Collector, reference: Stamp, out: &mut Vec<u8>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
        collector.line(b"", reference); // counted as malformed
        return;
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str());
    // serve's own JSON log lines (`--log-format json`) read as its text ones.
    if v.get("MESSAGE").is_none()
        && let Some(text) = crate::events::from_json(&v)
    {
        collector.line(text.as_bytes(), reference);
        return;
    }
    let message: Vec<u8> = match v.get("MESSAGE") {
        Some(serde_json::Value::String(m)) => m.as_bytes().to_vec(),
        // Non-UTF-8 messages come as arrays of byte values.
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|b| b.as_u64())
            .map(|b| b as u8)
            .collect(),
        _ => {
            collector.line(b"", reference);
            return;
        }
    };
    let micros: i64 = s("__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let t = local_from_unix(micros / 1_000_000);
    let ident = s("SYSLOG_IDENTIFIER").unwrap_or("-");
    let pid = s("SYSLOG_PID").or(s("_PID"));
    let host = s("_HOSTNAME").unwrap_or("localhost");
    out.clear();
    use std::io::Write;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02} {} {}",
        t.year, t.month, t.day, t.hour, t.min, t.sec, host, ident
    );
    if let Some(pid) = pid {
        let _ = write!(out, "[{pid}]");
    }
    out.extend_from_slice(b": ");
    out.extend_from_slice(&message);
    collector.line(out, reference);
}

/// The reference time for a file's syslog years: its modification time.
pub fn reference_of(path: &Path) -> Stamp {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or_else(unix_now);
    local_from_unix(mtime)
}

/// Opens a log file, decompressing gzip (by its magic bytes, whatever
/// its name).
pub fn open(path: &Path) -> io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

/// How a plain log file is read by two threads (see `collect::seam`).
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Smaller files are read by one thread: a second one would not pay.
    pub min_file: u64,
    /// Most bytes each thread reads before the two parts are merged:
    /// bounds the memory of the second thread's part.
    pub segment: u64,
}

impl Split {
    /// Two threads when the machine has two cores and
    /// `MXGUARD_REPORT_THREADS` is not `1`; None for one thread.
    pub fn auto() -> Option<Split> {
        if std::env::var_os("MXGUARD_REPORT_THREADS").is_some_and(|v| v == "1") {
            return None;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores >= 2).then_some(Split {
            min_file: 8 << 20,
            segment: 32 << 20,
        })
    }
}

/// A byte range of a file as a reader (positioned reads: two threads
/// share the file).
struct Range<'a> {
    file: &'a File,
    pos: u64,
    /// None: to the end of the file, as it is when reached.
    end: Option<u64>,
}

impl Read for Range<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = match self.end {
            Some(end) => buf.len().min(end.saturating_sub(self.pos) as usize),
            None => buf.len(),
        };
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The offset just past the first line end at or after `at`; None when
/// there is none within a read buffer's length (a line too long to
/// split at) or before the end of the file.
fn line_end_after(file: &File, at: u64) -> io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = at;
    while pos < at + BUFFER as u64 + 1 {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(p) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(Some(pos + p as u64 + 1));
        }
        pos += n as u64;
    }
    Ok(None)
}

/// Reads one log file: plain files of at least `split.min_file` bytes by
/// two threads, the rest (gzip, journal JSON, pipes, small files) by one.
pub fn read_file(path: &Path, collector: &mut Collector, split: Option<Split>) -> io::Result<()> {
    let reference = reference_of(path);
    if let Some(split) = split {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let mut head = [0u8; 2];
        let n = {
            use std::os::unix::fs::FileExt;
            file.read_at(&mut head, 0)?
        };
        let plain = n == 2 && head != [0x1f, 0x8b] && head[0] != b'{';
        if meta.is_file() && plain && meta.len() >= split.min_file.max(2) {
            return read_split(&file, meta.len(), collector, reference, split);
        }
    }
    read_lines(open(path)?, collector, reference)
}

/// The parts a file of `len` bytes is read in, cut at line ends: an even
/// number of at most about `segment` bytes, the first collector's (even)
/// parts a tenth shorter, as it also merges. The last part runs to the end
/// of the file as it is when reached (a log still written to).
fn parts(file: &File, len: u64, segment: u64) -> io::Result<Vec<(u64, Option<u64>)>> {
    let pairs = len.div_ceil(2 * segment.max(1)).max(1);
    let n = 2 * pairs;
    // Weights 9 (even) and 10 (odd) per part: 19 per pair.
    let total = 19 * pairs as u128;
    let mut cuts = vec![0u64];
    let mut weight = 0u128;
    for i in 0..n - 1 {
        weight += if i % 2 == 0 { 9 } else { 10 };
        let at = (len as u128 * weight / total) as u64;
        let last = *cuts.last().unwrap_or(&0);
        if at < last {
            continue;
        }
        match line_end_after(file, at)? {
            Some(cut) if cut > last && cut < len => cuts.push(cut),
            Some(_) => {}
            None => break,
        }
    }
    let mut parts: Vec<(u64, Option<u64>)> = cuts.windows(2).map(|w| (w[0], Some(w[1]))).collect();
    parts.push((*cuts.last().unwrap_or(&0), None));
    Ok(parts)
}

/// Reads a plain file in parts: `collector` the even ones, a second
/// thread the odd ones with speculative collectors (two, so that it reads
/// the next part while this one merges), each folded in after the part
/// before it (or, when it cannot be, its part read again by `collector`).
fn read_split(
    file: &File,
    len: u64,
    collector: &mut Collector,
    reference: Stamp,
    split: Split,
) -> io::Result<()> {
    use std::sync::mpsc;
    let parts = parts(file, len, split.segment)?;
    let range = |&(pos, end): &(u64, Option<u64>)| Range { file, pos, end };
    if parts.len() < 2 {
        return read_lines_as(range(&parts[0]), collector, reference, Some(false));
    }
    let (free_tx, free_rx) = mpsc::channel::<Collector>();
    let (done_tx, done_rx) = mpsc::channel::<(Collector, io::Result<()>)>();
    for _ in 0..2 {
        let _ = free_tx.send(Collector::speculative(collector.options().clone()));
    }
    std::thread::scope(|s| {
        let odd = &parts;
        s.spawn(move || {
            for part in odd.iter().skip(1).step_by(2) {
                let Ok(mut later) = free_rx.recv() else {
                    return;
                };
                let r = read_lines_as(range(part), &mut later, reference, Some(false));
                if done_tx.send((later, r)).is_err() {
                    return;
                }
            }
        });
        let mut read_even = || -> io::Result<()> {
            for (k, part) in parts.iter().enumerate().step_by(2) {
                read_lines_as(range(part), collector, reference, Some(false))?;
                let Some(next) = parts.get(k + 1) else {
                    break;
                };
                let (mut later, r) = done_rx
                    .recv()
                    .map_err(|_| io::Error::other("the second reading thread stopped"))?;
                r?;
                if !collector.absorb(&mut later, reference) {
                    read_lines_as(range(next), collector, reference, Some(false))?;
                }
                let _ = free_tx.send(later);
            }
            Ok(())
        };
        let result = read_even();
        // Lets the second thread stop if it waits for a collector.
        drop(free_tx);
        drop(done_rx);
        result
    })
}

/// Reads the named files (`-` is stdin), oldest rotation first. Errors
/// name the file.
pub fn read_paths(paths: &[PathBuf], collector: &mut Collector) -> Result<(), String> {
    for path in order_rotated(paths) {
        if path.as_os_str() == "-" {
            let now = local_from_unix(unix_now());
            read_lines(io::stdin().lock(), collector, now)
                .map_err(|e| format!("reading stdin: {e}"))?;
            continue;
        }
        File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        read_file(&path, collector, Split::auto()).map_err(|e| {
            format!(
                "{}: {e} (is it a log file, or a damaged .gz?)",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// `mail.log.2.gz`, `mail.log.1`, `mail.log` in the order they were
/// written: rotated files of one log sorted by rotation number, highest
/// (oldest) first; other files keep their place.
pub fn order_rotated(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn split(p: &Path) -> (String, u32) {
        let s = p.to_string_lossy();
        let s = s.strip_suffix(".gz").unwrap_or(&s);
        if let Some(dot) = s.rfind('.') {
            let n = &s[dot + 1..];
            if !n.is_empty() && n.len() <= 4 && n.bytes().all(|c| c.is_ascii_digit()) {
                return (s[..dot].to_string(), n.parse().unwrap_or(0));
            }
        }
        (s.to_string(), 0)
    }
    let mut keyed: Vec<(usize, String, u32, PathBuf)> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let (base, n) = split(p);
        let first = keyed.iter().find(|k| k.1 == base).map_or(i, |k| k.0);
        keyed.push((first, base, n, p.clone()));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
    keyed.into_iter().map(|k| k.3).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_order() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            order_rotated(&[
                p("mail.log"),
                p("mail.log.1"),
                p("mail.log.2.gz"),
                p("other.log")
            ]),
            vec![
                p("mail.log.2.gz"),
                p("mail.log.1"),
                p("mail.log"),
                p("other.log")
            ]
        );
    }
}
