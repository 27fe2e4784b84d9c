//! The file names in a ZIP archive, read from its central directory without
//! decompressing anything: what a mail filter needs to see a program
//! packed in a zip, a zip in a zip, or an encrypted archive.
//!
//! Bounded: at most `max_entries` entries and [`MAX_NAME`] bytes of each
//! name are read; every offset is checked against the buffer, so a forged
//! directory ends the listing (as `truncated`), never a panic.

/// Longest name kept, in bytes.
pub const MAX_NAME: usize = 255;

/// End of central directory record: signature and fixed size.
const EOCD_SIG: &[u8] = b"PK\x05\x06";
const EOCD_LEN: usize = 22;
/// Central directory file header: signature and fixed size.
const CDH_SIG: &[u8] = b"PK\x01\x02";
const CDH_LEN: usize = 46;
/// The archive comment is at most this long, so the EOCD is this close to the end.
const MAX_COMMENT: usize = 0xFFFF;

/// What the central directory says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Entry names, lossily decoded (UTF-8 or the legacy code page shows as
    /// replacement characters where not UTF-8).
    pub names: Vec<String>,
    /// Some entry is encrypted (general purpose flag bit 0).
    pub encrypted: bool,
    /// The listing stopped early: at `max_entries`, or at a damaged entry.
    pub truncated: bool,
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Lists the archive in `b`; `None` when no central directory is found.
pub fn list(b: &[u8], max_entries: usize) -> Option<Listing> {
    let tail_start = b.len().saturating_sub(EOCD_LEN + MAX_COMMENT);
    let eocd = tail_start + memchr::memmem::rfind(&b[tail_start..], EOCD_SIG)?;
    let entries = u16_at(b, eocd + 10)?;
    let cd_offset = u32_at(b, eocd + 16)?;
    // Data before the archive (a self-extractor, a padded file) shifts
    // every offset: fall back to the first directory header found.
    let start = if b.get(cd_offset..cd_offset + 4) == Some(CDH_SIG) {
        cd_offset
    } else {
        memchr::memmem::find(&b[..eocd], CDH_SIG)?
    };
    let mut listing = Listing::default();
    let mut at = start;
    for _ in 0..entries {
        if listing.names.len() >= max_entries {
            listing.truncated = true;
            break;
        }
        if b.get(at..at + 4) != Some(CDH_SIG) {
            listing.truncated = true;
            break;
        }
        let (Some(flags), Some(name_len), Some(extra_len), Some(comment_len)) = (
            u16_at(b, at + 8),
            u16_at(b, at + 28),
            u16_at(b, at + 30),
            u16_at(b, at + 32),
        ) else {
            listing.truncated = true;
            break;
        };
        let name_start = at + CDH_LEN;
        let Some(name) = b.get(name_start..name_start + name_len) else {
            listing.truncated = true;
            break;
        };
        listing.encrypted |= flags & 1 == 1;
        let name = &name[..name.len().min(MAX_NAME)];
        listing
            .names
            .push(String::from_utf8_lossy(name).into_owned());
        at = name_start + name_len + extra_len + comment_len;
    }
    Some(listing)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stored (uncompressed) zip with these entries, built by hand.
    pub fn zip(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data, encrypted) in entries {
            let offset = out.len() as u32;
            let flags: u16 = if *encrypted { 1 } else { 0 };
            out.extend(b"PK\x03\x04");
            out.extend(20u16.to_le_bytes());
            out.extend(flags.to_le_bytes());
            out.extend([0u8; 6]); // method, time, date
            out.extend([0u8; 4]); // crc
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(*data);
            cd.extend(b"PK\x01\x02");
            cd.extend(20u16.to_le_bytes());
            cd.extend(20u16.to_le_bytes());
            cd.extend(flags.to_le_bytes());
            cd.extend([0u8; 2 + 2 + 2 + 4]);
            cd.extend((data.len() as u32).to_le_bytes());
            cd.extend((data.len() as u32).to_le_bytes());
            cd.extend((name.len() as u16).to_le_bytes());
            cd.extend([0u8; 2 + 2 + 2 + 2 + 4]);
            cd.extend(offset.to_le_bytes());
            cd.extend(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend(&cd);
        out.extend(b"PK\x05\x06");
        out.extend([0u8; 4]);
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((cd.len() as u32).to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    #[test]
    fn lists_names_and_encryption() {
        let z = zip(&[("a.txt", b"hello", false), ("dir/b.exe", b"MZ", true)]);
        let l = list(&z, 100).unwrap();
        assert_eq!(l.names, ["a.txt", "dir/b.exe"]);
        assert!(l.encrypted && !l.truncated);
        let l = list(&z, 1).unwrap();
        assert_eq!(l.names, ["a.txt"]);
        assert!(l.truncated);
        // Data prepended: offsets are wrong, the directory is still found.
        let mut shifted = b"MZ stub ".repeat(10);
        shifted.extend(&z);
        assert_eq!(list(&shifted, 100).unwrap().names, ["a.txt", "dir/b.exe"]);
        assert_eq!(list(b"PK\x03\x04 not really", 100), None);
    }

    #[test]
    fn damaged_directories_end_the_listing() {
        let z = zip(&[("a.txt", b"x", false), ("b.txt", b"y", false)]);
        for cut in 0..z.len() {
            let _ = list(&z[..cut], 100);
            let mut bad = z.clone();
            bad[cut] ^= 0xFF;
            let _ = list(&bad, 100);
        }
        // An entry count far above what is there.
        let mut lying = z.clone();
        let n = lying.len();
        lying[n - 12] = 0xFF;
        lying[n - 11] = 0xFF;
        let l = list(&lying, 100_000).unwrap();
        assert!(l.truncated && l.names.len() == 2);
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..400), at in 0usize..400) {
            // Plant signatures so the parser gets past the search.
            if bytes.len() > 30 {
                let at = at % (bytes.len() - 26);
                bytes[at..at + 4].copy_from_slice(EOCD_SIG);
                bytes[0..4].copy_from_slice(CDH_SIG);
            }
            let _ = list(&bytes, 50);
        }
    }
}
